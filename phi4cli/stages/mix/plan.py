"""The mixture manifest (TOML) and the plan made from it: how many sequences each source gets.

A manifest names the tokenizer, the sequence length, the token budget and a seed (`[mix]`), and one
`[[source]]` table per data source with its share of the training tokens. The plan turns shares into
whole sequences and, with the sources' sizes, into epochs (Table 5 of the paper: epochs = tokens /
unique tokens). Relative paths resolve against the current working directory.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from phi4cli.config import did_you_mean, parse_value, read_toml
from phi4cli.errors import Phi4Error

# Table 5's most-repeated source (synthetic) is seen 13.8 times; 15 leaves it room and still stops a
# typo in a weight from silently turning a small source into hundreds of epochs.
DEFAULT_MAX_EPOCHS = 15.0
# Rows shuffled together after interleaving (each source's rows among that source's slots): enough to
# scatter the consecutive chunks of a long document over many steps, small enough that memory stays
# at window x seq_len tokens.
DEFAULT_SHUFFLE_WINDOW = 1024
WEIGHT_TOLERANCE = 1e-6  # 0.15 + 0.15 + 0.40 + 0.20 + 0.10 is 1.0000000000000002 in floating point

MIX_KEYS = ("tokenizer", "seq_len", "total_tokens", "seed", "shuffle_window")
SOURCE_KEYS = (
    "name",
    "path",
    "weight",
    "max_epochs",
    "text_field",
    "min_tokens",
    "long_weight",
    "unique_tokens",
)


@dataclass(frozen=True)
class SourceSpec:
    """One `[[source]]` table."""

    name: str
    paths: tuple[str, ...]
    weight: float  # fraction of the training tokens
    max_epochs: float = DEFAULT_MAX_EPOCHS
    text_field: str = "text"
    min_tokens: int = 0  # documents with fewer text tokens are left out (long-context data: 8192)
    # (threshold, weight) pairs, ascending: a document with >= threshold text tokens is drawn `weight`
    # times per pass instead of once (the largest threshold it reaches applies)
    long_weight: tuple[tuple[int, float], ...] = ()
    unique_tokens: float | None = None  # declared size, used only by --plan when the data is absent


@dataclass(frozen=True)
class MixSpec:
    """The whole manifest, validated."""

    path: str
    tokenizer: str
    seq_len: int
    total_tokens: int
    seed: int
    shuffle_window: int
    sources: tuple[SourceSpec, ...]

    @property
    def sequences(self) -> int:
        return self.total_tokens // self.seq_len

    def as_config(self) -> dict:
        """The manifest as plain data, for the output's provenance."""
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------------ reading


def load_manifest(path: str | Path, overrides: list[str] = ()) -> MixSpec:
    """Read and validate a manifest; `overrides` are `--set` strings like `mix.seed=7`, `source.web.weight=0.2`."""
    where = str(path)
    raw = read_toml(Path(path), what="manifest")
    for setting in overrides:
        _apply_override(raw, setting, where)
    return _validate(raw, where)


def _apply_override(raw: dict, setting: str, where: str) -> None:
    key, sep, value_text = setting.partition("=")
    parts = key.strip().split(".")
    if not sep or not (parts[0] == "mix" and len(parts) == 2 or parts[0] == "source" and len(parts) == 3):
        raise Phi4Error(f"--set {setting}: expected mix.KEY=VALUE or source.NAME.KEY=VALUE")
    value = parse_value(value_text)
    if parts[0] == "mix":
        raw.setdefault("mix", {})[parts[1]] = value
        return
    tables = [t for t in raw.get("source", []) if isinstance(t, dict) and t.get("name") == parts[1]]
    if not tables:
        raise Phi4Error(f"--set {setting}: {where} has no source named '{parts[1]}'")
    tables[0][parts[2]] = value


