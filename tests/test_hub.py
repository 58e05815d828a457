"""Model card (hf_unlearn.hub.card): parses, carries tags/metrics/sizes, never forget-set content; push patterns."""

from __future__ import annotations

import random

import pytest
import torch
from datasets import Dataset
from huggingface_hub import ModelCard
from huggingface_hub.utils import filter_repo_objects
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

from hf_unlearn import UnlearningArguments, UnlearningTrainer
from hf_unlearn.audit import compare
from hf_unlearn.data import ClassificationCollator, tokenize_classification
from hf_unlearn.hub.card import build_model_card, write_model_card
from hf_unlearn.hub.push import push_ignore_patterns

WORDS = [f"w{i}" for i in range(30)]


def forget_text(i: int) -> str:
    return f"zebrasecret{i:03d} lives at 42 quokka lane"


@pytest.fixture(scope="module")
def unlearned(tmp_path_factory):
    """A tiny BERT after 2 ∇τ steps and an audit; its forget rows hold distinctive strings and ids."""
    tmp = tmp_path_factory.mktemp("hub")
    (tmp / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    # vocab= (not vocab_file=: transformers 5 reads no words from it, every word became [UNK] and every row a copy)
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate((tmp / "vocab.txt").read_text().split())})
    rng = random.Random(0)

    def rows(n: int, prefix: str, text=None) -> Dataset:
        return Dataset.from_dict({
            "id": [f"{prefix}-{i}" for i in range(n)],
            "text": [text(i) if text else " ".join(rng.choice(WORDS) for _ in range(6)) for i in range(n)],
            "label": [rng.randrange(3) for _ in range(n)],
        })

    raw = {"forget": rows(12, "forgetid", forget_text), "retain": rows(36, "r"), "validation": rows(12, "v"),
           "test": rows(12, "t")}
    parts = {k: tokenize_classification(v, tokenizer, max_length=16) for k, v in raw.items()}
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=len(WORDS) + 5, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32, num_labels=3))
    args = UnlearningArguments(output_dir=str(tmp / "out"), max_steps=2, per_device_train_batch_size=4,
                               report_to="none", use_cpu=True, disable_tqdm=True, seed=0)
    trainer = UnlearningTrainer(model=model, args=args, forget_dataset=parts["forget"],
                                retain_dataset=parts["retain"], validation_dataset=parts["validation"],
                                data_collator=ClassificationCollator(tokenizer), processing_class=tokenizer)
    before = trainer.audit(parts["test"])
    trainer.train()
    after = trainer.audit(parts["test"], before=before)
    trainer.save_audit(after, before=before, comparison=compare(original=before, unlearned=after))
    return trainer, raw


def test_card_parses_with_tags_metrics_and_sizes(unlearned, tmp_path):
    trainer, _ = unlearned
    path = write_model_card(trainer, tmp_path, tags=["my-tag"], license="apache-2.0", language="en",
                            base_model="google-bert/bert-base-uncased", dataset="google-research-datasets/go_emotions")
    assert path == tmp_path / "README.md"
    card = ModelCard.load(path)
    data = card.data
    assert data.tags[:3] == ["hf-unlearn", "machine-unlearning", "nabla_tau"] and "my-tag" in data.tags
    assert data.base_model == "google-bert/bert-base-uncased"
    assert data.library_name == "transformers" and data.license == "apache-2.0" and data.language == "en"
    assert data.pipeline_tag == "text-classification"
    metrics = {(r.dataset_split, r.metric_type): r.metric_value for r in data.eval_results}
    report = trainer.last_audit
    assert metrics[("forget", "accuracy")] == round(report.forget_accuracy, 4)
    assert metrics[("test", "accuracy")] == round(report.test_accuracy, 4)
    assert metrics[("forget-vs-test", "mia_accuracy")] == round(report.mia_loss.accuracy, 4)
    assert "model-index" in path.read_text()
    text = card.text
    assert "`nabla_tau`" in text and "2403.14339" in text and "@article{trippa2024" in text
    assert "Forget set: 12 training samples (25.00% of the 48" in text and "Retain set: 36 samples" in text
    assert "Unlearning comparison" in text and "τ values" in text and "α₀" in text


def test_card_holds_no_forget_content(unlearned, tmp_path):
    trainer, raw = unlearned
    content = write_model_card(trainer, tmp_path).read_text()
    audit_json = (tmp_path.parent / "out" / "audit.json")
    for text in [*raw["forget"]["text"], *raw["forget"]["id"], "zebrasecret", "quokka", "forgetid"]:
        assert text not in content
        if audit_json.exists():
            assert text not in audit_json.read_text()


def test_card_without_audit_and_local_base_model(unlearned, tmp_path):
    trainer, _ = unlearned
    saved = trainer.last_audit, trainer.last_comparison
    trainer.last_audit = trainer.last_comparison = None
    try:
        card = build_model_card(trainer, base_model=str(tmp_path))  # a local path is not a Hub id
    finally:
        trainer.last_audit, trainer.last_comparison = saved
    parsed = ModelCard(str(card))
    assert parsed.data.base_model is None and parsed.data.eval_results is None
    assert "No audit was recorded" in parsed.text and str(tmp_path) not in str(card)


def test_push_ignore_patterns_skip_checkpoints_and_scratch():
    files = ["model.safetensors", "config.json", "README.md", "audit.json", "loss_histograms.png",
             "checkpoint-10/model.safetensors", "checkpoint-10/unlearning_state.json", "_original/model.safetensors",
             "original/config.json", "retrain/model.safetensors", "last-checkpoint/model.safetensors"]
    kept = set(filter_repo_objects(files, ignore_patterns=push_ignore_patterns(include_checkpoints=False)))
    assert kept == {"model.safetensors", "config.json", "README.md", "audit.json", "loss_histograms.png"}
    with_checkpoints = set(filter_repo_objects(files, ignore_patterns=push_ignore_patterns(include_checkpoints=True)))
    assert "checkpoint-10/model.safetensors" in with_checkpoints and "audit.json" in with_checkpoints
    assert "_original/model.safetensors" not in with_checkpoints


def test_intermediate_pushes_are_trainers_own_hub_strategy_end(unlearned, tmp_path, monkeypatch, caplog):
    """Without push_checkpoints, Trainer's own hub_strategy="end" keeps every partly unlearned state off the Hub."""
    from transformers.trainer_utils import HubStrategy

    def args(**kw):
        return UnlearningArguments(output_dir=str(tmp_path), report_to="none", **kw)

    assert args().hub_strategy == HubStrategy.END
    assert args(push_checkpoints=True).hub_strategy == HubStrategy.EVERY_SAVE
    assert args(push_checkpoints=True, hub_strategy="checkpoint").hub_strategy == HubStrategy.CHECKPOINT
    with caplog.at_level("WARNING"):
        assert args(hub_strategy="all_checkpoints").hub_strategy == HubStrategy.END
    assert "partly unlearned weights" in caplog.text
    trainer, _ = unlearned
    assert trainer.args.hub_strategy == HubStrategy.END

    def no_upload():
        raise AssertionError("an intermediate push reached the Hub")

    monkeypatch.setattr("transformers.trainer.hf_api", no_upload)
    trainer._push_from_checkpoint(str(tmp_path))  # Trainer's own method: returns before any upload
