"""`tau_target="quantiles"`: each forget row, by rank, gated towards the held-out loss at that rank (per class with
`"class_quantiles"`); and ∇τ with the KL retain term (`retain_loss="kl"`)."""

import pytest
import torch
from helpers import tiny_bert, token_dataset
from transformers import default_data_collator

from hf_unlearn import UnlearningArguments, UnlearningTrainer
from hf_unlearn.methods import nabla_tau_loss
from hf_unlearn.methods.base import ObjectiveInputs
from hf_unlearn.methods.nabla_tau import MIN_CLASS_ROWS, NABLA_TAU, below_target, quantile_ascent, relabel_descent
from hf_unlearn.trainer.checkpoints import write_state

HELD_OUT = torch.tensor([0.0, 1.0, 2.0, 3.0])  # mean (τ) 1.5; quantiles at ranks ¼, ¾: 0.75, 2.25


def test_quantile_gate_by_hand():
    forget = torch.tensor([3.5, 0.5], requires_grad=True)  # sorted: 0.5 → target 0.75, 3.5 → target 2.25
    loss = quantile_ascent(forget, HELD_OUT)
    assert loss.item() == pytest.approx((0.75 - 0.5) ** 2 / 2)
    loss.backward()
    # only the row below its rank's held-out loss is pushed; the one above its target is left alone
    assert torch.allclose(forget.grad, torch.tensor([0.0, -2 * 0.25 / 2]))


def test_quantile_gate_still_pushes_a_memorised_row_the_mean_gate_lets_go():
    # one blown-up row lifts the batch mean (1.55) over τ (1.5): the paper's gate stops, the other row stays memorised
    forget = torch.tensor([0.1, 3.0], requires_grad=True)
    retain = torch.tensor([0.2])
    nabla_tau_loss(forget, retain, tau=1.5, alpha=0.5).backward()
    assert torch.equal(forget.grad, torch.zeros(2))
    forget.grad = None
    nabla_tau_loss(forget, retain, tau=1.5, alpha=0.5, heldout_losses=HELD_OUT).backward()
    assert forget.grad[0] == pytest.approx(-0.5 * 2 * (0.75 - 0.1) / 2) and forget.grad[1] == 0


def test_quantile_gate_is_zero_on_the_held_out_distribution():
    held_out = torch.linspace(0.1, 4.0, 101)
    ranks = (torch.arange(8) + 0.5) / 8
    assert quantile_ascent(torch.quantile(held_out, ranks).flip(0), held_out).item() == pytest.approx(0, abs=1e-12)


def test_class_quantiles_rank_each_row_within_its_class():
    # class 0: held-out losses 0.0 … 0.9 (a class the model predicts well on unseen rows); class 1: too few held-out
    # rows for its own quantiles, so its row keeps the pooled target at its pooled rank
    held_out = torch.cat([torch.arange(MIN_CLASS_ROWS) / MIN_CLASS_ROWS, torch.tensor([3.0, 4.0])])
    classes = torch.tensor([0] * MIN_CLASS_ROWS + [1, 1])
    forget = torch.tensor([0.5, 0.3, 0.2])
    labels = torch.tensor([0, 0, 1])
    pooled = torch.quantile(held_out, torch.tensor([1 / 6, 3 / 6, 5 / 6]))  # pooled ranks: 0.2 → 0, 0.3 → 1, 0.5 → 2
    by_class = torch.quantile(held_out[:MIN_CLASS_ROWS], torch.tensor([0.25, 0.75]))  # 0.3 → rank 0, 0.5 → rank 1
    assert below_target(forget, 1.0, held_out).tolist() == [True, True, False]
    gate = below_target(forget, 1.0, held_out, labels, classes)
    # the class-0 row at 0.3 is as surprising as its rank among unseen class-0 rows (0.225): no longer pushed
    assert gate.tolist() == [True, False, False]
    loss = quantile_ascent(forget, held_out, labels, classes)
    expected = ((by_class[1] - 0.5).clamp(min=0) ** 2 + (by_class[0] - 0.3).clamp(min=0) ** 2
                + (pooled[0] - 0.2).clamp(min=0) ** 2) / 3
    assert loss.item() == pytest.approx(expected.item())


