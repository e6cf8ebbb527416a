"""The quality classifier: logistic regression over hashed word unigrams and bigrams.

Why this family: the Phi-4 report filters organic web with "small classifiers" trained on ~1M LLM
annotations, so every crawled page is scored — the scorer must run at crawl speed on CPU. A hashed
n-gram linear model (the model inside fastText's supervised mode, without the embedding layer) scores a
page with one gather and one sum over its few hundred features: tens of thousands of pages per second
per core, with a flat, small model (2**20 float32 weights = 4 MB) and no vocabulary to build. It trains
in one streaming pass per epoch, so 1M annotations never have to fit in memory. What it cannot do —
read meaning beyond word pairs — is what an embedding classifier would add at 10-100x the cost.

Features: the document's tokens (lower-cased runs of letters and digits) and token bigrams, hashed into
`buckets`; value = 1 + log(count), L2-normalised per document. Training: Adagrad on the logistic loss,
classes weighted to balance, a deterministic hold-out (by row position) for precision/recall/F1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from phi4cli.errors import Phi4Error
from phi4cli.hashing import U64, mix64, ngram_hashes
from phi4cli.stages.filter.text import TextBatch

FORMAT = "phi4-quality-classifier/1"


def features(batch: TextBatch, buckets: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse features of each document: (document, bucket, value) triples, grouped by document."""
    bigrams, start = ngram_hashes(batch.token_hashes, batch.token_doc, 2)
    hashes = np.concatenate([batch.token_hashes, mix64(bigrams ^ U64(0xB16)) if len(bigrams) else bigrams])
    docs = np.concatenate([batch.token_doc, batch.token_doc[start]]).astype(np.int64)
    keys = docs * buckets + (hashes % U64(buckets)).astype(np.int64)
    keys, counts = np.unique(keys, return_counts=True)
    doc, bucket = keys // buckets, keys % buckets
    value = 1.0 + np.log(counts)
    norm = np.sqrt(np.bincount(doc, weights=value**2, minlength=batch.n))
    return doc, bucket, (value / norm[doc]).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


