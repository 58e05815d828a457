"""The `hf-unlearn` CLI: end-to-end run on a tiny job, help texts, one-line errors, ids-only splits, configs."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

from hf_unlearn.cli.main import main
from hf_unlearn.pipeline.config import job_parser, parse_job, read_config

REPO = Path(__file__).resolve().parents[1]
WORDS = [f"w{i}" for i in range(30)]
LABELS = ["joy", "anger", "fear"]


@pytest.fixture(scope="module")
def tiny_job(tmp_path_factory) -> Path:
    """A tiny BERT + tokenizer folder, train/validation/test CSVs with distinctive texts, and a YAML job."""
    root = tmp_path_factory.mktemp("cli")
    (root / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=len(WORDS) + 5, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32, num_labels=3))
    model.save_pretrained(root / "model")
    # vocab= (not vocab_file=: transformers 5 reads no words from it, every word became [UNK] and every row a copy)
    BertTokenizer(vocab={w: i for i, w in enumerate((root / "vocab.txt").read_text().split())}).save_pretrained(
        root / "model")
    rng = random.Random(0)
    for split, n in (("train", 60), ("validation", 12), ("test", 12)):
        with open(root / f"{split}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, ["id", "text", "label"])
            writer.writeheader()
            writer.writerows({"id": f"{split}-{i}", "text": f"secretrow{split}{i} " + " ".join(
                rng.choice(WORDS) for _ in range(5)), "label": rng.choice(LABELS)} for i in range(n))
    (root / "job.yaml").write_text(f"""\
model:
  model: {root / 'model'}
  max_length: 16
data:
  dataset: {root}
  data_files: {{train: train.csv, validation: validation.csv, test: test.csv}}
  train_rows: 0
forget:
  forget_fraction: 0.25
original:
  original_epochs: 1
  original_batch_size: 16
unlearning:
  max_steps: 2
  per_device_train_batch_size: 8
  per_device_eval_batch_size: 32
  use_cpu: true
  output_dir: {root / 'out'}
""")
    return root


def call(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run ``main(argv)`` in-process; returns (exit code, stdout, stderr)."""
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's --help
        code = exit_.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_run_end_to_end(tiny_job):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run([sys.executable, "-m", "hf_unlearn.cli", "run", str(tiny_job / "job.yaml"),
                             "--forget_fraction", "0.2"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("**Unlearning comparison**") and "| original | unlearned |" in result.stdout
    out = tiny_job / "out"
    for name in ("config.json", "model.safetensors", "tokenizer_config.json", "README.md", "audit.json",
                 "loss_histograms.png"):
        assert (out / name).is_file(), name
    audit = json.loads((out / "audit.json").read_text())
    assert audit["report"]["n_forget"] == 12 and set(audit["comparison"]["models"]) == {"original", "unlearned"}
    card = (out / "README.md").read_text()
    assert "Forget set: 12 training samples" in card and "secretrow" not in card and "train-" not in card
    assert "secretrow" not in (out / "audit.json").read_text()


@pytest.mark.parametrize("command, options", [
    ([], ["run", "audit", "split", "--debug"]),
    (["run"], ["config", "--model", "--dataset", "--forget_fraction", "--forget_ids", "--method", "--alpha",
               "--tau_refresh_epochs", "--output_dir", "--push_to_hub", "--retrain"]),
    (["audit"], ["--model", "--config", "--original", "--retrained", "--out"]),
    (["split"], ["--config", "--dataset", "--fraction", "--classes", "--ids", "--out", "--seed"]),
])
def test_help(command, options, capsys):
    code, out, _ = call([*command, "--help"], capsys)
    assert code == 0
    for option in options:
        assert option in out, option


def one_line_error(code: int, err: str) -> str:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_errors_are_one_line(tiny_job, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("unlearning:\n  lerning_rate: 0.1\n")
    line = one_line_error(*call(["run", str(bad)], capsys)[::2])
    assert "'lerning_rate'" in line and "learning_rate" in line and "forget_fraction" in line

    line = one_line_error(*call(["run", str(tmp_path / "missing.yaml")], capsys)[::2])
    assert "not found" in line and "missing.yaml" in line

    malformed = tmp_path / "malformed.yaml"
    malformed.write_text("model: x\n  dataset: [a, b\n")
    line = one_line_error(*call(["run", str(malformed)], capsys)[::2])
    assert "Malformed YAML" in line and "line 2" in line

    line = one_line_error(*call(["run", str(tiny_job / "job.yaml"), "--not_an_option", "1"], capsys)[::2])
    assert "'not_an_option'" in line

    alpha = tmp_path / "alpha.yaml"
    alpha.write_text(f"alpha: 3\noutput_dir: {tmp_path / 'o'}\n")
    assert "alpha=3" in one_line_error(*call(["run", str(alpha)], capsys)[::2])


def test_errors_show_traceback_with_debug(tmp_path):
    with pytest.raises(FileNotFoundError):
        main(["run", str(tmp_path / "missing.yaml"), "--debug"])


def test_split_writes_ids_only(tiny_job, tmp_path, capsys):
    out = tmp_path / "split.json"
    code, _, err = call(["split", "--config", str(tiny_job / "job.yaml"), "--out", str(out)], capsys)
    assert code == 0, err
    split = json.loads(out.read_text())
    assert set(split) == {"forget", "retain"}
    assert len(split["forget"]) == 15 and len(split["retain"]) == 45
    train_ids = {f"train-{i}" for i in range(60)}
    assert set(split["forget"]) | set(split["retain"]) == train_ids and not set(split["forget"]) & set(split["retain"])
    assert "secretrow" not in out.read_text()
    # The lines format feeds forget_ids / --ids back and selects the same rows.
    folder = tmp_path / "lines"
    code, _, err = call(["split", "--config", str(tiny_job / "job.yaml"), "--out", str(folder), "--classes", "joy"],
                        capsys)
    assert code == 0, err
    forget_ids = (folder / "forget_ids.txt").read_text().split()
    again = tmp_path / "again.json"
    code, _, err = call(["split", "--config", str(tiny_job / "job.yaml"), "--out", str(again), "--ids",
                         str(folder / "forget_ids.txt")], capsys)
    assert code == 0, err
    assert json.loads(again.read_text())["forget"] == forget_ids


def test_sections_and_overrides(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"unlearning:\n  alpha: 0.2\n  output_dir: {tmp_path}\nforget:\n  forget_classes: [joy]\n")
    job, args = parse_job(job_parser("t", ""), read_config(config), ["--alpha", "0.4", "--train_rows", "7"])
    assert args.alpha == 0.4 and job.train_rows == 7 and job.forget_classes == ["joy"]
    config.write_text("alpha: 0.2\nunlearning:\n  alpha: 0.3\n")
    with pytest.raises(Exception, match="set twice"):
        read_config(config)


@pytest.mark.parametrize("name", ["goemotions_minilm", "tofu_smollm2", "tofu_tiny", "mnist_vit", "tiny_test"])
def test_shipped_configs_parse(name, tmp_path):
    job, args = parse_job(job_parser("t", ""), read_config(REPO / "configs" / f"{name}.yaml"),
                          ["--output_dir", str(tmp_path)])
    assert job.dataset in ("goemotions", "tofu", "mnist") and args.method == "nabla_tau"
