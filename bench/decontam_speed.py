"""`phi4 decontam` vs datatrove's n-gram decontamination: documents per second, one core, same corpus.

Peer install (does not touch torch; xxhash<4 because datatrove 0.10's xxhash64 hashes str, which xxhash 4
rejects; spacy is datatrove's English word tokenizer):

    pip install datatrove spacy "xxhash<4"

Corpus: the toy world's web pages (`phi4cli.demo.write_toy_world`, scale 1: ~3,000 pages) with 30 real
GSM8K test questions planted. Benchmark: the real GSM8K test file (question and answer of 1,319 items).
- phi4: the work `phi4 decontam` does per run - the whitelist counting pass and the filter pass (13-grams,
  7-grams, whole short texts) - reading the Arrow dataset, on one process.
- datatrove: its index is built by its own `NGramsDecontIndexer.compute_hashes` from the same texts (label
  n-grams only; the indexer's constructor and `run()` need lighteval to download tasks, so compute_hashes
  runs on a stand-in object with the attributes it reads), written where `NGramsDecontFilter` loads it,
  then `NGramsDecontFilter.filter` runs on every document (13-grams, in memory, no I/O).
So phi4 does strictly more work (two passes, three kinds of match, reading shards).
Both run on one core (`taskset` is not needed: phi4 uses --workers 1, and neither library threads here).
Memory: peak RSS of `phi4 decontam` (a subprocess, ru_maxrss) on the corpus at 1x and 4x.

Run: python bench/decontam_speed.py [--repeats 3] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
GSM8K = REPO.parent / "shared" / "benchmarks" / "gsm8k-test.jsonl"
PLANTED = 30


def build_corpus(work: Path, scale: float) -> tuple[Path, Path, int]:
    """The toy web with real GSM8K questions planted, at 1x and 4x (copies with new ids)."""
    from phi4cli.demo import write_toy_world
    from phi4cli.io import DOCUMENTS_SCHEMA, open_output, read_table

    write_toy_world(work / "toy", scale=scale)
    pages = read_table([str(work / "toy" / "web")]).select(["id", "text", "source", "meta"]).to_pylist()
    questions = [json.loads(line)["question"] for line in GSM8K.read_text().splitlines()]
    rng = random.Random(0)
    for page, question in zip(rng.sample(pages, PLANTED), questions):
        page["text"] = f"{page['text']}\n\nA question from a forum: {question}"
    for copies, name in ((1, "corpus-1x"), (4, "corpus-4x")):
        with open_output(str(work / name), DOCUMENTS_SCHEMA, shard_bytes=4_000_000) as writer:
            for copy in range(copies):
                writer.write_rows([{**p, "id": f"{p['id']}-{copy}"} for p in pages])
    return work / "corpus-1x", work / "corpus-4x", len(pages)


def phi4_once(corpus: Path) -> tuple[float, set[str]]:
    """Seconds for the counting pass + the filter pass of `phi4 decontam`; the ids of the rows rejected."""
    from phi4cli.io import resolve_inputs
    from phi4cli.stages import decontam as D

    start = time.perf_counter()
    settings = D.load_settings(None, [])
    benchmarks, texts = D.load_benchmarks([str(GSM8K)], [])
    index, _ = D.build_index(benchmarks, texts, settings)
    sources = resolve_inputs([str(corpus)])
    D.whitelist_common(index, D.count_documents(sources, index, settings, workers=1), settings.whitelist_docs)
    rejected: set[str] = set()

    def emit(name: str, batch: pa.RecordBatch) -> None:
        if name == "rejected":
            rejected.update(batch.column("id").to_pylist())

    for source in sources:
        D.filter_shard(index, settings, source, emit)
    return time.perf_counter() - start, rejected


def datatrove_setup(work: Path):
    """datatrove's filter with an index built by datatrove's own hashing from the same benchmark texts."""
    from types import SimpleNamespace

    from datatrove.pipeline.decont.n_grams import NGramsDecontConfig, NGramsDecontFilter, NGramsDecontIndexer
    from datatrove.utils.hashing import create_hash_func
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    config = NGramsDecontConfig(n_grams=13, find_query_ngrams=False, find_overlap_ngrams=False)
    # NGramsDecontIndexer() itself refuses to start without lighteval (it downloads tasks); its
    # compute_hashes only needs these three attributes, so it runs unchanged on a stand-in object.
    indexer = SimpleNamespace(
        config=config, tokenizer=load_word_tokenizer("en"), hash_func=create_hash_func(config.hash_config)
    )
    hashes: set[int] = set()
    for line in GSM8K.read_text().splitlines():
        item = json.loads(line)
        for field in ("question", "answer"):
            hashes.update(NGramsDecontIndexer.compute_hashes(indexer, item[field]))
    (work / "dt-index").mkdir(exist_ok=True)
    np.array(sorted(hashes), dtype=config.hash_config.np_descr).tofile(work / "dt-index" / "gsm8k.index.hashes")
    return NGramsDecontFilter(index_folder=str(work / "dt-index"), config=config)


def datatrove_once(work: Path, pages: list[dict]) -> tuple[float, set[str]]:
    from datatrove.data import Document

    flt = datatrove_setup(work)
    documents = [Document(text=p["text"], id=p["id"]) for p in pages]
    start = time.perf_counter()
    rejected = {doc.id for doc in documents if flt.filter(doc) is not True}
    return time.perf_counter() - start, rejected


def peak_rss_mib(corpus: Path, work: Path, name: str) -> tuple[float, float]:
    """Run the real CLI in a fresh process; (seconds, peak RSS in MiB of that process)."""
    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "r = subprocess.run(sys.argv[1:], capture_output=True); "
        "sys.stderr.write(r.stderr.decode()[-2000:] if r.returncode else ''); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)"
    )
    command = [
        sys.executable,
        "-c",
        probe,
        sys.executable,
        "-m",
        "phi4cli",
        "decontam",
        str(corpus),
        "-b",
        str(GSM8K),
        "-o",
        str(work / f"out-{name}"),
        "--overwrite",
    ]
    out = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds, kib, code = out.stdout.split()
    if code != "0":
        raise SystemExit(f"phi4 decontam failed: {out.stderr}")
    return float(seconds), int(kib) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="toy world scale (1.0: ~3,000 web pages)")
    args = parser.parse_args()
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus_1x, corpus_4x, docs = build_corpus(work, args.scale)
        from phi4cli.io import read_table

        pages = read_table([str(corpus_1x)]).select(["id", "text"]).to_pylist()
        megabytes = sum(len(p["text"].encode()) for p in pages) / 1e6
        print(
            f"corpus: {docs:,} toy web pages ({megabytes:.1f} MB of text), {PLANTED} real GSM8K questions planted; "
            f"benchmark: GSM8K test, {args.repeats} repeats, 1 core"
        )

        try:
            import datatrove  # noqa: F401
            import spacy  # noqa: F401

            peer = True
        except ImportError as e:
            print(
                f'datatrove: NOT INSTALLED ({e.name}); install with: pip install datatrove spacy "xxhash<4" - no ratio'
            )
            peer = False
        phi4_runs, peer_runs = [], []
        for _ in range(args.repeats):  # interleaved: both sides see the same machine load
            phi4_runs.append(phi4_once(corpus_1x))
            if peer:
                try:
                    peer_runs.append(datatrove_once(work, pages))
                except (ImportError, TypeError) as e:  # TypeError: xxhash>=4 refuses the str datatrove 0.10 passes
                    raise SystemExit(
                        f'datatrove failed: {e} - install the peer with: pip install datatrove spacy "xxhash<4"'
                    )
        phi4_seconds, phi4_rejected = statistics.median(r[0] for r in phi4_runs), phi4_runs[0][1]
        print(
            f"phi4 decontam (count + filter): {docs / phi4_seconds:10,.0f} docs/s  "
            f"({phi4_seconds:.2f} s, {len(phi4_rejected)} rejected)"
        )
        if peer:
            peer_seconds, peer_rejected = statistics.median(r[0] for r in peer_runs), peer_runs[0][1]
            print(
                f"datatrove NGramsDecontFilter:   {docs / peer_seconds:10,.0f} docs/s  "
                f"({peer_seconds:.2f} s, {len(peer_rejected)} rejected)"
            )
            both = len(phi4_rejected & peer_rejected)
            print(
                f"same result: both reject {both} documents; only phi4 {len(phi4_rejected - peer_rejected)}, "
                f"only datatrove {len(peer_rejected - phi4_rejected)} ({PLANTED} contaminated pages were planted)"
            )
            print(f"ratio phi4 / datatrove: {peer_seconds / phi4_seconds:.1f}x documents per second (goal >= 3x)")

        seconds_1x, rss_1x = peak_rss_mib(corpus_1x, work, "1x")
        seconds_4x, rss_4x = peak_rss_mib(corpus_4x, work, "4x")
        print(
            f"phi4 decontam CLI, whole run: 1x {docs / seconds_1x:,.0f} docs/s, peak RSS {rss_1x:.0f} MiB; "
            f"4x {4 * docs / seconds_4x:,.0f} docs/s, peak RSS {rss_4x:.0f} MiB (ratio {rss_4x / rss_1x:.2f})"
        )


if __name__ == "__main__":
    main()
