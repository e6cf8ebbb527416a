"""How long `phi4` takes before it does anything: `phi4 --help` and `phi4 cat --help` against `python -c pass`.

    python bench/startup.py               # --repeats 10
    PYTHONPATH=/path/to/other/checkout python bench/startup.py   # the same for another version of phi4

Each run is a fresh process (`python -m phi4cli ...`, run from an empty directory so PYTHONPATH decides which
phi4cli is imported); the three commands are interleaved and the median of each is printed, with the
overhead above a bare interpreter. Both help commands must exit 0 and print their usage line.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "phi4 --help": [sys.executable, "-m", "phi4cli", "--help"],
    "phi4 cat --help": [sys.executable, "-m", "phi4cli", "cat", "--help"],
}
EXPECT = {"phi4 --help": "Usage: phi4 [OPTIONS] COMMAND", "phi4 cat --help": "Usage: phi4 cat [OPTIONS]"}


def run_once(argv: list[str], cwd: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, check=True)
    return time.perf_counter() - start, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    with tempfile.TemporaryDirectory() as empty:
        for name, argv in COMMANDS.items():  # warm the page cache and check the output once
            _, out = run_once(argv, empty)
            if name in EXPECT and EXPECT[name] not in out:
                sys.exit(f"{name}: unexpected output:\n{out[:500]}")
        for _ in range(args.repeats):  # interleaved, so load from other jobs falls on all three alike
            for name, argv in COMMANDS.items():
                times[name].append(run_once(argv, empty)[0])
    bare = statistics.median(times["python -c pass"])
    print(f"median of {args.repeats} runs each (interleaved):")
    for name, values in times.items():
        median = statistics.median(values)
        extra = "" if name == "python -c pass" else f"   (+{median - bare:.3f} s over the bare interpreter)"
        print(f"  {name:<16} {median:.3f} s{extra}")


if __name__ == "__main__":
    main()
