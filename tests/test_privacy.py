"""Privacy: after a full run (checkpoints, audit, model card, logs) nothing of the forget set is in output_dir."""

import json
import os
import subprocess
import sys

import pytest
from test_cli import tiny_job  # noqa: F401  (the fixture: tiny BERT, CSVs with distinctive texts, a YAML job)


@pytest.mark.slow
def test_no_forget_text_or_id_in_any_artifact_or_log(tiny_job, tmp_path):  # noqa: F811
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    split = tmp_path / "split.json"
    subprocess.run([sys.executable, "-m", "hf_unlearn.cli", "split", "--config", str(tiny_job / "job.yaml"),
                    "--out", str(split)], check=True, env=env, capture_output=True)
    forget_ids = json.loads(split.read_text())["forget"]
    (tmp_path / "request.txt").write_text("\n".join(forget_ids) + "\n")
    out = tmp_path / "out"
    job = (tiny_job / "job.yaml").read_text().replace("  forget_fraction: 0.25\n", "  id_column: id\n")
    (tmp_path / "job.yaml").write_text(job)
    result = subprocess.run(
        [sys.executable, "-m", "hf_unlearn.cli", "run", str(tmp_path / "job.yaml"), "--forget_ids",
         str(tmp_path / "request.txt"), "--output_dir", str(out), "--save_strategy", "steps", "--save_steps", "1",
         "--logging_steps", "1", "--keep_checkpoints", "true"],
        capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {}
    with open(tiny_job / "train.csv") as f:
        next(f)
        for line in f:
            row_id, text, _ = line.rstrip("\n").split(",")
            rows[row_id] = text
    secrets = [rows[i] for i in forget_ids] + [rows[i].split()[0] for i in forget_ids] + forget_ids
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any("checkpoint-" in str(p) for p in files) and (out / "README.md").exists()
    assert (out / "audit.json").exists()
    for path in files:
        content = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in content, f"forget content found in {path.relative_to(out)}"
    logs = result.stdout + result.stderr
    for secret in secrets:
        assert secret not in logs, "forget content found in the run's console output"
