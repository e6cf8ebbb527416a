"""The dataset schemas stages exchange, and the converters from the formats people publish.

Every schema has `id` (string) and `meta` (a JSON object as text). Stages may add columns; unknown
columns are carried through. `docs/formats.md` documents each one with examples.

- documents: `id`, `text`, `source`, `meta` (pretraining data).
- chat: `id`, `messages: list<struct<role: string, content: string>>`, `meta`. Roles are `system`, `user`,
  `assistant`; every conversation has at least one assistant turn and no empty content.
- pairs (preference data for `phi4 dpo`): `id`, `prompt_ids`, `chosen_ids`, `rejected_ids` (list<int32>),
  `prompt`, `chosen`, `rejected` (JSON text), `meta`.
  * Token ids, when non-empty, are exact: the trainer uses them as they are (PTS pairs: `prompt_ids` is
    the rendered question plus the exact token prefix, `chosen_ids`/`rejected_ids` one token each).
    All three are empty when the pair is text only; then the trainer renders the text through ChatML.
  * Text, as JSON: either all strings (TRL's "standard" form: `prompt` is the user's message, `chosen` and
    `rejected` the assistant's replies) or message lists (TRL's "conversational" form: `prompt` is the
    conversation so far, `chosen`/`rejected` the assistant turn(s) that continue it). Ingest brings the
    published variants to one of these two forms: UltraFeedback-binarized's `chosen`/`rejected`, which
    repeat the prompt's user turn, are cut to the continuation; a string prompt with message-list
    replies becomes one user message.
  * `meta` carries the rest (scores, `p_before`/`p_after` for PTS, the problem id).
- problems (for `phi4 pts` and eval): `id`, `prompt`, `answer`, `task`, `tests`, `meta`. `task` names the
  oracle (`gsm8k`, `math`, `mmlu`, `humaneval`, or a toy task); `tests` is code for code tasks (the program
  run is `prompt + completion + tests`) and "" otherwise.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa

from phi4cli.errors import Phi4Error
from phi4cli.io.shards import DOCUMENTS_SCHEMA

MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])
CHAT_SCHEMA = pa.schema([("id", pa.string()), ("messages", pa.list_(MESSAGE_TYPE)), ("meta", pa.string())])
PAIRS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("prompt_ids", pa.list_(pa.int32())),
        ("chosen_ids", pa.list_(pa.int32())),
        ("rejected_ids", pa.list_(pa.int32())),
        ("prompt", pa.string()),
        ("chosen", pa.string()),
        ("rejected", pa.string()),
        ("meta", pa.string()),
    ]
)
PROBLEMS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("prompt", pa.string()),
        ("answer", pa.string()),
        ("task", pa.string()),
        ("tests", pa.string()),
        ("meta", pa.string()),
    ]
)
# Rows ingest could not convert, with why: `phi4 ingest --rejected DIR`.
REJECTED_SCHEMA = pa.schema(
    [("id", pa.string()), ("file", pa.string()), ("row", pa.int64()), ("reason", pa.string()), ("record", pa.string())]
)

SCHEMAS: dict[str, pa.Schema] = {
    "documents": DOCUMENTS_SCHEMA,
    "chat": CHAT_SCHEMA,
    "pairs": PAIRS_SCHEMA,
    "problems": PROBLEMS_SCHEMA,
}
# The columns that tell one schema from another (checked in this order: pairs before problems, since
# both have `prompt`).
_SIGNATURES = {
    "pairs": ("prompt_ids", "chosen_ids", "rejected_ids"),
    "chat": ("messages",),
    "problems": ("prompt", "answer", "task"),
    "documents": ("text",),
}
ROLES = ("system", "user", "assistant")
# ShareGPT's `from` values (and the spellings other exports use) -> chat roles.
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "model": "assistant",
    "system": "system",
}
# OpenAI's roles; "developer" is what newer OpenAI models call the system message.
OPENAI_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
LETTERS = string.ascii_uppercase


class BadRow(ValueError):
    """A row that cannot be converted; the message is the reason (without the file and row)."""


def detect_schema(schema: pa.Schema) -> str | None:
    """Which of SCHEMAS a table's columns follow, or None."""
    for name, columns in _SIGNATURES.items():
        if all(c in schema.names for c in columns):
            return name
    return None


