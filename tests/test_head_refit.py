"""`head_refit`: after the run the output layer is fitted again on the retain rows, which lowers their loss; only
that layer changes."""

import copy
from types import SimpleNamespace

import pytest
import torch
from helpers import overfit, tiny_bert, token_dataset
from transformers import default_data_collator

from hf_unlearn import UnlearningArguments, UnlearningTrainer
from hf_unlearn.trainer.head_refit import PENALTIES, HeadRefit, choose_refit, layer_loss, refit_layer
from hf_unlearn.trainer.heldout import output_layer, row_pass


def _rule_dataset(n, seed):
    """Token rows whose class is their first token mod 3: learnable, so held-out rows can tell a better head."""
    rows = token_dataset(n, seed)
    return rows.map(lambda row: {"labels": row["input_ids"][0] % 3})


def _trainer(tmp_path, model, forget, retain, **kw):
    args = UnlearningArguments(str(tmp_path / "out"), report_to=[], per_device_train_batch_size=8, disable_tqdm=True,
                               seed=0, logging_steps=1, save_strategy="no", forget_epochs=2, method="nabla_tau",
                               **kw)
    return UnlearningTrainer(model=model, args=args, forget_dataset=forget, retain_dataset=retain,
                             validation_dataset=_rule_dataset(64, 1), data_collator=default_data_collator)


def _separable(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return x, (x @ torch.randn(8, 3, generator=torch.Generator().manual_seed(99))).argmax(-1)


def test_refit_layer_lowers_the_loss_and_the_penalty_holds_it_near_the_start():
    x, y = _separable(60, 0)
    w, b = torch.zeros(3, 8), torch.zeros(3)
    weak_w, weak_b = refit_layer(x, y, w, b, penalty=1e-3)
    strong_w, strong_b = refit_layer(x, y, w, b, penalty=1.0)
    assert layer_loss(x, y, weak_w, weak_b) < layer_loss(x, y, strong_w, strong_b) < layer_loss(x, y, w, b)
    assert float(((x @ weak_w.float().T + weak_b.float()).argmax(-1) == y).float().mean()) > 0.9
    assert torch.isfinite(weak_w).all() and strong_w.norm() < weak_w.norm()


def test_the_forget_term_keeps_the_refit_from_fitting_the_forget_rows_back():
    (x, y), (fx, fy) = _separable(60, 0), _separable(20, 2)
    hx, hy = _separable(50, 3)[0], torch.randint(0, 3, (50,), generator=torch.Generator().manual_seed(4))
    w, b = torch.zeros(3, 8), torch.zeros(3)
    plain_w, plain_b = refit_layer(x, y, w, b, penalty=1e-2)
    held_w, held_b = refit_layer(x, y, w, b, penalty=1e-2, forget=(fx, fy, hx, hy, 0.5))
    plain, held = layer_loss(fx, fy, plain_w, plain_b), layer_loss(fx, fy, held_w, held_b)
    # held-out rows with random labels: unseen rows' loss stays high, and the forget rows are held up to it
    assert plain < 0.5 < held and held == pytest.approx(layer_loss(hx, hy, held_w, held_b), rel=0.35)
    assert layer_loss(x, y, held_w, held_b) < layer_loss(x, y, w, b)  # and the retain rows are still fitted


def test_choose_refit_picks_the_penalty_by_the_held_out_loss_or_keeps_the_layer():
    retain, held = _separable(60, 0), _separable(200, 1)
    w, b = torch.zeros(3, 8), torch.zeros(3)
    penalty, dw, db = choose_refit(retain, held, w, b)
    losses = {p: layer_loss(*held, *refit_layer(*retain, w, b, p)) for p in PENALTIES}
    assert penalty == min(losses, key=losses.get) and layer_loss(*held, dw, db) == pytest.approx(losses[penalty])
    # held-out rows the retain rows' fit only hurts: the layer is left as trained
    wrong = (held[0], (held[1] + 1) % 3)
    penalty, dw, db = choose_refit(retain, wrong, w, b)
    assert penalty is None and not dw.any() and not db.any()


def test_the_trainer_refits_only_the_output_layer_and_the_retain_loss_falls(tmp_path):
    train = _rule_dataset(96, 0)
    model = overfit(tiny_bert(), train, epochs=3, out=str(tmp_path / "original"))
    forget, retain = train.select(range(16)), train.select(range(16, 96))
    refit = _trainer(tmp_path / "refit", copy.deepcopy(model), forget, retain, prior_repair=False, head_refit=True)
    refit.train()
    entry = next(e for e in refit.state.log_history if "head_refit_loss_after" in e)
    assert entry["head_refit_penalty"] in PENALTIES
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
    assert plain.state.log_history[-1]["head_refit_penalty"] in PENALTIES  # a penalty lowered the held-out loss
    assert changed == {n for n, p in plain.model.named_parameters() if p is head.weight or p is head.bias}
    assert float(row_pass(plain, retain).losses.mean()) < loss_before


def test_head_refit_refusals(tmp_path):
    train = token_dataset(24, 0)
    with pytest.raises(ValueError, match="head_refit=True chooses its penalty on held-out rows: pass validation_"):
        args = UnlearningArguments(str(tmp_path / "out"), report_to=[], method="grad_diff", head_refit=True)
        UnlearningTrainer(model=tiny_bert(), args=args, forget_dataset=train.select(range(8)),
                          retain_dataset=train.select(range(8, 24)), data_collator=default_data_collator)
    with pytest.raises(ValueError, match="task='multi_label' has none. Leave head_refit off"):
        _trainer(tmp_path, tiny_bert(), train.select(range(8)), train.select(range(8, 24)), head_refit=True,
                 task="multi_label")
    trainer = SimpleNamespace(args=SimpleNamespace(deepspeed_plugin=SimpleNamespace(zero_stage=3)))
    with pytest.raises(ValueError, match="head_refit=True cannot refit an output layer that DeepSpeed ZeRO-3"):
        HeadRefit(trainer)
