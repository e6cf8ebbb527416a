"""bench/gpu_check.sh runs on a machine without a GPU at toy shapes (--cpu-smoke): every check of the GPU
script executes its real code path (the trainer's step, flex attention, the engine), so it cannot rot
before the day it runs on an H100."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_cpu_smoke_runs_every_check(tmp_path):
    out = tmp_path / "gpu.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [str(REPO / "bench" / "gpu_check.sh"), "--cpu-smoke", "--json", str(out)],
        capture_output=True,
        env=env,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    lines = result.stdout.decode().splitlines()
    assert [line.split(":")[0] for line in lines] == ["mfu", "bf16", "flex", "decode", "eval16k"], lines
    report = json.loads(out.read_text())
    assert report["smoke"] and report["device"] == "cpu"
    assert report["mfu"]["tokens_per_s"] > 0 and report["mfu"]["loss"] > 0
    assert report["bf16"]["ok"] and report["flex"]["ok"]
    assert report["decode"]["b1_tok_s"] > 0 and report["decode"]["b4_tok_s"] > 0
    assert report["eval16k"]["finite"] and report["eval16k"]["peak_gb"] > 0
