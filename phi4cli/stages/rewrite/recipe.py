"""Recipes: a TOML file of steps and the rows they emit, checked completely before any request is sent.

    name = "qa-extraction"
    output = "chat"                      # documents | chat | problems | pairs
    inputs = ["text"]                    # the input columns the templates read
    seed = 1234                          # base of every request's seed
    [sampling]                           # defaults for every model step
    temperature = 0.7
    [[steps]]
    name = "qa"
    kind = "generate"                    # generate | revise | fim | vote | match | prefer | grade
    prompt = "Write question/answer pairs about: {{text}}"
    parse = "json"
    [[emit]]                             # one output row per input row (or per item of `for_each`)
    name = "qa"
    for_each = "qa"
    messages = [{ role = "user", content = "{{item.question}}" }, { role = "assistant", content = "{{item.answer}}" }]

Templates use `{{name}}` and `{{name.key}}` (single braces are plain text, so JSON examples need no
escaping). A name is an input column, an earlier step, or `item` inside a `for_each`; anything else is an
"unknown placeholder" error at load time.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phi4cli.config import did_you_mean
from phi4cli.errors import Phi4Error

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w]*(?:\.[\w]+)*)\s*\}\}")
OUTPUTS = ("documents", "chat", "problems", "pairs")
SAMPLING_KEYS = {"temperature": float, "top_p": float, "top_k": int, "max_tokens": int, "stop": list}
PARSERS = ("text", "json", "answer", "code")
ANSWER_KINDS = ("gsm8k", "math", "text")

# Keys each step kind takes: name -> (type, default); `...` marks a required key. Defaults are documented
# choices (docs/rewrite.md); recipes set the paper's values.
_COMMON = {"name": (str, ...), "kind": (str, ...)}
_MODEL = {"system": (str, ""), "sampling": (dict, {}), "backend": (str, "default")}
STEP_KEYS: dict[str, dict[str, tuple[type, Any]]] = {
    "generate": {
        **_MODEL,
        "prompt": (str, ...),
        "n": (int, 1),
        "each_backend": (bool, False),
        "for_each": (str, ""),
        "parse": (str, "text"),
        "keys": (list, []),
        "scale": (list, [1, 5]),
        "answer": (str, "text"),
        "min_chars": (int, 1),
    },
    "revise": {
        **_MODEL,
        "source": (str, ...),
        "critique": (str, ...),
        "revise": (str, ...),
        "rounds": (int, 2),
        "rubric": (list, ["reasoning", "factual_accuracy"]),
        "scale": (list, [1, 5]),
        "stop_at": (int, 5),
    },
    "fim": {"source": (str, ...), "mode": (str, "psm"), "min_chars": (int, 32)},
    "vote": {"source": (str, ...), "answer": (str, "gsm8k"), "min_votes": (int, 2), "drop_unanimous": (bool, True)},
    "match": {
        "source": (str, ...),
        "original": (str, ...),
        "tests": (str, ""),
        "threshold": (float, 0.8),
        "timeout": (float, 10.0),
    },
    "prefer": {"candidates": (str, ...), "scores": (str, ...), "primary": (str, "accuracy")},
    "grade": {"source": (str, ...), "reference": (str, ...), "answer": (str, "text"), "refusals": (list, [])},
}
EMIT_FIELDS = {
    "documents": {"text": True, "source": False},
    "chat": {"messages": True},
    "problems": {"prompt": True, "answer": True, "task": False, "tests": False},
    "pairs": {"prompt": True, "chosen": True, "rejected": True},
}


@dataclass
class Step:
    name: str
    kind: str
    opts: dict[str, Any]

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["opts"][key]
        except KeyError:
            raise AttributeError(key)


@dataclass
class Emit:
    name: str
    fields: dict[str, Any]  # template strings (messages: a list of {role, content} templates)
    for_each: str = ""
    when: str = ""
    meta: dict[str, str] = field(default_factory=dict)


@dataclass
class Recipe:
    path: str
    name: str
    output: str
    inputs: list[str]
    seed: int
    sampling: dict[str, Any]
    steps: list[Step]
    emits: list[Emit]
    description: str = ""
    columns: dict[str, str] = field(default_factory=dict)  # --column NAME=COLUMN: input NAME read from COLUMN

    def column(self, name: str) -> str:
        """The dataset column the recipe's input `name` is read from."""
        return self.columns.get(name, name)

    def map_columns(self, items: list[str]) -> None:
        readable = set(self.inputs) | {s.tests for s in self.steps if s.opts.get("tests")}
        for item in items:
            name, sep, column = item.partition("=")
            if not sep or not name or not column:
                raise Phi4Error(f"--column {item}: expected NAME=COLUMN (the recipe's input NAME is the column COLUMN)")
            if name not in readable:
                raise Phi4Error(
                    f"--column {item}: {self.path} reads no '{name}' (it reads: {', '.join(sorted(readable))})"
                )
            self.columns[name] = column

    def needs_model(self) -> bool:
        return any(s.kind in ("generate", "revise") for s in self.steps)

    def fingerprint(self) -> str:
        """What the recipe is, for provenance: the parsed content (comments and layout left out)."""
        steps = [[s.name, s.kind, s.opts] for s in self.steps]
        emits = [[e.name, e.fields, e.for_each, e.when, e.meta] for e in self.emits]
        whole = {
            "name": self.name,
            "output": self.output,
            "seed": self.seed,
            "sampling": self.sampling,
            "columns": self.columns,
        }
        return json.dumps({**whole, "steps": steps, "emit": emits}, sort_keys=True)


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise Phi4Error(f"{path}: no such recipe")
    except tomllib.TOMLDecodeError as e:
        raise Phi4Error(f"{path}: not valid TOML ({e})")
    return parse_recipe(data, str(path), overrides or {})