def test_class_quantiles_need_single_label_classes():
    x = ObjectiveInputs(torch.tensor([0.1]), torch.tensor([0.2]), tau=1.0, alpha=0.5, heldout_losses=HELD_OUT,
                        hparams={"tau_target": "class_quantiles", "forget_push": "ascent"})
    with pytest.raises(ValueError, match="tau_target='class_quantiles' needs single-label classification labels"):
        NABLA_TAU.objective(x)


def _trainer(tmp_path, **kw):
    kw.setdefault("forget_push", "ascent")  # the gates of the paper's ascent, unless a test asks for relabel
    train = token_dataset(48, 0)
    args = UnlearningArguments(str(tmp_path / "out"), report_to=[], per_device_train_batch_size=8, disable_tqdm=True,
                               seed=0, logging_steps=1, **kw)
    return UnlearningTrainer(model=tiny_bert(), args=args, forget_dataset=train.select(range(8)),
                             retain_dataset=train.select(range(8, 48)), validation_dataset=token_dataset(16, 1),
                             data_collator=default_data_collator)


def test_trainer_keeps_the_held_out_losses_and_the_gate_reads_them(tmp_path):
    trainer = _trainer(tmp_path, tau_target="quantiles")
    tau = trainer.compute_tau()
    held_out = trainer.heldout_losses
    assert len(held_out) == 16 and torch.equal(held_out, held_out.sort().values)
    assert held_out.double().mean().item() == pytest.approx(tau, rel=1e-6)
    # an untrained model's forget rows look held out (both gates off): lift the held-out losses as a memorising
    # model would see them
    trainer.tau, trainer.heldout_losses = tau + 1.0, held_out + torch.linspace(0.0, 2.0, 16)
    tau, held_out = trainer.tau, trainer.heldout_losses
    trainer.model.eval()  # no dropout: the same losses in both calls
    batch = next(iter(trainer.get_train_dataloader()))
    forget, retain, *_ = trainer._paired_losses(trainer.model, batch)
    alpha = trainer.current_alpha()
    expected = nabla_tau_loss(forget, retain, tau, alpha, heldout_losses=held_out)
    paper = nabla_tau_loss(forget, retain, tau, alpha)
    assert trainer.compute_loss(trainer.model, batch).item() == pytest.approx(expected.item(), rel=1e-4)
    assert abs(expected.item() - paper.item()) > 1e-3  # the two gates differ on this batch


def test_held_out_losses_and_classes_travel_with_a_checkpoint(tmp_path):
    trainer = _trainer(tmp_path, tau_target="class_quantiles")
    trainer.tau = trainer.compute_tau()
    # each held-out loss keeps its row's class through the sort
    rows = token_dataset(16, 1)
    trainer.model.eval()
    with torch.no_grad():
        logits = trainer.model(input_ids=torch.tensor(rows["input_ids"]),
                               attention_mask=torch.tensor(rows["attention_mask"])).logits
    losses = torch.nn.functional.cross_entropy(logits, torch.tensor(rows["labels"]), reduction="none")
    for label in range(3):
        mine = trainer.heldout_losses[trainer.heldout_labels == label]
        assert torch.allclose(mine, losses[torch.tensor(rows["labels"]) == label].sort().values, atol=1e-5)
    folder = tmp_path / "checkpoint-1"
    folder.mkdir()
    write_state(str(folder), trainer.unlearning_state())
    resumed = _trainer(tmp_path, tau_target="class_quantiles")
    resumed._load_unlearning_state(str(folder))
    assert torch.allclose(resumed.heldout_losses, trainer.heldout_losses) and resumed.tau == trainer.tau
    assert torch.equal(resumed.heldout_labels, trainer.heldout_labels)


def test_fixed_tau_keeps_the_mean_gate(tmp_path):
    trainer = _trainer(tmp_path, tau_target="quantiles", tau=5.0)
    trainer.tau = trainer.compute_tau()
    assert trainer.tau == 5.0 and trainer.heldout_losses is None  # nothing held out was measured
    trainer.model.eval()
    batch = next(iter(trainer.get_train_dataloader()))
    forget, retain, *_ = trainer._paired_losses(trainer.model, batch)
    expected = nabla_tau_loss(forget, retain, 5.0, trainer.current_alpha())
    assert trainer.compute_loss(trainer.model, batch).item() == pytest.approx(expected.item(), rel=1e-4)


