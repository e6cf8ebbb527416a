"""The filter's settings: stages/filter.toml (or --config FILE), then `--set section.key=value` overrides.

The TOML holds the values and says where each comes from; this module holds what each key may be
(type and range) and checks every key, so a typo or a threshold out of range is one line naming the key.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from phi4cli.config import STAGES_DIR, did_you_mean, parse_override, read_toml
from phi4cli.errors import Phi4Error

STAGE_TOML = STAGES_DIR / "filter.toml"

Check = Callable[[Any], str | None]  # returns what is wrong, or None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def fraction(v: Any) -> str | None:
    return None if _is_number(v) and 0.0 <= v <= 1.0 else "must be a number in [0, 1]"


def count(v: Any) -> str | None:
    return None if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else "must be a whole number >= 0"


def positive(v: Any) -> str | None:
    return None if isinstance(v, int) and not isinstance(v, bool) and v >= 1 else "must be a whole number >= 1"


def non_negative(v: Any) -> str | None:
    return None if _is_number(v) and v >= 0 else "must be a number >= 0"


def flag(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def text(v: Any) -> str | None:
    return None if isinstance(v, str) else "must be a string"


def words(v: Any) -> str | None:
    return None if isinstance(v, list) and all(isinstance(x, str) for x in v) else "must be a list of strings"


def some_words(v: Any) -> str | None:
    return words(v) or (None if v else "must name at least one")


def ngram_fractions(v: Any) -> str | None:
    """A table {n = fraction} with n in 2..20, e.g. { 2 = 0.2, 3 = 0.18 }."""
    if not isinstance(v, dict):
        return "must be a table like { 2 = 0.2, 3 = 0.18 }"
    for n, limit in v.items():
        if not (n.isdigit() and 2 <= int(n) <= 20) or fraction(limit):
            return f"must map n-gram sizes 2..20 to numbers in [0, 1] (bad entry {n} = {limit!r})"
    return None


SCHEMA: dict[str, Check] = {
    "rules.enabled": flag,
    "rules.skip": words,
    "rules.statistics_min_words": count,
    "rules.gopher_quality.min_words": count,
    "rules.gopher_quality.max_words": count,
    "rules.gopher_quality.min_mean_word_length": non_negative,
    "rules.gopher_quality.max_mean_word_length": non_negative,
    "rules.gopher_quality.max_hash_ratio": non_negative,
    "rules.gopher_quality.max_ellipsis_ratio": non_negative,
    "rules.gopher_quality.max_bullet_lines": fraction,
    "rules.gopher_quality.max_ellipsis_lines": fraction,
    "rules.gopher_quality.min_content_words": fraction,
    "rules.gopher_quality.min_stop_words": count,
    "rules.gopher_quality.stop_words": words,
    "rules.gopher_repetition.max_dup_lines": fraction,
    "rules.gopher_repetition.max_dup_paragraphs": fraction,
    "rules.gopher_repetition.max_dup_line_chars": fraction,
    "rules.gopher_repetition.max_dup_paragraph_chars": fraction,
    "rules.gopher_repetition.max_top_ngram_chars": ngram_fractions,
    "rules.gopher_repetition.max_dup_ngram_chars": ngram_fractions,
    "rules.c4.lorem_ipsum": flag,
    "rules.c4.curly_bracket": flag,
    "rules.c4.max_word_length": positive,
    "rules.c4.max_boilerplate_lines": fraction,
    "rules.fineweb.min_line_punct": fraction,
    "rules.fineweb.max_short_lines": fraction,
    "rules.fineweb.short_line_chars": count,
    "rules.fineweb.max_dup_line_chars": fraction,
    "rules.fineweb.max_newlines_per_word": non_negative,
    "language.enabled": flag,
    "language.model": text,
    "language.languages": some_words,
    "language.min_score": fraction,
    "language.max_chars": positive,
    "classifier.model": text,
    "classifier.threshold": fraction,
    "dedup.enabled": flag,
    "dedup.exact": flag,
    "dedup.minhash": flag,
    "dedup.shingle_words": positive,
    "dedup.bands": positive,
    "dedup.rows_per_band": positive,
    "dedup.seed": count,
    "limits.max_doc_bytes": positive,
}
TABLES = {key.rsplit(".", 1)[0] for key in SCHEMA}  # "rules", "rules.c4", "language", ...


def _flatten(table: dict, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; tables that are values (n-gram tables) stay whole."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name in TABLES:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _unflatten(flat: dict[str, Any]) -> dict:
    nested: dict = {}
    for key, value in flat.items():
        *path, last = key.split(".")
        node = nested
        for part in path:
            node = node.setdefault(part, {})
        node[last] = copy.deepcopy(value)
    return nested


def _unknown(key: str, where: str) -> Phi4Error:
    return Phi4Error(f"{where}: unknown setting '{key}'{did_you_mean(key, SCHEMA)}")


def load_settings(path: Path | str | None, overrides: Sequence[str] = (), flags: dict[str, Any] | None = None) -> dict:
    """The checked settings as a nested dict. `flags` are command-line options (already parsed values)."""
    path = Path(path) if path else STAGE_TOML
    flat = _flatten(read_toml(path))
    origin = {key: str(path) for key in flat}
    for item in overrides:
        key, value = parse_override(item)
        flat[key], origin[key] = value, f"--set {item}"
    for key, value in (flags or {}).items():
        if value is not None:
            flat[key], origin[key] = value, f"--{key.rsplit('.', 1)[-1]}"
    for key, value in flat.items():
        if key not in SCHEMA:
            raise _unknown(key, origin[key])
        problem = SCHEMA[key](value)
        if problem:
            raise Phi4Error(f"{origin[key]}: {key} {problem} (got {value!r})")
    missing = [key for key in SCHEMA if key not in flat]
    if missing:
        raise Phi4Error(f"{path}: missing setting '{missing[0]}'")
    _check_together(flat, origin)
    return _unflatten(flat)


def _check_together(flat: dict[str, Any], origin: dict[str, str]) -> None:
    """Settings that are only wrong in combination."""
    for low, high in (
        ("rules.gopher_quality.min_words", "rules.gopher_quality.max_words"),
        ("rules.gopher_quality.min_mean_word_length", "rules.gopher_quality.max_mean_word_length"),
    ):
        if flat[low] > flat[high]:
            raise Phi4Error(f"{origin[low]}: {low} ({flat[low]}) is above {high} ({flat[high]})")
    from phi4cli.stages.filter.rules import all_rules  # the rule names depend on the n-gram tables

    names = {rule.name for rule in all_rules(_unflatten(flat)["rules"])}
    for name in flat["rules.skip"]:
        if name not in names:
            raise Phi4Error(f"{origin['rules.skip']}: rules.skip names no rule '{name}'{did_you_mean(name, names)}")
