"""SCRUB (Kurmanji et al., NeurIPS 2023, arXiv 2302.09880): the original model as a frozen teacher; the student
moves *away* from it on the forget set (max-steps) and stays close to it, and correct, on the retain set
(min-steps):

    max-step:  − KL_T(teacher ‖ student) on forget
    min-step:  γ · L_retain + α_kd · KL_T(teacher ‖ student) on retain

KL_T is the distillation KL at temperature T, scaled by T² (Hinton et al.). The reference implementation
(``SCRUB/thirdparty/repdistiller/helper/loops.py::train_distill``, run by the ∇τ paper's notebooks
``Unlearning_main_Cifar10.ipynb``) alternates, per epoch, one max pass over the forget set and one min pass over
the retain set for the first ``msteps`` epochs (3 of 6), then min passes only; γ = 1, α_kd = 0.5, T = 4.

Here every step pairs a forget and a retain batch, so a step sums both terms (one optimizer step on the sum)
while the max phase lasts (``scrub_msteps`` forget-epochs, default: the first half of the run, the reference's
3 of 6), and takes the min term alone after it. Not carried over: the reference's SGDA smoothing term
(0.5·Σ‖θ − θ_swa‖, an unused pull towards the start weights since its averaging starts after the last epoch),
its SGD optimizer and its pick of the epoch checkpoint whose forget error is closest to a validation error.
Single-label classification (text or images): the KL is over the softmax of the class logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Method, ObjectiveInputs, mean, register


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-sample KL(teacher ‖ student) of the temperature-softened class distributions, × T² (fp32)."""
    t = float(temperature)
    log_s = F.log_softmax(student_logits.float() / t, dim=-1)
    log_t = F.log_softmax(teacher_logits.float().detach() / t, dim=-1)
    return (log_t.exp() * (log_t - log_s)).sum(dim=-1) * t * t


def in_max_phase(x: ObjectiveInputs) -> bool:
    """Whether this step still takes the max-step: ``scrub_msteps`` forget-epochs, or half the run when unset."""
    msteps = x.hparams.get("scrub_msteps")
    return x.epoch < msteps if msteps is not None else x.progress < 0.5


def scrub_loss(x: ObjectiveInputs) -> torch.Tensor:
    """γ · mean L_retain + α_kd · KL_T(retain) − [max phase] · KL_T(forget)."""
    hp = x.hparams
    temperature = hp["scrub_temperature"]
    loss = hp["retain_weight"] * mean(x.retain_losses)
    loss = loss + hp["scrub_kl_weight"] * distill_kl(x.retain_logits, x.ref_retain_logits, temperature).mean()
    if in_max_phase(x):
        loss = loss - distill_kl(x.forget_logits, x.ref_forget_logits, temperature).mean()
    return loss


def _check(hp: dict) -> None:
    if not hp["scrub_temperature"] > 0:
        raise ValueError(f"scrub_temperature={hp['scrub_temperature']} must be > 0.")
    if hp["scrub_kl_weight"] < 0:
        raise ValueError(f"scrub_kl_weight={hp['scrub_kl_weight']} must be ≥ 0.")
    if hp["scrub_msteps"] is not None and hp["scrub_msteps"] < 0:
        raise ValueError(f"scrub_msteps={hp['scrub_msteps']} must be ≥ 0, or None for the first half of the run.")


SCRUB = register(
    Method(
        name="scrub",
        objective=scrub_loss,
        needs_reference=True,
        needs_logits=True,
        tasks=("single_label", "image_classification"),
        length_multiplier=2.0,
        hparams=("retain_weight", "scrub_kl_weight", "scrub_temperature", "scrub_msteps"),
        defaults={"scrub_kl_weight": 0.5, "scrub_temperature": 4.0, "scrub_msteps": None},
        check=_check,
        description="frozen teacher; −KL_T(forget) while in the max phase + γ·L_retain + α_kd·KL_T(retain).",
    )
)