def require_schema(schema: pa.Schema, name: str, where: str, command: str = "") -> None:
    """Fail in one line when `schema` lacks a column of the `name` schema, saying what the data looks like.

    e.g. "data/chat: these are chat rows, not pairs (dpo needs pairs: id, prompt_ids, ...)".
    """
    wanted = SCHEMAS[name]
    missing = [f.name for f in wanted if f.name not in schema.names]
    needer = f"{command} needs" if command else "expected"
    if missing:
        found = detect_schema(schema)
        what = f"these are {found} rows, not {name}" if found and found != name else f"missing column '{missing[0]}'"
        raise Phi4Error(f"{where}: {what} ({needer} {name}: {', '.join(wanted.names)})")
    for field in wanted:
        have = schema.field(field.name).type
        if not have.equals(field.type):
            raise Phi4Error(f"{where}: column '{field.name}' is {have}, not {field.type} (the {name} schema)")


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def meta_json(record: dict, used: Sequence[str]) -> str:
    return _json({k: v for k, v in record.items() if k not in used})


# ----------------------------------------------------------------------------------------------- chat


def content_text(content, where: str = "content") -> str:
    """Message content as text: a string, or OpenAI's list of parts (only text parts are accepted)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type", "text") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise BadRow(f"{where}: a '{kind}' part (only text parts are supported)")
        return "".join(texts)
    if content is None:
        raise BadRow(f"{where}: empty content")
    raise BadRow(f"{where}: content is {type(content).__name__}, not text")


def normalize_messages(
    messages,
    field: str = "messages",
    roles: dict[str, str] | None = None,
    role_key: str = "role",
    content_key: str = "content",
    need_assistant: bool = True,
) -> list[dict]:
    """Check and normalise a message list: known roles, non-empty text content, an assistant turn."""
    if not isinstance(messages, list) or not messages:
        raise BadRow(f"'{field}' is not a non-empty list of messages")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRow(f"{field}[{i}]: not an object")
        raw_role = message.get(role_key)
        role = roles.get(str(raw_role).lower()) if roles is not None else raw_role
        if role not in ROLES:
            raise BadRow(f"{field}[{i}]: unknown role {raw_role!r} (expected {', '.join(roles or ROLES)})")
        text = content_text(message.get(content_key), f"{field}[{i}]")
        if not text.strip():
            raise BadRow(f"{field}[{i}]: empty content")
        out.append({"role": role, "content": text})
    if need_assistant and not any(m["role"] == "assistant" for m in out):
        raise BadRow(f"'{field}': no assistant turn")
    return out


@dataclass(frozen=True)
class ChatFields:
    """Where a chat row's parts are, for prompt/response files (`--prompt-field`, `--response-field`)."""

    prompt: str = "prompt"
    response: str = "response"
    system: str = "system"
    id: str = "id"


def chat_row(record: dict, default_id: str, fields: ChatFields = ChatFields()) -> dict:
    """One chat row from OpenAI `messages`, ShareGPT `conversations`, or prompt/response fields."""
    if "messages" in record:
        messages, used = normalize_messages(record["messages"], roles=OPENAI_ROLES), ["messages"]
    elif "conversations" in record:
        messages = normalize_messages(record["conversations"], "conversations", SHAREGPT_ROLES, "from", "value")
        used = ["conversations"]
    elif fields.prompt in record and fields.response in record:
        turns = [
            {"role": "user", "content": record[fields.prompt]},
            {"role": "assistant", "content": record[fields.response]},
        ]
        if record.get(fields.system):
            turns.insert(0, {"role": "system", "content": record[fields.system]})
        messages, used = (
            normalize_messages(turns, f"{fields.prompt}/{fields.response}"),
            [fields.prompt, fields.response, fields.system],
        )
    else:
        raise BadRow(
            f"no 'messages', 'conversations' or '{fields.prompt}'/'{fields.response}' fields "
            f"(has: {', '.join(record) or 'nothing'}; see --prompt-field/--response-field)"
        )
    return {
        "id": str(record.get(fields.id, default_id)),
        "messages": messages,
        "meta": meta_json(record, [*used, fields.id]),
    }


