"""`tau_gate`: the forget loss ∇τ compares with τ, measured with dropout on ("train") or off ("eval")."""

import pytest
import torch
from helpers import tiny_bert, token_dataset
from transformers import default_data_collator

from hf_unlearn import UnlearningArguments, UnlearningTrainer
from hf_unlearn.losses import per_sample_losses


def _trainer(tmp_path, gate, fuse=None):
    model = tiny_bert(hidden_dropout_prob=0.5, attention_probs_dropout_prob=0.5)
    train = token_dataset(48, 0)
    args = UnlearningArguments(str(tmp_path / gate), tau_gate=gate, fuse_forget_retain=fuse, report_to=[],
                               per_device_train_batch_size=8, disable_tqdm=True, seed=0)
    return UnlearningTrainer(model=model, args=args, forget_dataset=train.select(range(8)),
                             retain_dataset=train.select(range(8, 48)), validation_dataset=token_dataset(16, 1),
                             data_collator=default_data_collator)


def _step_losses(trainer):
    """One step's per-sample losses, plus the forget batch, the forward-pass count and the modes left behind."""
    batch = next(iter(trainer.get_train_dataloader()))
    model = trainer.model
    model.train()
    calls = []
    handle = model.register_forward_hook(lambda *a: calls.append(1))
    torch.manual_seed(0)
    forget, retain, forget_in, _, _ = trainer._paired_losses(model, batch)
    handle.remove()
    assert all(m.training for m in model.modules())  # train mode restored for the optimizer step
    return forget, retain, forget_in, len(calls)


def _eval_pass(model, batch):
    model.eval()
    with torch.no_grad():
        losses = per_sample_losses(model, batch)[0]
    model.train()
    return losses


@pytest.mark.parametrize("fuse", [None, False])
def test_eval_gate_gives_the_eval_mode_forget_loss_and_gradients_flow(tmp_path, fuse):
    trainer = _trainer(tmp_path, "eval", fuse)
    forget, retain, forget_in, passes = _step_losses(trainer)
    assert torch.allclose(forget, _eval_pass(trainer.model, forget_in), atol=1e-5)
    assert passes == 2  # a fused batch is split: forget rows without dropout, retain rows with it
    forget.mean().backward()
    grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


def test_train_gate_is_the_papers_in_step_loss_with_dropout(tmp_path):
    trainer = _trainer(tmp_path, "train")
    forget, retain, forget_in, passes = _step_losses(trainer)
    assert passes == 1  # fused: one forward pass over forget + retain, as before
    assert not torch.allclose(forget, _eval_pass(trainer.model, forget_in), atol=1e-3)  # dropout on
    # the same dropout draw as an unchanged fused pass
    batch = next(iter(trainer.get_train_dataloader()))
    inputs = {k: v for k, v in batch.items() if k != "num_forget"}
    torch.manual_seed(0)
    fused = per_sample_losses(trainer.model, inputs)[0]
    assert torch.allclose(forget, fused[:8]) and torch.allclose(retain, fused[8:])


def test_eval_gate_keeps_dropout_on_the_retain_half(tmp_path):
    trainer = _trainer(tmp_path, "eval")
    _, retain, _, _ = _step_losses(trainer)
    batch = next(iter(trainer.get_train_dataloader()))
    retain_rows = {k: v[8:] for k, v in batch.items() if k != "num_forget"}
    assert not torch.allclose(retain, _eval_pass(trainer.model, retain_rows), atol=1e-3)


def test_eval_gate_trains_and_bad_value_is_refused(tmp_path):
    trainer = _trainer(tmp_path, "eval")
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    assert trainer.state.global_step >= 1 and trainer.tau is not None
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    with pytest.raises(ValueError, match="tau_gate='dropout'; choose one of train, eval"):
        UnlearningArguments(str(tmp_path / "bad"), tau_gate="dropout")


def test_default_gate_is_eval_and_the_papers_stays_reachable(tmp_path):
    assert UnlearningArguments(str(tmp_path / "d")).tau_gate == "eval"  # chosen on the benchmark's dev rows
    assert UnlearningArguments(str(tmp_path / "p"), tau_gate="train").tau_gate == "train"
