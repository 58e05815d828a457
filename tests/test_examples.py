"""End-to-end runs of the example scripts in their fastest modes (each well under a minute on a CPU)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf_unlearn.data import default_data_dir, load_tofu

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
COMPARISON_KEYS = {"models", "tolerances", "gaps_to_retrained", "verdicts"}

pytestmark = pytest.mark.slow


def run_example(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``examples/<script>`` in a subprocess (one thread: tiny models are faster without thread contention)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def read_audit(folder: Path) -> dict:
    path = folder / "audit.json"
    assert path.is_file(), f"no audit.json in {folder}"
    audit = json.loads(path.read_text())
    assert COMPARISON_KEYS <= set(audit["comparison"])
    assert (folder / "loss_histograms.png").is_file() and (folder / "config.json").is_file()
    return audit


def model_numbers(audit: dict, model: str) -> dict:
    return audit["comparison"]["models"][model]


VIT_FAST = ("--dataset", "digits", "--train_rows", "700", "--val_rows", "200", "--test_rows", "200",
            "--original_epochs", "25", "--audit_points", "2", "--per_device_eval_batch_size", "256")


def test_vit_class_removal(tmp_path: Path) -> None:
    out = tmp_path / "vit_class"
    proc = run_example("unlearn_vit.py", *VIT_FAST, "--forget_classes", "3", "--output_dir", str(out))
    audit = read_audit(out)
    assert {"original", "unlearned"} <= set(audit["comparison"]["models"])
    assert audit["tau_source"] == "2 × log(num_labels)"
    assert audit["tau_history"][0]["tau"] == pytest.approx(2 * math.log(10))
    n_forget, n_train = audit["sizes"]["forget"], audit["sizes"]["forget"] + audit["sizes"]["retain"]
    assert audit["alpha0"] == pytest.approx(min(5 / 3 * n_forget / n_train, 0.9))  # the image α rule
    before, after = audit["class_accuracy"]["original"], audit["class_accuracy"]["unlearned"]
    assert before["forget_class_test_accuracy"] > 0.6
    assert after["forget_class_test_accuracy"] < 0.2  # forgotten, like a model that never saw the class
    assert after["remaining_classes_test_accuracy"] > before["remaining_classes_test_accuracy"] - 0.15
    assert model_numbers(audit, "unlearned")["forget_accuracy"] < model_numbers(audit, "original")["forget_accuracy"]
    assert "class removal (test set)" in proc.stdout


def test_vit_random_forget_with_retrain(tmp_path: Path) -> None:
    out = tmp_path / "vit_random"
    proc = run_example("unlearn_vit.py", *VIT_FAST, "--forget_fraction", "0.15", "--retrain", "--output_dir", str(out))
    audit = read_audit(out)
    assert set(audit["comparison"]["models"]) == {"original", "retrained", "unlearned"}
    assert audit["alpha0"] == pytest.approx(5 / 3 * audit["forget_fraction"])
    assert audit["tau_source"] == "mean validation loss" and audit["class_accuracy"] is None
    original, unlearned = model_numbers(audit, "original"), model_numbers(audit, "unlearned")
    assert unlearned["forget_loss"] > original["forget_loss"]
    assert "Gap to the retrained model" in proc.stdout
    card = (out / "README.md").read_text()  # written once, after the audit (issue 14)
    assert "## Audit" in card and "No audit was recorded" not in card


@pytest.mark.skipif(not (default_data_dir() / "tofu" / "forget10.json").is_file(), reason="needs ../shared/data/tofu")
def test_causal_lm_tiny_forgets_and_leaks_no_text(tmp_path: Path) -> None:
    out = tmp_path / "lm_tiny"
    proc = run_example("unlearn_causal_lm.py", "--tiny", "--output_dir", str(out))
    audit = read_audit(out)
    original, unlearned = model_numbers(audit, "original"), model_numbers(audit, "unlearned")
    assert unlearned["forget_loss"] > original["forget_loss"] + 0.2
    assert original["forget_loss"] < original["test_loss"]  # the fine-tuned model memorised the forget rows
    assert set(unlearned["lm_attacks"]) >= {"loss_auc", "min_k_auc", "zlib_auc"}
    assert unlearned["lm_attacks"]["loss_auc"] < original["lm_attacks"]["loss_auc"]
    assert (out / "_original" / "hf_unlearn_recipe.json").is_file()  # the fine-tuned model, cached

    # Privacy: no forget question or answer of the run appears in any output file or in the console.
    forget, _ = load_tofu(default_data_dir() / "tofu", forget="forget10")
    n_forget = audit["sizes"]["forget"]
    secrets = [s for row in forget.select(range(n_forget)) for s in (row["question"], row["answer"])]
    outputs = {str(p): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    outputs["<stdout+stderr>"] = (proc.stdout + proc.stderr).encode()
    for name, content in outputs.items():
        for secret in secrets:
            assert secret.encode() not in content, f"forget text found in {name}"

    # A second run reuses the cached fine-tuned model.
    again = run_example("unlearn_causal_lm.py", "--tiny", "--output_dir", str(out))
    assert "Loading the original model from" in again.stdout


def test_causal_lm_runs_offline_on_the_bundled_tofu_sample(tmp_path: Path) -> None:
    """A fresh clone (no ../shared, no Hub): the example says it uses the bundled sample and finishes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_UNLEARN_DATA_DIR": str(tmp_path / "none")}
    args = ["--tiny", "--train_rows", "12", "--original_epochs", "2", "--forget_epochs", "1",
            "--output_dir", str(tmp_path / "out")]
    proc = subprocess.run([sys.executable, str(EXAMPLES / "unlearn_causal_lm.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "TOFU sample bundled with hf-unlearn" in proc.stdout and "forget quality" not in proc.stdout
    assert "| forget truth ratio" in proc.stdout and (tmp_path / "out" / "README.md").is_file()
    card = (tmp_path / "out" / "README.md").read_text()  # written once, after the audit (issue 14)
    assert "## Audit" in card and "No audit was recorded" not in card
    bad = subprocess.run([sys.executable, str(EXAMPLES / "unlearn_causal_lm.py"), "--tiny", "--data_dir",
                          str(tmp_path / "missing")], cwd=ROOT, env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and bad.stderr.strip().count("\n") == 0 and "--data_dir" in bad.stderr
