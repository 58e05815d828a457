"""`head_refit`: after the run the output layer is fitted again on the retain rows, which lowers their loss; only
that layer changes."""

import copy
from types import SimpleNamespace

import pytest
import torch
from helpers import overfit, tiny_bert, token_dataset
from transformers import default_data_collator

from hf_unlearn import UnlearningArguments, UnlearningTrainer
from hf_unlearn.trainer.head_refit import HeadRefit, refit_layer
from hf_unlearn.trainer.heldout import output_layer, row_pass


def _trainer(tmp_path, model, forget, retain, **kw):
    args = UnlearningArguments(str(tmp_path / "out"), report_to=[], per_device_train_batch_size=8, disable_tqdm=True,
                               seed=0, logging_steps=1, save_strategy="no", forget_epochs=2, method="nabla_tau",
                               **kw)
    return UnlearningTrainer(model=model, args=args, forget_dataset=forget, retain_dataset=retain,
                             validation_dataset=token_dataset(32, 1), data_collator=default_data_collator)


def test_refit_layer_lowers_the_loss_and_stays_near_the_start():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 8, generator=g)
    y = (x @ torch.randn(8, 3, generator=g)).argmax(-1)  # linearly separable classes
    w, b = torch.zeros(3, 8), torch.zeros(3)
    dw, db, after = refit_layer(x, y, w, b)
    assert after < 0.5 * torch.nn.functional.cross_entropy(x @ w.T + b, y).item()
    assert float(((x @ (w + dw.float()).T + b + db.float()).argmax(-1) == y).float().mean()) > 0.9
    # the penalty ‖Δ‖² / 2n keeps the solution finite on separable rows
    assert torch.isfinite(dw).all() and dw.norm() < 100


def test_the_trainer_refits_only_the_output_layer_and_the_retain_loss_falls(tmp_path):
    train = token_dataset(48, 0)
    model = overfit(tiny_bert(), train, epochs=10, out=str(tmp_path / "original"))
    forget, retain = train.select(range(8)), train.select(range(8, 48))
    refit = _trainer(tmp_path / "refit", copy.deepcopy(model), forget, retain, prior_repair=False, head_refit=True)
    refit.train()
    entry = next(e for e in refit.state.log_history if "head_refit_loss_after" in e)
    assert entry["head_refit_loss_after"] < entry["head_refit_loss_before"]
    assert entry["head_refit_loss_after"] == pytest.approx(float(row_pass(refit, retain).losses.mean()), abs=1e-3)
    # the callback alone, on a trained model: only the output layer moves, and the retain rows' loss falls
    plain = _trainer(tmp_path / "plain", copy.deepcopy(model), forget, retain, prior_repair=False)
    plain.train()
    before = {name: p.detach().clone() for name, p in plain.model.named_parameters()}
    loss_before = float(row_pass(plain, retain).losses.mean())
    HeadRefit(plain).on_train_end(plain.args, plain.state, plain.control)
    head = output_layer(plain.model, plain.model.config.num_labels)
    changed = {name for name, p in plain.model.named_parameters() if not torch.equal(p, before[name])}
    assert changed == {name for name, p in plain.model.named_parameters() if p is head.weight or p is head.bias}
    assert float(row_pass(plain, retain).losses.mean()) < loss_before


def test_head_refit_refusals(tmp_path):
    train = token_dataset(24, 0)
    with pytest.raises(ValueError, match="task='multi_label' has none. Leave head_refit off"):
        _trainer(tmp_path, tiny_bert(), train.select(range(8)), train.select(range(8, 24)), head_refit=True,
                 task="multi_label")
    trainer = SimpleNamespace(args=SimpleNamespace(deepspeed_plugin=SimpleNamespace(zero_stage=3)))
    with pytest.raises(ValueError, match="head_refit=True cannot refit an output layer that DeepSpeed ZeRO-3"):
        HeadRefit(trainer)