# ---------------------------------------------------------------------------------------------- pairs


def _token_ids(value, field: str) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) and 0 <= t < 2**31 for t in value
    ):
        raise BadRow(f"'{field}' is not a list of token ids")
    return value


def _side(value, field: str) -> str | list[dict]:
    if isinstance(value, str):
        if not value.strip():
            raise BadRow(f"'{field}' is empty")
        return value
    return normalize_messages(value, field, need_assistant=False)


def pairs_row(record: dict, default_id: str, id_field: str = "id") -> dict:
    """One preference pair from TRL's standard/conversational forms, UltraFeedback-binarized, or token ids."""
    ids = {k: _token_ids(record.get(f"{k}_ids"), f"{k}_ids") for k in ("prompt", "chosen", "rejected")}
    has_ids = bool(ids["chosen"] or ids["rejected"])
    if has_ids and not (ids["chosen"] and ids["rejected"]):
        raise BadRow("'chosen_ids' and 'rejected_ids' must both be given")
    if has_ids and ids["chosen"] == ids["rejected"]:
        raise BadRow("chosen and rejected are the same tokens")
    text = {}
    for key in ("chosen", "rejected"):
        if key in record and record[key] is not None:
            text[key] = _side(record[key], key)
        elif not has_ids:
            raise BadRow(f"no '{key}' field (has: {', '.join(record) or 'nothing'})")
    prompt = record.get("prompt")
    text["prompt"] = (
        _side(prompt, "prompt")
        if prompt is not None
        else ([] if "chosen" in text and isinstance(text["chosen"], list) else "")
    )
    if "chosen" in text and "rejected" in text:
        text = _split_prompt(text)
    used = ["prompt", "chosen", "rejected", "prompt_ids", "chosen_ids", "rejected_ids", id_field]
    return {
        "id": str(record.get(id_field, default_id)),
        **{f"{k}_ids": ids[k] for k in ("prompt", "chosen", "rejected")},
        **{k: _json(text.get(k, "")) for k in ("prompt", "chosen", "rejected")},
        "meta": meta_json(record, used),
    }


def _split_prompt(text: dict) -> dict:
    """Bring text pairs to one of the two documented forms (see the module docstring)."""
    prompt, chosen, rejected = text["prompt"], text["chosen"], text["rejected"]
    if isinstance(chosen, str) != isinstance(rejected, str):
        raise BadRow("'chosen' and 'rejected' must both be strings or both message lists")
    if isinstance(chosen, str):
        if not isinstance(prompt, str):
            chosen, rejected = [{"role": "assistant", "content": chosen}], [{"role": "assistant", "content": rejected}]
        elif chosen == rejected:
            raise BadRow("chosen and rejected are the same text")
        else:
            return text
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}] if prompt else []
    # UltraFeedback-binarized and TRL's implicit-prompt form repeat the conversation in both replies.
    shared = 0
    while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
        shared += 1
    head = chosen[:shared]
    if head:  # the replies carry the conversation (as TRL's extract_prompt reads them): it is the prompt
        prompt, chosen, rejected = head, chosen[shared:], rejected[shared:]
    if not prompt:
        raise BadRow("no prompt (neither a 'prompt' field nor a shared start of 'chosen' and 'rejected')")
    for key, side in (("chosen", chosen), ("rejected", rejected)):
        if not side or side[0]["role"] != "assistant" or side[-1]["role"] != "assistant":
            raise BadRow(f"'{key}' must start and end with an assistant turn (after the prompt)")
    if chosen == rejected:
        raise BadRow("chosen and rejected are the same text")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


# ------------------------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class ProblemFields:
    """Field options for problems files: `--prompt-field`, `--answer-field`, `--task` (None = detect)."""

    prompt: str | None = None
    answer: str | None = None
    task: str | None = None
    id: str = "id"


def _gsm8k(record: dict) -> tuple[str, str, str, list[str]]:
    answer = str(record["answer"])
    if "####" not in answer:
        raise BadRow("GSM8K 'answer' has no '#### ANSWER' line")
    return record["question"], answer.split("####")[-1].strip().replace(",", ""), "", ["question", "answer"]


