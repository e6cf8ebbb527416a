"""Stage settings as data: a TOML file read into a dataclass, with `--set key=value` overrides.

The TOML (stages/<stage>.toml) is the one place a stage's settings live, every key commented with its
source; the dataclass only names and types them. A key missing from the TOML, a key the dataclass does
not know, or a value of the wrong type is a one-line error naming the key. A field whose type is itself
a dataclass is a TOML table (`[shots]`), checked the same way and set with a dotted key
(`--set shots.gsm8k=4`); a field typed `dict` is a free-form table (`--set model_overrides.rope_theta=5e5`).

    settings = load_settings("stages/eval.toml", ["shots.gsm8k=4"], EvalConfig)

The trainers (phi4cli/train/config.py) and `phi4 eval` (phi4cli/evaluate/config.py) use this.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import tomllib
import typing
from pathlib import Path
from typing import Any, TypeVar

from phi4cli.errors import Phi4Error


def _recipe_dir(name: str) -> Path:
    """stages/ (settings) or manifests/ (data mixtures): at the top of a source checkout, where users read
    and edit them; an installed package carries copies in phi4cli/recipe/ (setup.py puts them there)."""
    package = Path(__file__).resolve().parent
    checkout = package.parent / name
    return checkout if checkout.is_dir() else package / "recipe" / name


STAGES_DIR = _recipe_dir("stages")
MANIFESTS_DIR = _recipe_dir("manifests")

T = TypeVar("T")


def load_settings(path: str | Path, overrides: typing.Sequence[str], cls: type[T]) -> T:
    """Read a stage TOML, apply `key=value` overrides, type-check every key against `cls`."""
    values = read_toml(Path(path))
    for item in overrides:
        key, value = parse_override(item)
        assign(values, key, value)
    return from_dict(values, cls, where=str(path))


def from_dict(values: dict[str, Any], cls: type[T], where: str = "config", prefix: str = "") -> T:
    """`cls(**values)` after checking names and types; then `validate()` if the class has one."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        hint = did_you_mean(unknown[0], fields) or f" (known: {', '.join(fields)})"
        raise Phi4Error(f"{where}: unknown key '{prefix}{unknown[0]}'{hint}")
    missing = [name for name, f in fields.items() if _is_required(f) and name not in values]
    if missing:
        raise Phi4Error(f"{where}: missing key '{prefix}{missing[0]}'")
    checked = {key: _check_value(f"{prefix}{key}", value, hints[key], where) for key, value in values.items()}
    settings = cls(**checked)
    if hasattr(settings, "validate"):
        settings.validate()
    return settings


def stage_config_path(stage: str) -> Path:
    path = STAGES_DIR / f"{stage}.toml"
    if not path.is_file():
        raise Phi4Error(f"{path}: default config not found (pass --config FILE)")
    return path


def to_toml(settings: Any, header: str = "") -> str:
    """Settings as TOML that `load_settings` reads back (a run directory's record of its settings)."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"{key} = {toml_value(value)}" for key, value in dataclasses.asdict(settings).items()]
    return "\n".join(lines) + "\n"


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def recipe_file(path: Path) -> Path:
    """`path`; or, when it does not exist and reads `stages/...` or `manifests/...`, the shipped default of
    that name, so `--config stages/demo/pretrain.toml` works in any directory (a file of yours wins)."""
    if path.exists() or path.is_absolute() or len(path.parts) < 2 or path.parts[0] not in ("stages", "manifests"):
        return path
    shipped = (STAGES_DIR if path.parts[0] == "stages" else MANIFESTS_DIR).joinpath(*path.parts[1:])
    return shipped if shipped.is_file() else path


def read_toml(path: Path, what: str = "config file") -> dict[str, Any]:
    """A TOML file as a dict; a syntax error names the line as FILE:LINE, where editors look for it."""
    path = recipe_file(Path(path))
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise Phi4Error(f"{path}: no such {what}")
    except (OSError, UnicodeDecodeError) as e:
        raise Phi4Error(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        at = re.search(r"\s*\(at line (\d+), column (\d+)\)", message)
        if not at:
            raise Phi4Error(f"{path}: bad TOML: {message}")
        reason = (message[: at.start()] + message[at.end() :]).strip()
        raise Phi4Error(f"{path}:{at.group(1)}: bad TOML: {reason} (column {at.group(2)})")


def parse_override(item: str) -> tuple[str, Any]:
    """`key=value` (a `--set` argument), the value read by `parse_value`."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise Phi4Error(f"--set {item}: expected key=value")
    return key, parse_value(text)


def parse_value(text: str) -> Any:
    """A `--set` value, read as TOML (numbers, true/false, [lists], "strings"); anything that is not
    valid TOML is taken as a bare string, so `--set model=phi4-1b` needs no quotes."""
    try:
        return tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def did_you_mean(name: str, known: typing.Iterable[str]) -> str:
    """` (did you mean 'X'?)` for the closest known name, or "" when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def assign(values: dict[str, Any], key: str, value: Any) -> None:
    """`a.b=1` sets values['a']['b'] (for tables)."""
    *parents, last = key.split(".")
    target = values
    for part in parents:
        child = target.setdefault(part, {})
        if not isinstance(child, dict):
            raise Phi4Error(f"--set {key}: '{part}' is not a table")
        target = child
    target[last] = value


# ------------------------------------------------------------------------------------- type checks


_CHECKS = {
    bool: lambda v: isinstance(v, bool),
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    str: lambda v: isinstance(v, str),
    list: lambda v: isinstance(v, list),
    dict: lambda v: isinstance(v, dict),
}
_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a table"}
_ITEM_NAMES = {int: "integers", float: "numbers", str: "strings", bool: "true/false values"}


def _is_required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _check_value(key: str, value: Any, hint: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise Phi4Error(f"config: {key} must be a table, got {json.dumps(value, default=str)}")
        return from_dict(value, hint, where, prefix=f"{key}.")
    return _check_type(key, value, hint)


def _check_type(key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint) or hint
    if not _CHECKS[origin](value):
        raise Phi4Error(f"config: {key} must be {_type_name(hint)}, got {json.dumps(value, default=str)}")
    if origin is float:
        return float(value)
    if origin is list:
        (item_hint,) = typing.get_args(hint) or (Any,)
        if item_hint in _CHECKS:
            return [_check_type(f"{key}[{i}]", v, item_hint) for i, v in enumerate(value)]
    return value


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint) or hint
    if origin is list:
        (item_hint,) = typing.get_args(hint) or (Any,)
        return f"a list of {_ITEM_NAMES.get(item_hint, 'values')}"
    return _NAMES[origin]