def _validate(raw: dict, where: str) -> MixSpec:
    _no_unknown_keys(raw, ("mix", "source"), where, "top level")
    mix = raw.get("mix")
    if not isinstance(mix, dict):
        raise Phi4Error(f"{where}: missing [mix] table (tokenizer, seq_len, total_tokens, seed)")
    _no_unknown_keys(mix, MIX_KEYS, where, "[mix]")
    tables = raw.get("source")
    if not isinstance(tables, list) or not tables:
        raise Phi4Error(f"{where}: no [[source]] tables")
    spec = MixSpec(
        path=where,
        tokenizer=_get(mix, "tokenizer", str, where, "[mix]"),
        seq_len=_positive_int(mix, "seq_len", where, "[mix]"),
        total_tokens=_positive_int(mix, "total_tokens", where, "[mix]"),
        seed=_get(mix, "seed", int, where, "[mix]", default=0),
        shuffle_window=_positive_int(mix, "shuffle_window", where, "[mix]", default=DEFAULT_SHUFFLE_WINDOW),
        sources=tuple(_source(t, i, where) for i, t in enumerate(tables)),
    )
    if spec.seed < 0:
        raise Phi4Error(f"{where}: [mix] seed: must be >= 0, got {spec.seed}")
    if spec.total_tokens < spec.seq_len:
        raise Phi4Error(f"{where}: [mix] total_tokens ({spec.total_tokens}) is less than one sequence ({spec.seq_len})")
    names = [s.name for s in spec.sources]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise Phi4Error(f"{where}: two sources are named '{duplicate}'")
    total_weight = math.fsum(s.weight for s in spec.sources)
    if abs(total_weight - 1.0) > WEIGHT_TOLERANCE:
        raise Phi4Error(f"{where}: source weights sum to {total_weight:.6g}, not 1")
    return spec


def _source(table: object, index: int, where: str) -> SourceSpec:
    if not isinstance(table, dict):
        raise Phi4Error(f"{where}: [[source]] #{index + 1} is not a table")
    label = f"[[source]] '{table['name']}'" if isinstance(table.get("name"), str) else f"[[source]] #{index + 1}"
    _no_unknown_keys(table, SOURCE_KEYS, where, label)
    name = _get(table, "name", str, where, label)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise Phi4Error(f"{where}: {label} name: use letters, digits, '-', '_' or '.'")
    paths = table.get("path")
    paths = [paths] if isinstance(paths, str) else paths
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise Phi4Error(f"{where}: {label} path: expected a path or a non-empty list of paths")
    declared = table.get("unique_tokens")
    if declared is not None and not (_is_number(declared) and declared > 0):
        raise Phi4Error(f"{where}: {label} unique_tokens: expected a positive number, got {declared!r}")
    return SourceSpec(
        name=name,
        paths=tuple(paths),
        weight=_positive_number(table, "weight", where, label),
        max_epochs=_positive_number(table, "max_epochs", where, label, default=DEFAULT_MAX_EPOCHS),
        text_field=_get(table, "text_field", str, where, label, default="text"),
        min_tokens=_non_negative_int(table, "min_tokens", where, label),
        long_weight=_long_weight(table.get("long_weight", {}), where, label),
        unique_tokens=float(declared) if declared is not None else None,
    )


def _long_weight(table: object, where: str, label: str) -> tuple[tuple[int, float], ...]:
    if not isinstance(table, dict):
        raise Phi4Error(f"{where}: {label} long_weight: expected a table like {{ 16384 = 2.0 }}")
    pairs = []
    for key, weight in table.items():
        if not key.isdigit() or int(key) <= 0:
            raise Phi4Error(f"{where}: {label} long_weight: key '{key}' is not a token count")
        if not _is_number(weight) or weight <= 0:
            raise Phi4Error(f"{where}: {label} long_weight.{key}: expected a positive number, got {weight!r}")
        pairs.append((int(key), float(weight)))
    return tuple(sorted(pairs))


def _no_unknown_keys(table: dict, known: tuple[str, ...], where: str, label: str) -> None:
    for key in table:
        if key not in known:
            hint = did_you_mean(key, known) or f" (known: {', '.join(known)})"
            raise Phi4Error(f"{where}: {label}: unknown key '{key}'{hint}")


_MISSING = object()


def _get(table: dict, key: str, kind: type, where: str, label: str, default: object = _MISSING):
    value = table.get(key, default)
    if value is _MISSING:
        raise Phi4Error(f"{where}: {label}: missing key '{key}'")
    if not isinstance(value, kind) or isinstance(value, bool):
        raise Phi4Error(f"{where}: {label} {key}: expected {kind.__name__}, got {value!r}")
    return value


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive_number(table: dict, key: str, where: str, label: str, default: object = _MISSING) -> float:
    value = table.get(key, default)
    if value is _MISSING:
        raise Phi4Error(f"{where}: {label}: missing key '{key}'")
    if not _is_number(value) or value <= 0:
        raise Phi4Error(f"{where}: {label} {key}: expected a positive number, got {value!r}")
    return float(value)