def _math(record: dict) -> tuple[str, str, str, list[str]]:
    from phi4cli.evaluate.answers import last_boxed

    answer = record.get("answer") or last_boxed(str(record["solution"]))
    if answer is None:
        raise BadRow("MATH 'solution' has no \\boxed{} answer")
    return record["problem"], str(answer), "", ["problem", "answer"]


def _mmlu(record: dict) -> tuple[str, str, str, list[str]]:
    choices = record["choices"]
    if not isinstance(choices, list) or len(choices) < 2 or len(choices) > len(LETTERS):
        raise BadRow("'choices' must be a list of 2 to 26 answers")
    key = record["answer"]
    if isinstance(key, int) and not isinstance(key, bool) or isinstance(key, str) and key.strip().isdigit():
        index = int(key)
    elif isinstance(key, str) and key.strip().upper() in LETTERS[: len(choices)] and len(key.strip()) == 1:
        index = LETTERS.index(key.strip().upper())
    else:
        raise BadRow(f"answer {key!r} is neither a choice index nor a letter")
    if not 0 <= index < len(choices):
        raise BadRow(f"answer {key!r} is out of range for {len(choices)} choices")
    prompt = str(record["question"]).strip() + "\n" + "".join(f"{LETTERS[i]}. {c}\n" for i, c in enumerate(choices))
    return prompt + "Answer:", LETTERS[index], "", ["question", "choices", "answer"]


def _humaneval(record: dict) -> tuple[str, str, str, list[str]]:
    tests = f"\n\n{record['test']}\n\ncheck({record['entry_point']})\n"
    return record["prompt"], record.get("canonical_solution") or "", tests, ["prompt", "canonical_solution", "test"]


# (task, fields that identify the published layout, converter)
_PROBLEM_LAYOUTS: list[tuple[str, tuple[str, ...], Callable[[dict], tuple[str, str, str, list[str]]]]] = [
    ("humaneval", ("prompt", "test", "entry_point"), _humaneval),
    ("mmlu", ("question", "choices", "answer"), _mmlu),
    ("gsm8k", ("question", "answer"), _gsm8k),
    ("math", ("problem", "solution"), _math),
]


def problem_row(record: dict, default_id: str, fields: ProblemFields = ProblemFields()) -> dict:
    """One problem from GSM8K, MATH, MMLU-style, HumanEval as published, or `--prompt-field/--answer-field`."""
    task = fields.task
    if fields.prompt or fields.answer:
        prompt_field, answer_field = fields.prompt or "prompt", fields.answer or "answer"
        for name in (prompt_field, answer_field):
            if name not in record:
                raise BadRow(f"missing field '{name}' (has: {', '.join(record)})")
        prompt, answer, tests, used = record[prompt_field], record[answer_field], "", [prompt_field, answer_field]
        task = task or record.get("task")
    elif {"prompt", "answer", "task"} <= set(record):  # already the problems schema (e.g. the toy world's)
        prompt, answer, tests, used = (
            record["prompt"],
            record["answer"],
            record.get("tests") or "",
            ["prompt", "answer", "task", "tests"],
        )
        task = task or record["task"]
    else:
        for name, needs, convert in _PROBLEM_LAYOUTS:
            if all(f in record for f in needs):
                prompt, answer, tests, used = convert(record)
                task = task or name
                break
        else:
            raise BadRow(
                f"not a known problems layout (GSM8K, MATH, MMLU, HumanEval; has: {', '.join(record)}; "
                "see --prompt-field/--answer-field)"
            )
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadRow("empty prompt")
    if answer is None or (isinstance(answer, str) and not answer.strip()) and not tests:
        raise BadRow("no answer (and no tests)")
    if not task:
        raise BadRow("no task (pass --task NAME)")
    doc_id = record.get(fields.id, record.get("task_id", default_id))
    return {
        "id": str(doc_id),
        "prompt": prompt,
        "answer": str(answer),
        "task": str(task),
        "tests": tests,
        "meta": meta_json(record, [*used, fields.id, "task_id"]),
    }