def test_kl_retain_term_is_zero_at_the_original(tmp_path):
    trainer = _trainer(tmp_path, retain_loss="kl")
    assert trainer.ref_model is not None  # built for the KL term only
    trainer.tau = trainer.compute_tau()
    trainer.model.eval()  # no dropout: θ is exactly the reference
    batch = next(iter(trainer.get_train_dataloader()))
    forget, *_ = trainer._paired_losses(trainer.model, batch)
    ascent_only = trainer.current_alpha() * torch.relu(trainer.tau - forget.mean()) ** 2
    assert trainer.compute_loss(trainer.model, batch).item() == pytest.approx(ascent_only.item(), rel=1e-4, abs=1e-6)
    assert _trainer(tmp_path).ref_model is None  # the paper's retain term builds no reference


def test_relabel_descent_by_hand():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 1.0]], requires_grad=True)
    labels = torch.tensor([0, 1])
    below = torch.tensor([True, False])  # the second row already sits at its target
    loss = relabel_descent(logits, labels, below)
    log_p = torch.log_softmax(logits.detach()[0], -1)
    assert loss.item() == pytest.approx(-0.5 * (log_p[1] + log_p[2]).item() / 2)  # q = the other classes, ½ each
    loss.backward()
    assert logits.grad[0, 0] > 0 and torch.equal(logits.grad[1], torch.zeros(3))  # the label's logit goes down
    # the gate: each row against its rank's held-out loss (quantiles), or against τ
    assert below_target(torch.tensor([3.5, 0.5]), 1.5, HELD_OUT).tolist() == [False, True]
    assert below_target(torch.tensor([1.0, 2.0]), 1.5, None).tolist() == [True, False]


def test_calibrated_push_stops_at_the_target():
    logits = torch.tensor([[4.0, 1.0, 0.0]], requires_grad=True)  # p(label) ≈ 0.94: a memorised row
    labels, below = torch.tensor([0]), torch.tensor([True])
    target = torch.tensor([0.5])  # its rank's held-out loss: the label should keep e^(−0.5) ≈ 0.61
    relabel_descent(logits, labels, below, target).backward()
    calibrated = logits.grad.clone()
    logits.grad = None
    relabel_descent(logits, labels, below).backward()
    p_label = torch.softmax(logits.detach(), -1)[0, 0]
    # the same direction as the plain relabel push, scaled by 1 − e^(−target)/p(label)
    assert torch.allclose(calibrated, logits.grad * (1 - torch.exp(-target) / p_label), atol=1e-6)
    # at the target the push is zero: the row's loss already equals its rank's held-out loss
    at_target = torch.log(torch.tensor([[float(torch.exp(-target)), 0.3, 0.1]])).requires_grad_()
    at_target.data[0, 1:] = torch.log(torch.tensor([0.3, 0.1]) * (1 - torch.exp(-target)) / 0.4)
    relabel_descent(at_target, labels, below, target).backward()
    assert torch.allclose(at_target.grad, torch.zeros(1, 3), atol=1e-6)


def test_relabel_push_in_the_trainer(tmp_path):
    trainer = _trainer(tmp_path, forget_push="relabel", tau_target="quantiles")
    trainer.tau = trainer.compute_tau() + 1.0
    trainer.heldout_losses = trainer.heldout_losses + 1.0
    trainer.model.eval()
    batch = next(iter(trainer.get_train_dataloader()))
    forget, retain, forget_in, _, halves = trainer._paired_losses(trainer.model, batch)
    below = below_target(forget, trainer.tau, trainer.heldout_losses)
    alpha = trainer.current_alpha()
    push = relabel_descent(halves["forget_logits"], forget_in["labels"], below)
    expected = alpha * push + (1 - alpha) * retain.mean()
    assert below.any() and trainer.compute_loss(trainer.model, batch).item() == pytest.approx(expected.item(), rel=1e-4)
    with pytest.raises(ValueError, match="forget_push='shove'; choose one of ascent, relabel, calibrated"):
        _trainer(tmp_path, forget_push="shove")