@dataclass
class QualityClassifier:
    """Weights of the linear model plus what it was trained on (kept in the model file)."""

    weights: np.ndarray  # float32 [buckets]
    bias: float
    info: dict = field(default_factory=dict)  # labels, counts, held-out metrics

    @property
    def buckets(self) -> int:
        return len(self.weights)

    def score(self, batch: TextBatch) -> np.ndarray:
        """Probability that each document is good (float32)."""
        doc, bucket, value = features(batch, self.buckets)
        logits = np.bincount(doc, weights=self.weights[bucket] * value, minlength=batch.n) + self.bias
        return _sigmoid(logits).astype(np.float32)

    def save(self, path: str | Path) -> None:
        """Write the model file atomically (a temporary name, then a rename)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as f:
            np.savez(
                f,
                format=np.array(FORMAT),
                weights=self.weights.astype(np.float32),
                bias=np.array(self.bias, dtype=np.float64),
                info=np.array(json.dumps(self.info)),
            )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> "QualityClassifier":
        path = Path(path)
        if not path.is_file():
            raise Phi4Error(f"{path}: no such classifier file")
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["format"]) != FORMAT:
                    raise ValueError(f"format {data['format']}")
                weights, bias, info = data["weights"], float(data["bias"]), json.loads(str(data["info"]))
        except Exception as e:  # a zip that is not ours, not a zip at all, a truncated file...
            raise Phi4Error(
                f"{path}: not a phi4 quality classifier (train one with `phi4 filter train-classifier`; {type(e).__name__})"
            )
        if weights.ndim != 1 or weights.dtype != np.float32 or not np.isfinite(weights).all():
            raise Phi4Error(f"{path}: corrupt quality classifier (bad weights)")
        return cls(weights, bias, info)


# ----------------------------------------------------------------------------------- training


@dataclass
class Example:
    """A chunk of labelled documents, already featurised."""

    doc: np.ndarray
    bucket: np.ndarray
    value: np.ndarray
    labels: np.ndarray  # float64 0/1 per document

    @property
    def n(self) -> int:
        return len(self.labels)


class Trainer:
    """Adagrad on the class-weighted logistic loss with L2; one `step` per mini-batch."""

    def __init__(self, buckets: int, positive_weight: float, learning_rate: float = 0.5, l2: float = 1e-6):
        self.weights = np.zeros(buckets, np.float64)
        self.bias = 0.0
        self.grad_sq = np.full(buckets, 1e-8)
        self.bias_grad_sq = 1e-8
        self.positive_weight = positive_weight
        self.learning_rate = learning_rate
        self.l2 = l2

    def step(self, ex: Example) -> None:
        logits = np.bincount(ex.doc, weights=self.weights[ex.bucket] * ex.value, minlength=ex.n) + self.bias
        weight = np.where(ex.labels > 0.5, self.positive_weight, 1.0)
        residual = (_sigmoid(logits) - ex.labels) * weight / weight.sum()
        touched, where = np.unique(ex.bucket, return_inverse=True)
        grad = np.bincount(where, weights=residual[ex.doc] * ex.value, minlength=len(touched))
        grad += self.l2 * self.weights[touched]
        self.grad_sq[touched] += grad**2
        self.weights[touched] -= self.learning_rate * grad / np.sqrt(self.grad_sq[touched])
        bias_grad = residual.sum()
        self.bias_grad_sq += bias_grad**2
        self.bias -= self.learning_rate * bias_grad / np.sqrt(self.bias_grad_sq)

    def model(self, info: dict) -> QualityClassifier:
        return QualityClassifier(self.weights.astype(np.float32), float(self.bias), info)


def minibatches(ex: Example, size: int, rng: np.random.Generator) -> Iterator[Example]:
    """The documents of a chunk in a random order, `size` at a time."""
    order = rng.permutation(ex.n)
    starts = np.searchsorted(ex.doc, np.arange(ex.n + 1))  # features of doc i: starts[i]:starts[i+1]
    for lo in range(0, ex.n, size):
        docs = order[lo : lo + size]
        lengths = starts[docs + 1] - starts[docs]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        index = np.repeat(starts[docs] - offsets[:-1], lengths) + np.arange(offsets[-1])
        yield Example(np.repeat(np.arange(len(docs)), lengths), ex.bucket[index], ex.value[index], ex.labels[docs])


def metrics(scores: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict:
    """Precision, recall and F1 of "good" at `threshold`, plus accuracy and counts."""
    predicted, actual = scores >= threshold, labels > 0.5
    tp = int((predicted & actual).sum())
    fp = int((predicted & ~actual).sum())
    fn = int((~predicted & actual).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = float((predicted == actual).mean()) if len(labels) else 0.0
    return {
        "rows": int(len(labels)),
        "positives": int(actual.sum()),
        "threshold": threshold,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": accuracy,
    }


# ------------------------------------------------------------------------------ labelled data


@dataclass(frozen=True)
class Labels:
    """How a row's label becomes 1 (good), 0 (not good) or NaN (no label: the row is skipped).

    `column` is a column name, or `meta.KEY` for a key of the JSON `meta` column. Booleans are taken as
    they are, numbers are good at or above `positive_at` (0/1 labels, 0-1 scores, 0-5 ratings), strings
    are good when they are one of `positive`.
    """

    column: str
    positive: tuple[str, ...] = ("good",)
    positive_at: float = 0.5

    @property
    def source_column(self) -> str:
        return "meta" if self.column.startswith("meta.") else self.column

    def read(self, batch: pa.RecordBatch, where: str) -> np.ndarray:
        values = batch.column(self.source_column)
        if self.column.startswith("meta."):
            key = self.column.removeprefix("meta.")
            try:
                values = pa.array([_meta_get(m, key, where) for m in values.to_pylist()])
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                raise Phi4Error(f"{where}: {self.column} mixes types (numbers and strings)")
        return self._binary(values, where)

    def _binary(self, values: pa.Array, where: str) -> np.ndarray:
        missing = values.is_null().to_numpy(zero_copy_only=False)
        kind = values.type
        if pa.types.is_boolean(kind):
            good = pc.fill_null(values, False).to_numpy(zero_copy_only=False)
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
            good = pc.fill_null(pc.greater_equal(values, self.positive_at), False).to_numpy(zero_copy_only=False)
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            good = pc.is_in(values, value_set=pa.array(list(self.positive), pa.string())).to_numpy(zero_copy_only=False)
        elif pa.types.is_null(kind):
            good = np.zeros(len(values), dtype=bool)
        else:
            raise Phi4Error(f"{where}: label column '{self.column}' has type {kind}; expected bool, number or string")
        return np.where(missing, np.nan, good.astype(np.float64))


def _meta_get(meta: str | None, key: str, where: str):
    if not meta:
        return None
    try:
        value = json.loads(meta)
    except json.JSONDecodeError:
        raise Phi4Error(f"{where}: a meta value is not JSON")
    return value.get(key) if isinstance(value, dict) else None


def in_holdout(rows: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A fixed pseudo-random `fraction` of row positions: the same rows for the same data and seed."""
    return mix64(rows.astype(U64) ^ U64(seed * 0x9E37 + 1)) % U64(1_000_000) < U64(round(fraction * 1_000_000))