def _positive_int(table: dict, key: str, where: str, label: str, default: object = _MISSING) -> int:
    value = table.get(key, default)
    if value is _MISSING:
        raise Phi4Error(f"{where}: {label}: missing key '{key}'")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 1e13 reads better than 10_000_000_000_000 to some
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise Phi4Error(f"{where}: {label} {key}: expected a positive integer, got {value!r}")
    return value


def _non_negative_int(table: dict, key: str, where: str, label: str) -> int:
    value = table.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Phi4Error(f"{where}: {label} {key}: expected an integer >= 0, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class SourceSize:
    """What a source holds once tokenised (or what the manifest declares it holds)."""

    documents: int  # documents kept (after min_tokens); 0 when declared
    unique_tokens: int  # their tokens, each document's <|endoftext|> included
    declared: bool = False


@dataclass(frozen=True)
class SourcePlan:
    spec: SourceSpec
    sequences: int
    size: SourceSize
    seq_len: int

    @property
    def tokens(self) -> int:
        return self.sequences * self.seq_len

    @property
    def epochs(self) -> float:
        """Table 5's definition: tokens trained on / unique tokens."""
        return self.tokens / self.size.unique_tokens


@dataclass(frozen=True)
class MixPlan:
    spec: MixSpec
    sources: tuple[SourcePlan, ...] = field(default_factory=tuple)

    @property
    def sequences(self) -> int:
        return sum(s.sequences for s in self.sources)


def apportion(total: int, weights: list[float]) -> list[int]:
    """Split `total` whole units by weight (largest remainder; ties go to the earlier source)."""
    quotas = [total * w for w in weights]
    counts = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def make_plan(spec: MixSpec, sizes: list[SourceSize]) -> MixPlan:
    """Whole sequences per source; stops when a source is empty or too small for its weight."""
    counts = apportion(spec.sequences, [s.weight for s in spec.sources])
    plans = tuple(SourcePlan(s, n, size, spec.seq_len) for s, n, size in zip(spec.sources, counts, sizes))
    for plan in plans:
        _check_size(plan, spec)
    return MixPlan(spec, plans)


def _check_size(plan: SourcePlan, spec: MixSpec) -> None:
    source = plan.spec
    if plan.size.unique_tokens == 0:
        kept = f" with at least {source.min_tokens} tokens" if source.min_tokens else ""
        raise Phi4Error(f"{spec.path}: source '{source.name}' has no documents{kept}")
    if plan.epochs > source.max_epochs:
        factor = plan.epochs / source.max_epochs
        raise Phi4Error(
            f"{spec.path}: source '{source.name}' is too small for its weight: {human(plan.size.unique_tokens)} unique "
            f"tokens for {source.weight:.1%} of {human(spec.total_tokens)} is {plan.epochs:,.1f} epochs > max_epochs "
            f"{source.max_epochs:g} ({factor:,.2f}x too few tokens: add data, lower the weight or raise max_epochs)"
        )


def human(n: float) -> str:
    """1.3T, 290B, 4.19M, 812: token counts the way the paper writes them."""
    for scale, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:g}"


def format_plan(plan: MixPlan) -> str:
    """The plan as a table shaped like the paper's Table 5 (plus sequences, and where sizes came from)."""
    spec = plan.spec
    header = ("source", "fraction", "tokens", "unique tokens", "epochs", "sequences", "size")
    rows = [
        (
            s.spec.name,
            f"{s.tokens / (plan.sequences * spec.seq_len):.1%}",
            human(s.tokens),
            human(s.size.unique_tokens),
            f"{s.epochs:.1f}",
            f"{s.sequences:,}",
            "declared" if s.size.declared else f"{s.size.documents:,} docs",
        )
        for s in plan.sources
    ]
    unique = sum(s.size.unique_tokens for s in plan.sources)
    total = plan.sequences * spec.seq_len
    rows.append(("total", "100.0%", human(total), human(unique), f"{total / unique:.1f}", f"{plan.sequences:,}", ""))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        padded = [c.ljust(w) if i in (0, 6) else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(padded).rstrip()

    title = (
        f"{spec.path}: {human(total)} tokens = {plan.sequences:,} sequences x {spec.seq_len:,} tokens "
        f"(tokenizer {spec.tokenizer}, seed {spec.seed})"
    )
    return "\n".join([title, line(header), *map(line, rows)]) + "\n"
