"""The objectives, by hand on small tensors."""

import math

import pytest
import torch

from hf_unlearn.methods import METHODS, ObjectiveInputs, get_method, nabla_tau_loss, npo_loss
from hf_unlearn.methods.random_labels import random_relabel


def test_nabla_tau_value_by_hand():
    forget = torch.tensor([0.5, 1.5])  # mean 1.0
    retain = torch.tensor([0.2, 0.4])  # mean 0.3
    loss = nabla_tau_loss(forget, retain, tau=2.0, alpha=0.25)
    assert loss.item() == pytest.approx(0.25 * 1.0**2 + 0.75 * 0.3)


def test_below_tau_forget_term_ascends():
    forget = torch.tensor([0.5, 1.5], requires_grad=True)
    retain = torch.tensor([0.2, 0.4], requires_grad=True)
    nabla_tau_loss(forget, retain, tau=2.0, alpha=0.5).backward()
    # d/dLf [α (τ − mean Lf)²] = −2α(τ − mean)/n: negative, so a descent step raises the forget loss
    assert torch.allclose(forget.grad, torch.full((2,), -2 * 0.5 * 1.0 / 2))
    assert torch.allclose(retain.grad, torch.full((2,), 0.5 / 2))


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_at_or_above_tau_forget_term_is_zero(tau):
    forget = torch.tensor([0.5, 1.5], requires_grad=True)  # mean 1.0 ≥ τ
    retain = torch.tensor([0.2, 0.4], requires_grad=True)
    loss = nabla_tau_loss(forget, retain, tau=tau, alpha=0.7)
    loss.backward()
    assert torch.equal(forget.grad, torch.zeros(2))
    assert loss.item() == pytest.approx(0.3 * 0.3)


def test_alpha_zero_is_plain_retain_finetuning():
    forget = torch.tensor([0.1, 0.2], requires_grad=True)
    retain = torch.tensor([0.2, 0.4, 0.9], requires_grad=True)
    loss = nabla_tau_loss(forget, retain, tau=5.0, alpha=0.0)
    loss.backward()
    assert loss.item() == pytest.approx(retain.mean().item())
    assert torch.equal(forget.grad, torch.zeros(2))


def test_objective_is_fp32_for_half_precision_losses():
    loss = nabla_tau_loss(torch.tensor([0.5], dtype=torch.bfloat16), torch.tensor([0.3], dtype=torch.bfloat16),
                          tau=1.0, alpha=0.5)
    assert loss.dtype == torch.float32


def _inputs(**kw):
    base = dict(forget_losses=torch.tensor([1.0, 3.0]), retain_losses=torch.tensor([0.5, 1.5]))
    base.update(kw)
    return ObjectiveInputs(**base)


def test_baseline_objectives_by_hand():
    assert get_method("finetune").objective(_inputs()).item() == pytest.approx(1.0)
    assert get_method("gradient_ascent").objective(_inputs()).item() == pytest.approx(-2.0)
    grad_diff = get_method("grad_diff").objective(_inputs(hparams={"retain_weight": 0.5}))
    assert grad_diff.item() == pytest.approx(-2.0 + 0.5 * 1.0)
    assert get_method("random_labels").objective(_inputs()).item() == pytest.approx(1.5)


def test_npo_matches_its_formula():
    forget, ref, beta = torch.tensor([1.0, 3.0]), torch.tensor([0.5, 0.8]), 0.1
    expected = (2 / beta) * sum(math.log1p(math.exp(beta * (r - f))) for f, r in zip([1.0, 3.0], [0.5, 0.8])) / 2
    assert npo_loss(forget, ref, beta).item() == pytest.approx(expected, rel=1e-6)
    with_retain = get_method("npo").objective(
        _inputs(ref_forget_losses=ref, hparams={"npo_beta": beta, "retain_weight": 1.0}))
    assert with_retain.item() == pytest.approx(expected + 1.0, rel=1e-6)
    # β → 0 recovers gradient ascent's gradient: d/dL_f = −1/n
    f = forget.clone().requires_grad_(True)
    npo_loss(f, ref, 1e-4).backward()
    assert torch.allclose(f.grad, torch.full((2,), -0.5), atol=1e-3)


def test_random_relabel_changes_every_label():
    labels = torch.tensor([0, 1, 2, 2, 1, 0] * 10)
    new = random_relabel(labels, 3, torch.Generator().manual_seed(0))
    assert (new != labels).all() and new.min() >= 0 and new.max() <= 2
    multi = torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0]])
    new_multi = random_relabel(multi, 4, torch.Generator().manual_seed(0))
    assert torch.equal(new_multi.sum(1), multi.sum(1))
    with pytest.raises(ValueError, match="classification labels"):
        random_relabel(torch.zeros(2, 5, dtype=torch.long), 10, torch.Generator())


def test_unknown_method_lists_valid_ones():
    with pytest.raises(ValueError) as err:
        get_method("forgetful")
    for name in METHODS:
        assert name in str(err.value)
    assert set(METHODS) >= {"nabla_tau", "finetune", "gradient_ascent", "grad_diff", "npo", "random_labels"}