def parse_recipe(data: dict, where: str, overrides: dict[str, Any] | None = None) -> Recipe:
    known = {"name", "description", "output", "inputs", "seed", "sampling", "steps", "emit"}
    _no_unknown(data, known, where, "")
    for key in ("name", "output", "inputs", "steps", "emit"):
        if key not in data:
            raise Phi4Error(f"{where}: missing key '{key}'")
    output = data["output"]
    if output not in OUTPUTS:
        raise Phi4Error(f"{where}: output: '{output}' is not one of {', '.join(OUTPUTS)}")
    inputs = _typed(data, "inputs", list, where, "")
    sampling = _sampling({**data.get("sampling", {}), **(overrides or {})}, where, "sampling")
    steps, names = [], set(inputs)
    for i, raw in enumerate(_typed(data, "steps", list, where, "")):
        step = _step(raw, f"{where}: steps[{i}]", names)
        steps.append(step)
        names.add(step.name)
    emits = [
        _emit(raw, output, f"{where}: emit[{i}]", names) for i, raw in enumerate(_typed(data, "emit", list, where, ""))
    ]
    if not emits:
        raise Phi4Error(f"{where}: emit: a recipe needs at least one [[emit]]")
    return Recipe(
        where,
        str(data["name"]),
        output,
        inputs,
        int(data.get("seed", 0)),
        sampling,
        steps,
        emits,
        str(data.get("description", "")),
    )


