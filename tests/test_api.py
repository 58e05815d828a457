"""The public API of a fresh install: exports, string labels, automatic choices a user sees, the push pre-flight."""

from __future__ import annotations

import logging

import pytest
from datasets import Dataset, DatasetDict
from helpers import tiny_bert, token_dataset

import hf_unlearn
from hf_unlearn import UnlearningArguments, UnlearningTrainer, label_names, tokenize_classification


class WordTokenizer:
    """Enough of a tokenizer for tokenize_classification: one id per word."""

    def __call__(self, texts, truncation=True, max_length=16):
        ids = [[1 + len(w) for w in t.split()][:max_length] for t in texts]
        return {"input_ids": ids, "attention_mask": [[1] * len(i) for i in ids]}


def test_exports_and_bundled_sample():
    for name in ("ClassificationCollator", "FinetuneRecipe", "UnlearningArguments", "UnlearningTrainer", "audit_model",
                 "check_hub_access", "compare", "finetune", "label_names", "load_data", "load_text_classifier",
                 "select_forget", "tokenize_classification", "bundled_sample_dir"):
        assert name in hf_unlearn.__all__ and hasattr(hf_unlearn, name), name
    folder = hf_unlearn.bundled_sample_dir()
    files = {p.name: p.stat().st_size for p in folder.iterdir()}
    assert {"train.tsv", "dev.tsv", "test.tsv", "labels.txt", "LICENSE", "README.md"} <= set(files)
    assert sum(files.values()) <= 1_000_000 and "Apache License" in (folder / "LICENSE").read_text()
    data = hf_unlearn.load_goemotions(folder, single_label=True)
    assert len(data["train"]) > 2500 and len(label_names(data["train"], "label")) == 28


def test_string_labels_become_ids_consistently_across_splits():
    data = DatasetDict(train=Dataset.from_dict({"text": ["a b", "c d e"], "label": ["spam", "ham"]}),
                       test=Dataset.from_dict({"text": ["f"], "label": ["eggs"]}))
    names = label_names(data)
    assert names == ["eggs", "ham", "spam"]
    encoded = tokenize_classification(data, WordTokenizer())
    assert encoded["train"]["labels"] == [2, 1] and encoded["test"]["labels"] == [0]
    with pytest.raises(ValueError, match="not in label_names"):
        tokenize_classification(data["test"], WordTokenizer(), label_names=["ham", "spam"])


def test_automatic_choices_logged_once_as_warning(tmp_path, caplog):
    data = token_dataset(40, seed=0)
    forget = data.filter(lambda r: r["labels"] == 0)  # a whole class: class removal, τ = log(3)
    retain = data.filter(lambda r: r["labels"] != 0)
    args = UnlearningArguments(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, report_to="none",
                               use_cpu=True)
    with caplog.at_level(logging.WARNING, logger="hf_unlearn"):
        UnlearningTrainer(model=tiny_bert(), args=args, forget_dataset=forget, retain_dataset=retain,
                          validation_dataset=token_dataset(8, seed=1))
    lines = [r.getMessage() for r in caplog.records if "automatic choices" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("hf-unlearn automatic choices")
    assert "α₀ = 0.5" in lines[0] and "forget-epoch" in lines[0] and "log(num_labels) = 1.099" in lines[0]
    assert caplog.records[0].levelno >= logging.WARNING


def test_push_preflight_offline_raises_before_training(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    args = UnlearningArguments(output_dir=str(tmp_path / "out"), push_to_hub=True, report_to="none", use_cpu=True)
    with pytest.raises(ValueError, match="offline mode is on"):
        UnlearningTrainer(model=tiny_bert(), args=args, forget_dataset=token_dataset(8, 0),
                          retain_dataset=token_dataset(24, 1), validation_dataset=token_dataset(8, 2))
    assert not (tmp_path / "out").exists()


def test_no_local_files_and_no_hub_fall_back_to_the_bundled_sample(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("HF_UNLEARN_DATA_DIR", str(tmp_path))  # no local files there
    monkeypatch.setattr("hf_unlearn.io.hub_reachable", lambda *a, **k: False)
    with caplog.at_level(logging.WARNING, logger="hf_unlearn"):
        data = hf_unlearn.load_goemotions()
    assert len(data["train"]) == 3600 and "bundled sample" in caplog.text
