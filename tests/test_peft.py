"""PEFT/LoRA unlearning: only adapters move, the base stays bit-identical, merged models load plainly."""

import pytest
import torch
from helpers import tiny_bert, token_dataset
from peft import LoraConfig
from transformers import AutoModelForSequenceClassification, default_data_collator

from hf_unlearn import UnlearningArguments, UnlearningTrainer


def _trainer(tmp_path, method="nabla_tau", **kw):
    data = token_dataset(48, 0)
    args = UnlearningArguments(str(tmp_path / "out"), method=method, per_device_train_batch_size=8, report_to=[],
                               disable_tqdm=True, forget_epochs=3, learning_rate=1e-2, **kw)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], task_type="SEQ_CLS")
    return UnlearningTrainer(model=tiny_bert(), args=args, forget_dataset=data.select(range(16)),
                             retain_dataset=data.select(range(16, 48)), validation_dataset=token_dataset(16, 1),
                             data_collator=default_data_collator, peft_config=config)


def _split(model):
    lora = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    base = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n and
            "classifier" not in n}
    return lora, base


@pytest.mark.parametrize("checkpointing", [False, True])
def test_only_adapters_change(tmp_path, checkpointing):
    trainer = _trainer(tmp_path, gradient_checkpointing=checkpointing)
    lora_before, base_before = _split(trainer.model)
    trainer.train()
    lora_after, base_after = _split(trainer.model)
    assert lora_before and any(not torch.equal(lora_before[n], lora_after[n]) for n in lora_before)
    assert all(torch.equal(base_before[n], base_after[n]) for n in base_before)


def test_merged_model_loads_with_plain_from_pretrained(tmp_path):
    trainer = _trainer(tmp_path, merge_adapter=True)
    trainer.train()
    trainer.save_model()
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out")
    assert not any("lora_" in n for n, _ in plain.named_parameters())
    batch = default_data_collator([token_dataset(4, 9)[i] for i in range(4)])
    batch.pop("labels")
    trainer.model.eval()
    with torch.no_grad():
        assert torch.allclose(plain(**batch).logits, trainer.model(**batch).logits, atol=1e-5)
    assert (tmp_path / "out" / "README.md").exists()  # the hf-unlearn card comes with a saved model


def test_npo_with_adapters_uses_the_adapter_free_base_as_reference(tmp_path):
    trainer = _trainer(tmp_path, method="npo")
    assert trainer.ref_model is None  # no copy: the base with adapters disabled is the original model
    trainer.train()
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