def _no_unknown(table: dict, known, where: str, prefix: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        hint = did_you_mean(unknown[0], known) or f" (known: {', '.join(sorted(known))})"
        raise Phi4Error(f"{where}: unknown key '{prefix}{unknown[0]}'{hint}")


def _typed(table: dict, key: str, kind: type, where: str, prefix: str) -> Any:
    value = table[key]
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise Phi4Error(f"{where}: {prefix}{key}: expected {kind.__name__}, got {type(value).__name__} {value!r}")
    if kind is float and not math.isfinite(value):  # TOML and --set accept nan/inf; no setting means them
        raise Phi4Error(f"{where}: {prefix}{key}: expected a finite number, got {value!r}")
    return value


# What each sampling value must satisfy, checked when the recipe loads: a value the backends refuse would
# otherwise fail every request and reject every row, after the whole dataset was sent.
SAMPLING_RANGES = {
    "temperature": (lambda v: v >= 0, ">= 0"),
    "top_p": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "top_k": (lambda v: v >= 0, ">= 0 (0 = no top-k filter)"),
    "max_tokens": (lambda v: v >= 1, ">= 1"),
    "stop": (lambda v: all(isinstance(x, str) and x for x in v), "a list of non-empty strings"),
}


def _sampling(table: dict, where: str, prefix: str) -> dict:
    _no_unknown(table, SAMPLING_KEYS, where, prefix + ".")
    sampling = {k: _typed(table, k, SAMPLING_KEYS[k], where, prefix + ".") for k in sorted(table)}
    for key, value in sampling.items():
        ok, rule = SAMPLING_RANGES[key]
        if not ok(value):
            raise Phi4Error(f"{where}: {prefix}.{key}: must be {rule}, got {value!r}")
    return sampling


def _step(raw: Any, where: str, names: set[str]) -> Step:
    if not isinstance(raw, dict):
        raise Phi4Error(f"{where}: a step must be a table")
    if "kind" not in raw or "name" not in raw:
        raise Phi4Error(f"{where}: a step needs 'name' and 'kind'")
    kind = raw["kind"]
    if kind not in STEP_KEYS:
        hint = did_you_mean(str(kind), STEP_KEYS) or f" (known: {', '.join(STEP_KEYS)})"
        raise Phi4Error(f"{where}: unknown step kind '{kind}'{hint}")
    name = _typed(raw, "name", str, where, "")
    if name in names or name == "item":
        raise Phi4Error(f"{where}: name '{name}' is already an input column or a step")
    spec = {**_COMMON, **STEP_KEYS[kind]}
    _no_unknown(raw, spec, where, "")
    opts: dict[str, Any] = {}
    for key, (kind_of, default) in spec.items():
        if key in ("name", "kind"):
            continue
        if key not in raw:
            if default is ...:
                raise Phi4Error(f"{where} ({name}): missing key '{key}'")
            opts[key] = default
        else:
            opts[key] = _typed(raw, key, kind_of, where, "")
    if "sampling" in opts:
        opts["sampling"] = _sampling(opts["sampling"], where, "sampling")
    step = Step(name, kind, opts)
    _check_step(step, where, names)
    return step


def _check_step(step: Step, where: str, names: set[str]) -> None:
    where = f"{where} ({step.name})"
    local = names | ({"item"} if step.opts.get("for_each") else set())
    if step.kind == "revise":
        local = local | {"draft", "critique"}
    for key in ("system", "prompt", "critique", "revise", "original", "reference"):
        if key in step.opts:
            check_placeholders(step.opts[key], local, f"{where}: {key}")
    for key in ("source", "for_each", "candidates", "scores"):
        value = step.opts.get(key)
        if value and value not in names:
            raise Phi4Error(f"{where}: {key}: '{value}' is not an input column or an earlier step")
    if step.opts.get("parse", "text") not in PARSERS:
        raise Phi4Error(f"{where}: parse: '{step.parse}' is not one of {', '.join(PARSERS)}")
    if step.opts.get("answer", "text") not in ANSWER_KINDS:
        raise Phi4Error(f"{where}: answer: '{step.answer}' is not one of {', '.join(ANSWER_KINDS)}")
    if step.kind == "fim" and step.mode not in ("psm", "spm"):
        raise Phi4Error(f"{where}: mode: '{step.mode}' is not psm or spm")
    if step.opts.get("n", 1) < 1 or step.opts.get("rounds", 1) < 1 or step.opts.get("min_votes", 1) < 1:
        raise Phi4Error(f"{where}: n, rounds and min_votes must be >= 1")
    if not 0 <= step.opts.get("threshold", 0) <= 1:  # difflib's ratio: above 1 keeps nothing, below 0 everything
        raise Phi4Error(f"{where}: threshold must be in [0, 1], got {step.threshold}")
    if step.opts.get("timeout", 1) <= 0:
        raise Phi4Error(f"{where}: timeout must be > 0 seconds, got {step.timeout}")
    if step.kind == "generate" and step.n > 1 and (step.each_backend or step.for_each):
        raise Phi4Error(f"{where}: n > 1 cannot be combined with each_backend or for_each")
    scale = step.opts.get("scale", [1, 5])
    if len(scale) != 2 or not all(isinstance(x, int) for x in scale) or scale[0] > scale[1]:
        raise Phi4Error(f"{where}: scale must be [low, high] integers")


def _emit(raw: Any, output: str, where: str, names: set[str]) -> Emit:
    if not isinstance(raw, dict) or "name" not in raw:
        raise Phi4Error(f"{where}: an [[emit]] needs a 'name'")
    fields = EMIT_FIELDS[output]
    _no_unknown(raw, {"name", "for_each", "when", "meta", *fields}, where, "")
    for key, required in fields.items():
        if required and key not in raw:
            raise Phi4Error(f"{where} ({raw['name']}): missing key '{key}' (output = \"{output}\")")
    for key in ("for_each", "when"):
        root = str(raw.get(key, "")).split(".")[0]
        if root and root not in names:
            raise Phi4Error(f"{where}: {key}: '{raw[key]}' is not an input column or a step")
    local = names | ({"item"} if raw.get("for_each") else set())
    values = {k: raw[k] for k in fields if k in raw}
    for key, value in values.items():
        if key == "messages":
            _check_messages(value, local, f"{where}: messages")
        else:
            check_placeholders(_typed(values, key, str, where, ""), local, f"{where}: {key}")
    meta = raw.get("meta", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise Phi4Error(f"{where}: meta must be a table of templates")
    for key, value in meta.items():
        check_placeholders(value, local, f"{where}: meta.{key}")
    return Emit(str(raw["name"]), values, str(raw.get("for_each", "")), str(raw.get("when", "")), meta)


def _check_messages(value: Any, names: set[str], where: str) -> None:
    if not isinstance(value, list) or not value:
        raise Phi4Error(f"{where}: expected a list of {{role, content}} tables")
    for i, message in enumerate(value):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise Phi4Error(f"{where}[{i}]: expected a table with 'role' and 'content'")
        if message["role"] not in ("system", "user", "assistant"):
            raise Phi4Error(f"{where}[{i}]: role '{message['role']}' is not system, user or assistant")
        check_placeholders(message["content"], names, f"{where}[{i}].content")


def check_placeholders(template: str, names: set[str], where: str) -> None:
    for match in PLACEHOLDER.finditer(template):
        root = match.group(1).split(".")[0]
        if root not in names:
            hint = did_you_mean(root, names) or f" (known here: {', '.join(sorted(names))})"
            raise Phi4Error(f"{where}: unknown placeholder '{{{{{match.group(1)}}}}}'{hint}")
    rest = PLACEHOLDER.sub("", template)
    if "{{" in rest or "}}" in rest:
        raise Phi4Error(f"{where}: a '{{{{' placeholder is not closed or names nothing")


def lookup(context: dict, dotted: str) -> Any:
    """`a.b.c` in nested dicts (and list indices); a missing key is an error the caller names."""
    value: Any = context
    for part in dotted.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise KeyError(dotted)
    return value


def render(template: str, context: dict) -> str:
    """Fill `{{name}}` placeholders; dicts and lists are written as JSON. KeyError names a missing value."""

    def fill(match: re.Match) -> str:
        value = lookup(context, match.group(1))
        if isinstance(value, (dict, list)):
            return json.dumps(value, ensure_ascii=False, sort_keys=True)
        return "" if value is None else str(value)

    return PLACEHOLDER.sub(fill, template)
