"""Smoke tests: the GoEmotions benchmark's --quick pipeline and the main job on a tiny subset (files well-formed)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("HF_UNLEARN_DATA_DIR", REPO.parent / "shared" / "data")) / "goemotions"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"GoEmotions not found at {DATA}")


@pytest.mark.slow
def test_goemotions_benchmark_quick(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "goemotions.py"), "--data_dir", str(DATA),
                             "--quick", "--out", str(tmp_path)], capture_output=True, text=True, env=ENV,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads((tmp_path / "goemotions.json").read_text())
    keys = {"method", "forget", "seed", "wall_time_s", "retrain_ratio", "forget_acc", "retain_acc", "test_acc",
            "mia_loss", "mia_entropy", "gap_mia_loss"}
    assert {r["method"] for r in rows} >= {"original", "retrain", "nabla_tau", "finetune", "gradient_ascent",
                                            "grad_diff", "npo", "random_labels"}
    assert all(keys <= set(r) for r in rows)
    assert all(0.0 <= r["mia_loss"] <= 1.0 and r["retrain_ratio"] > 0 for r in rows)
    md = (tmp_path / "goemotions.md").read_text()
    assert md.startswith("# GoEmotions unlearning benchmark") and "Machine:" in md and "Command:" in md


@pytest.mark.slow
def test_main_job_on_a_tiny_subset(tmp_path):
    out = tmp_path / "job"
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "unlearn_bert.py"), "--data_dir", str(DATA), "--train_rows", "120",
         "--val_rows", "40", "--test_rows", "60", "--original_epochs", "1", "--max_length", "32",
         "--output_dir", str(out), "--retrain"], capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| criterion | original | unlearned | retrained |" in result.stdout
    audit = json.loads((out / "audit.json").read_text())
    assert audit["report"]["n_forget"] == 18 and audit["method"] == "nabla_tau"
    for name in ("model.safetensors", "README.md", "loss_histograms.png", "_original/config.json"):
        assert (out / name).is_file(), name