Chunks = Callable[[], Iterator[tuple[pa.Array, np.ndarray]]]  # (texts, 0/1/NaN labels), in a fixed order


def train(
    chunks: Chunks,
    *,
    buckets: int,
    epochs: int,
    holdout: float,
    seed: int,
    batch_size: int = 256,
    on_epoch: Callable[[int], None] = lambda epoch: None,
) -> tuple[QualityClassifier, dict]:
    """Train on the non-held-out labelled rows, then measure on the held-out ones.

    `chunks()` is called once to count the classes and once per epoch (the data streams; it is never
    held in memory whole), then once more to score the held-out rows.
    """

    def split() -> Iterator[tuple[pa.Array, np.ndarray, np.ndarray]]:
        position = 0
        for texts, labels in chunks():
            held = in_holdout(np.arange(position, position + len(labels)), holdout, seed)
            position += len(labels)
            yield texts, labels, held

    positives = negatives = 0
    for _, labels, held in split():
        train_labels = labels[~held & ~np.isnan(labels)]
        positives += int((train_labels > 0.5).sum())
        negatives += int((train_labels <= 0.5).sum())
    if positives == 0 or negatives == 0:
        raise Phi4Error(
            f"labels: training needs both classes (got {positives} good and {negatives} not-good rows; see --positive/--positive-at)"
        )

    trainer = Trainer(buckets, positive_weight=negatives / positives)
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        for texts, labels, held in split():
            keep = ~held & ~np.isnan(labels)
            if keep.any():
                doc, bucket, value = features(TextBatch(texts.filter(pa.array(keep))), buckets)
                for mini in minibatches(Example(doc, bucket, value, labels[keep]), batch_size, rng):
                    trainer.step(mini)
        on_epoch(epoch + 1)

    model = trainer.model({})
    scores, truth = [], []
    for texts, labels, held in split():
        keep = held & ~np.isnan(labels)
        if keep.any():
            scores.append(model.score(TextBatch(texts.filter(pa.array(keep)))))
            truth.append(labels[keep])
    held_out = metrics(np.concatenate(scores or [np.zeros(0)]), np.concatenate(truth or [np.zeros(0)]))
    model.info = {"train_rows": positives + negatives, "train_positives": positives, "holdout": held_out}
    return model, held_out
