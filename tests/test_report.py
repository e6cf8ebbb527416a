"""`phi4 report`: every number comes from the files the stages wrote (a real filter run, metrics and evals)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phi4cli.errors import Phi4Error
from phi4cli.tools.report import effects_section, find_evals, paired_difference, read_samples, reason_kind

DOCS = [
    {"id": "good-1", "text": "The water cycle moves water between the sea, the air and the land. " * 6},
    {"id": "good-2", "text": "A lever is a rigid bar that turns about a fixed point called the fulcrum. " * 6},
    {"id": "spam", "text": "buy now"},
]


def _eval(value: float, stderr: float, n: int) -> dict:
    return {"tasks": {"toy/arith": {"metric": "exact_match", "value": value, "stderr": stderr, "n": n, "n_failed": 0}}}


@pytest.fixture
def recipe(phi4, tmp_path) -> Path:
    """data/demo with a real filter run, runs/demo with two runs' metrics and their evals."""
    (tmp_path / "web.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    phi4("ingest", "web.jsonl", "-o", "data/demo/web")
    phi4("filter", "data/demo/web", "-o", "data/demo/web-filtered", "--rejected", "data/demo/rejected/filter-web")
    runs = tmp_path / "runs" / "demo"
    for name, losses in (("pretrain", [9.0, 7.5, 6.25]), ("sft", [3.0, 2.5])):
        (runs / name).mkdir(parents=True)
        (runs / name / "metrics.jsonl").write_text(
            "".join(
                json.dumps({"step": i + 1, "loss": loss, "tokens": 512 * (i + 1)}) + "\n"
                for i, loss in enumerate(losses)
            )
        )
        (runs / name / "done").touch()
    (runs / "eval-pretrain.json").write_text(json.dumps(_eval(0.0125, 0.0071, 240)))
    (runs / "eval-sft.json").write_text(json.dumps(_eval(0.4, 0.0316, 240)))
    return tmp_path


def test_report_numbers_come_from_the_stage_files(phi4, recipe):
    phi4("report", "runs/demo")  # --data defaults to data/demo
    report = (recipe / "runs" / "demo" / "report.md").read_text()
    kept = json.loads((recipe / "data/demo/web-filtered/_manifest.json").read_text())["rows"]
    funnel = next(line for line in report.splitlines() if line.startswith("| filter |"))
    cells = [c.strip() for c in funnel.strip("|").split("|")]
    assert cells[1:5] == ["`web-filtered`", "3", str(kept), str(3 - kept)]
    assert kept < 3 and cells[7] != "-"  # the spam page was dropped, with its reason
    assert "| toy/arith | exact_match | 0.013 ± 0.007 (n=240) | 0.400 ± 0.032 (n=240) |" in report
    assert "| pretrain | 3 | 1,536 | 1,536 | 9.0000 | 6.2500 | yes |" in report
    assert "| sft | 2 | 1,024 | 2,560 | 3.0000 | 2.5000 | yes |" in report
    for figure in ("report-funnel.png", "report-loss.png"):
        assert (recipe / "runs" / "demo" / figure).read_bytes()[:4] == b"\x89PNG"


def test_same_files_same_report(phi4, recipe):
    phi4("report", "runs/demo")
    first = {p.name: p.read_bytes() for p in (recipe / "runs" / "demo").glob("report*")}
    phi4("report", "runs/demo")
    assert {p.name: p.read_bytes() for p in (recipe / "runs" / "demo").glob("report*")} == first


def test_bad_input_is_one_line(phi4, recipe):
    (recipe / "runs" / "demo" / "eval-sft.json").write_text("{not json")
    result = phi4("report", "runs/demo", check=False)
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1
    assert lines[0].startswith("phi4: error: ") and "eval-sft.json: not readable JSON" in lines[0]
    result = phi4("report", "runs/nowhere", check=False)
    assert result.returncode != 0 and "runs/nowhere: not a directory" in result.stderr.decode()


def test_reason_kinds_group_particulars():
    assert reason_kind("benchmark:gsm8k:item-3:question:13-gram 'a b c'") == "benchmark:gsm8k"
    assert reason_kind("gopher_quality:stop_words(0<2)") == "gopher_quality:stop_words(N<N)"
    assert reason_kind("p(success) = 0.875 is outside [0.2, 0.8]") == "p(success) = N is outside [N, N]"


def test_stage_effects_use_the_paired_standard_error(tmp_path):
    """Two models on the same 8 items: the second gets 3 more right and none wrong. Unpaired, the difference
    (0.375) is under 2 standard errors (0.24 each); paired it is 0.183 and marked."""
    before = [1, 0, 0, 0, 1, 0, 0, 0]
    after = [1, 1, 1, 1, 1, 0, 0, 0]
    for stage, scores in (("sft", before), ("dpo-pts", after)):
        (tmp_path / f"eval-{stage}.json").write_text(
            json.dumps({"tasks": {"toy/arith": {"metric": "exact_match", "metrics": {"exact_match": {}}}}})
        )
        lines = [
            json.dumps({"task": "toy/arith", "id": str(i), "metrics": {"exact_match": s}}) for i, s in enumerate(scores)
        ]
        (tmp_path / f"eval-{stage}.samples.jsonl").write_text("\n".join(lines) + "\n")
    diff, se, n = paired_difference(
        read_samples(tmp_path)["dpo-pts"], read_samples(tmp_path)["sft"], "toy/arith", "exact_match"
    )
    assert (diff, n) == (0.375, 8) and se == pytest.approx((0.375 * 0.625 / 7) ** 0.5)
    section = effects_section(find_evals(tmp_path), read_samples(tmp_path))
    assert "| toy/arith | exact_match | +0.375 ± 0.183 ** (n=8) |" in section
    # without the per-item logs the summaries' standard errors are combined, and the cell says so
    summary = {"metric": "exact_match", "metrics": {"exact_match": {"value": 0.25, "stderr": 0.15}}}
    (tmp_path / "eval-sft.json").write_text(json.dumps({"tasks": {"toy/arith": summary}}))
    summary["metrics"]["exact_match"] = {"value": 0.625, "stderr": 0.17}
    (tmp_path / "eval-dpo-pts.json").write_text(json.dumps({"tasks": {"toy/arith": summary}}))
    (tmp_path / "eval-sft.samples.jsonl").unlink()
    section = effects_section(find_evals(tmp_path), read_samples(tmp_path))
    assert "| toy/arith | exact_match | +0.375 ± 0.227 u |" in section
    # a damaged log is one line naming the file and the line
    (tmp_path / "eval-dpo-pts.samples.jsonl").write_text('{"task": "toy/arith"}\n{broken\n')
    with pytest.raises(Phi4Error, match=r"eval-dpo-pts.samples.jsonl:2: not a JSON line"):
        read_samples(tmp_path)
