"""`phi4 mix` speed, as ratios against peers run side by side in the same process.

1. Tokenise + pack: phi4's path from document shards to packed rows (read the shards, tokenise on a
   thread pool, write the token cache, pack and interleave into Arrow record batches) against plain
   tiktoken `encode_ordinary_batch` on the same texts, already in memory, with the same worker count.
   Goal: ratio >= 0.9 (the tokenizer is the physical limit).
2. Streaming: `phi4 mix -o -` (warm cache) read by a consumer process through a pipe, in tokens/s,
   against the tokens/s the toy trainer consumes: forward + backward + AdamW step of the "tiny" preset
   at the toy batch geometry (stages/demo/pretrain.toml: 16 x 256 tokens per step), on the same cores.
   Goal: ratio >= 20.

The text is real: GSM8K questions/answers and HumanEval prompts/solutions (../shared/benchmarks),
shuffled into documents of 1-6 KB. No extra install; the trainer side needs torch and phi4cli.model.

    python bench/mix_throughput.py [--mb 16] [--workers 2] [--repeats 5] [--tokenizer phi4]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from phi4cli.io import DOCUMENTS_SCHEMA, DatasetWriter, read_table, resolve_inputs
from phi4cli.stages.mix.pack import Mixer, SourceStream
from phi4cli.stages.mix.plan import SourceSpec
from phi4cli.stages.mix.tokens import tokenise
from phi4cli.tokenizer import load_tokenizer

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO.parent / "shared" / "benchmarks"
SEQ_LEN = 256  # the toy pretraining's (stages/demo/pretrain.toml)
STEP_ROWS = 16  # its global batch
TOY_VOCAB = 4096  # `phi4 tokenizer train`'s default: the toy model's embedding rows


# ------------------------------------------------------------------------------------------- corpus


def real_snippets() -> list[str]:
    snippets = []
    for line in (BENCHMARKS / "gsm8k-test.jsonl").read_text().splitlines():
        item = json.loads(line)
        snippets += [item["question"], item["answer"]]
    with gzip.open(BENCHMARKS / "humaneval.jsonl.gz", "rt") as f:
        for line in f:
            item = json.loads(line)
            snippets.append(item["prompt"] + item["canonical_solution"])
    return snippets


def make_corpus(directory: Path, megabytes: int) -> str:
    rng = random.Random(0)
    snippets = real_snippets()
    rows, size = [], 0
    while size < megabytes * 1_000_000:
        parts, length = [], rng.randint(1000, 6000)
        while sum(map(len, parts)) < length:
            parts.append(rng.choice(snippets))
        text = "\n\n".join(parts)
        rows.append({"id": f"doc-{len(rows)}", "text": text, "source": "bench", "meta": "{}"})
        size += len(text)
    with DatasetWriter(directory, DOCUMENTS_SCHEMA, shard_bytes=4_000_000) as writer:  # several shards
        for start in range(0, len(rows), 512):
            writer.write_rows(rows[start : start + 512])
    return str(directory)


# ------------------------------------------------------------------------------ 1. tokenise + pack


def plain_tiktoken(texts: list[str], tokenizer, workers: int) -> int:
    return sum(map(len, tokenizer.encoding.encode_ordinary_batch(texts, num_threads=workers)))


def phi4_tokenise_and_pack(dataset: str, tokenizer, workers: int, cache: Path) -> int:
    shards = resolve_inputs([dataset])
    stats = tokenise([(s, "text") for s in shards], tokenizer, cache, workers)
    spec = SourceSpec("bench", (dataset,), 1.0)
    stream = SourceStream(spec, [stats.paths[s.path, "text"] for s in shards], seed=0)
    rows = stream.size().unique_tokens // SEQ_LEN
    mixer = Mixer([stream], [rows], SEQ_LEN, seed=0, window=1024)
    return sum(batch.num_rows for batch in mixer.batches()) * SEQ_LEN


def bench_tokenise(dataset: str, tokenizer, workers: int, repeats: int, work: Path) -> None:
    texts = read_table([dataset]).column("text").to_pylist()
    plain_times, phi4_times = [], []
    for repeat in range(repeats):  # alternate, so drifting machine load hits both sides alike
        start = time.perf_counter()
        tokens = plain_tiktoken(texts, tokenizer, workers)
        plain_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        packed = phi4_tokenise_and_pack(dataset, tokenizer, workers, work / f"cache-{repeat}")
        phi4_times.append(time.perf_counter() - start)
    plain, phi4 = statistics.median(plain_times), statistics.median(phi4_times)
    print(
        f"corpus: {len(texts):,} documents, {sum(map(len, texts)) / 1e6:.1f} MB, {tokens:,} tokens; "
        f"tokenizer {tokenizer.name}, {workers} workers, median of {repeats}"
    )
    print(f"  plain tiktoken encode_ordinary_batch   {plain:7.3f}s  {tokens / plain / 1e6:6.2f}M tokens/s")
    print(
        f"  phi4 mix tokenise + cache + pack       {phi4:7.3f}s  {tokens / phi4 / 1e6:6.2f}M tokens/s "
        f"({packed:,} tokens packed)"
    )
    print(f"  ratio (phi4 / tiktoken throughput)     {plain / phi4:7.2f}   goal >= 0.9")


# ------------------------------------------------------------------------------------- 2. streaming


def stream_rate(manifest: Path, cache: Path, work: Path) -> float:
    """tokens/s that a consumer reading `phi4 mix -o -` through a pipe receives (start-up included)."""
    command = [sys.executable, "-m", "phi4cli", "mix", "-m", str(manifest), "-o", "-", "--cache-dir", str(cache)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=work, env=env) as mix:
        tokens = 0
        for batch in pa.ipc.open_stream(mix.stdout):
            tokens += len(batch.column("input_ids").values)
    if mix.returncode != 0:
        raise SystemExit(f"phi4 mix failed ({mix.returncode}); run it by hand to see why")
    return tokens / (time.perf_counter() - start)


def trainer_rate(vocab_size: int, repeats: int) -> tuple[float, str]:
    """tokens/s of forward + backward + AdamW on the toy model and batch, or why it cannot be measured."""
    try:
        import torch

        from phi4cli.model import load_model
    except ImportError as e:
        return 0.0, f"phi4cli.model or torch is missing ({e})"
    torch.manual_seed(0)
    model = load_model("tiny", vocab_size=vocab_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    ids = torch.randint(0, vocab_size, (STEP_ROWS, SEQ_LEN))
    doc_lens = [[SEQ_LEN // 2, SEQ_LEN - SEQ_LEN // 2]] * STEP_ROWS  # document masking, as the mix feeds it

    def step() -> None:
        logits = model(ids, doc_lens)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return STEP_ROWS * SEQ_LEN / statistics.median(times), f"tiny preset, {torch.get_num_threads()} threads"


def bench_stream(dataset: str, tokenizer_spec: str, repeats: int, work: Path) -> None:
    manifest = work / "stream.toml"
    tokens = 32_000_000
    manifest.write_text(
        f'[mix]\ntokenizer = "{tokenizer_spec}"\nseq_len = {SEQ_LEN}\ntotal_tokens = {tokens}\nseed = 0\n\n'
        f'[[source]]\nname = "bench"\npath = "{dataset}"\nweight = 1.0\nmax_epochs = 1000\n'
    )
    cache = work / "stream-cache"
    stream_rate(manifest, cache, work)  # fills the token cache: the rest is the warm path
    mix = statistics.median(stream_rate(manifest, cache, work) for _ in range(repeats))
    train, how = trainer_rate(TOY_VOCAB, repeats)
    print(f"stream: phi4 mix -o - | reader, {human(tokens)} tokens of {SEQ_LEN}, median of {repeats}")
    print(f"  phi4 mix -o - into a pipe              {mix / 1e6:7.2f}M tokens/s")
    if train:
        print(f"  toy trainer step ({how})  {train / 1e3:7.1f}K tokens/s (vocab {TOY_VOCAB:,})")
        print(f"  ratio (stream / trainer)               {mix / train:7.1f}x  goal >= 20")
    else:
        print(f"  toy trainer: not measured: {how}")


def human(n: float) -> str:
    return f"{n / 1e6:.0f}M" if n >= 1e6 else f"{n:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=16, help="corpus size in MB of text")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tokenizer", default="phi4", help="phi4 or a .tiktoken file")
    args = parser.parse_args()
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(REPO.parent / "shared" / "tiktoken-cache"))
    tokenizer = load_tokenizer(args.tokenizer)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        dataset = make_corpus(work / "corpus", args.mb)
        bench_tokenise(dataset, tokenizer, args.workers, args.repeats, work)
        bench_stream(
            dataset, str(Path(args.tokenizer).resolve()) if args.tokenizer != "phi4" else "phi4", args.repeats, work
        )


if __name__ == "__main__":
    main()
