"""Shared builders for tests: tiny randomly initialised models and synthetic token datasets."""

from __future__ import annotations

import datasets
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainingArguments,
    default_data_collator,
)


def tiny_bert(num_labels: int = 3, seed: int = 0, **kw) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    defaults = dict(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                    max_position_embeddings=32, num_labels=num_labels)
    config = BertConfig(**{**defaults, **kw})
    return BertForSequenceClassification(config)


def token_dataset(n: int, seed: int, num_labels: int = 3, length: int = 8) -> datasets.Dataset:
    """Random token sequences with random labels: memorisable, not generalisable (a clean membership signal)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 60, (n, length), generator=g)
    labels = torch.randint(0, num_labels, (n,), generator=g)
    return datasets.Dataset.from_dict(
        {"input_ids": ids.tolist(), "attention_mask": [[1] * length] * n, "labels": labels.tolist()}
    )


def overfit(model, dataset, epochs: int = 40, lr: float = 2e-3, out: str = "/tmp/hf_unlearn_overfit"):
    """Train ``model`` on ``dataset`` long enough to memorise it (the 'original' model of a test)."""
    args = TrainingArguments(out, num_train_epochs=epochs, per_device_train_batch_size=16, learning_rate=lr,
                             report_to=[], save_strategy="no", logging_strategy="no", disable_tqdm=True, seed=0)
    Trainer(model=model, args=args, train_dataset=dataset, data_collator=default_data_collator).train()
    return model


@torch.no_grad()
def mean_loss_and_acc(model, dataset) -> tuple[float, float]:
    model.eval()
    batch = default_data_collator([dataset[i] for i in range(len(dataset))])
    labels = batch.pop("labels")
    logits = model(**batch).logits
    loss = torch.nn.functional.cross_entropy(logits, labels).item()
    acc = (logits.argmax(-1) == labels).float().mean().item()
    model.train()
    return loss, acc
