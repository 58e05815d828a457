"""∇τ's ``update_from_layer``: the run updates only the layers from k up (and the head); the embeddings and the
layers below stay exactly the original's, and a bad k is refused naming the range."""

import pytest
import torch
from helpers import tiny_bert, token_dataset
from transformers import default_data_collator

from hf_unlearn import UnlearningArguments, UnlearningTrainer
from hf_unlearn.methods.nabla_tau import freeze_below


def _run(tmp_path, model, **kwargs):
    train = token_dataset(48, 0)
    args = UnlearningArguments(str(tmp_path / "out"), report_to=[], method_kwargs=kwargs, per_device_train_batch_size=8,
                               max_steps=4, disable_tqdm=True, seed=0, save_strategy="no", learning_rate=1e-2)
    trainer = UnlearningTrainer(model=model, args=args, forget_dataset=train.select(range(8)),
                                retain_dataset=train.select(range(8, 48)), validation_dataset=token_dataset(24, 1),
                                data_collator=default_data_collator)
    trainer.train()
    return trainer


def _changed(before, model):
    return {name for name, p in model.named_parameters() if not torch.equal(before[name], p.detach())}


def test_the_layers_below_k_and_the_embeddings_stay_the_originals(tmp_path):
    model = tiny_bert(num_hidden_layers=3)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    _run(tmp_path, model, update_from_layer=2)
    changed = _changed(before, model)
    frozen = ("bert.embeddings.", "bert.encoder.layer.0.", "bert.encoder.layer.1.")
    assert not any(n.startswith(frozen) for n in changed)
    assert any(n.startswith("bert.encoder.layer.2.") for n in changed)
    assert {"classifier.weight", "bert.pooler.dense.weight"} <= changed


def test_by_default_every_parameter_moves(tmp_path):
    model = tiny_bert(num_hidden_layers=3)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    _run(tmp_path, model)
    assert any(n.startswith("bert.embeddings.") for n in _changed(before, model))
    assert any(n.startswith("bert.encoder.layer.0.") for n in _changed(before, model))


def test_it_only_freezes_a_parameter_frozen_before_stays_frozen():
    model = tiny_bert(num_hidden_layers=3)
    model.classifier.weight.requires_grad_(False)  # e.g. a PEFT wrapper's frozen base
    freeze_below(model, {"update_from_layer": 0})
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not model.classifier.weight.requires_grad and "bert.encoder.layer.0.attention.self.query.weight" in trainable
    assert not any(n.startswith("bert.embeddings.") for n in trainable)


def test_a_bad_layer_is_refused_with_the_range(tmp_path):
    with pytest.raises(ValueError, match=r"update_from_layer=4 is out of range: the model has 3 layers; pass 0"):
        freeze_below(tiny_bert(num_hidden_layers=3), {"update_from_layer": 4})
    with pytest.raises(ValueError, match=r"update_from_layer=-1 must be a layer index ≥ 0"):
        UnlearningArguments(str(tmp_path / "o"), report_to=[], method_kwargs={"update_from_layer": -1})
