"""The head refit (``UnlearningArguments.head_refit``; off by default, measured and not adopted: docs/method.md):
after the last step, the classifier's output layer is fitted again, to convergence.

The retain rows a forget push erases are the original's low-margin fits (rare classes' rows), which any move of the
weights flips and which a run that sees each retain row about once cannot fit again; a retrained model keeps them
because it trained to convergence on them (`benchmarks/retain_damage.py`). Fitting the whole model again is a
retraining; fitting its last layer is a small problem on the features the model now gives each row. Three eval passes
read them (the inputs of the output layer, gathered over all processes: retain, forget and the held-out rows τ is
measured on), and the layer (W, b) is moved from the trained (W₀, b₀) by full-batch L-BFGS on

    (1 − α) · mean_retain CE(W h + b, y) + α · mean_forget ReLU(q_i − L_i)² + λ/2 · (‖W − W₀‖² + ‖b − b₀‖²)

with ∇τ's quantile target: each forget row's loss L_i against the held-out loss q_i at its rank, under the layer
being fitted (no gradient through q), so the forget rows end as unseen rows look to the new layer — neither fitted
back (without the term they were) nor left above them (with targets fixed before the refit they were). α is the
run's α₀. λ is chosen from `PENALTIES` by the held-out rows' mean loss; if no λ lowers it, the layer is left as
trained. Only the output layer changes; it runs before the prior repair, which then balances its bias.
"""

from __future__ import annotations

import logging

import torch
from accelerate.utils import broadcast
from transformers import TrainerCallback

from .._torch import zero3
from ..methods.nabla_tau import quantile_ascent
from .heldout import add_in_place, full_tensor, output_layer, row_pass, tau_rows

logger = logging.getLogger(__name__)

#: L-BFGS iterations of the refit (it converges in tens on GoEmotions' 384 features × 28 classes)
REFIT_ITERATIONS = 100
#: the Gaussian prior's weights λ tried, weakest first; the held-out rows' loss picks one
PENALTIES = (1e-3, 1e-2, 1e-1, 1.0)


def layer_loss(features: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> float:
    """The mean cross-entropy of the linear layer (``weight``, ``bias``) on (features, labels), float64."""
    x = features.double()
    logits = x @ weight.double().to(x.device).T + bias.double().to(x.device)
    return float(torch.nn.functional.cross_entropy(logits, labels.long().to(x.device)))


def refit_layer(features: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                penalty: float, forget: tuple | None = None,
                iterations: int = REFIT_ITERATIONS) -> tuple[torch.Tensor, torch.Tensor]:
    """The change (ΔW, Δb) that minimises mean CE(h (W₀ + ΔW)ᵀ + b₀ + Δb, y) + penalty/2 · (‖ΔW‖² + ‖Δb‖²)
    (float64, full-batch L-BFGS from zero); with ``forget`` = (features, labels, held-out features, held-out labels,
    α), the CE is weighted 1 − α and α · mean ReLU(q_i − L_i)² over the forget rows is added, each row's loss against
    its rank's held-out loss under the layer being fitted (∇τ's quantile target, `quantile_ascent`; no gradient
    through the targets), so the refit neither fits the forget rows back nor leaves them above unseen rows."""
    x, y = features.double(), labels.long().to(features.device)
    w0, b0 = weight.double().to(x.device), bias.double().to(x.device)
    dw = torch.zeros_like(w0, requires_grad=True)
    db = torch.zeros_like(b0, requires_grad=True)
    optimizer = torch.optim.LBFGS([dw, db], max_iter=iterations, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        optimizer.zero_grad()
        with torch.enable_grad():
            w, b = w0 + dw, b0 + db
            loss = torch.nn.functional.cross_entropy(x @ w.T + b, y)
            if forget is not None:
                fx, fy, hx, hy, alpha = forget
                forget_losses = torch.nn.functional.cross_entropy(fx.double().to(x.device) @ w.T + b,
                                                                  fy.long().to(x.device), reduction="none")
                held = torch.nn.functional.cross_entropy(hx.double().to(x.device) @ w.T + b, hy.long().to(x.device),
                                                         reduction="none").detach()
                loss = (1 - alpha) * loss + alpha * quantile_ascent(forget_losses, torch.sort(held).values)
            loss = loss + penalty / 2 * (dw.square().sum() + db.square().sum())
            loss.backward()
        return loss

    optimizer.step(closure)
    return dw.detach(), db.detach()


def choose_refit(retain: tuple[torch.Tensor, torch.Tensor], heldout: tuple[torch.Tensor, torch.Tensor],
                 weight: torch.Tensor, bias: torch.Tensor,
                 forget: tuple | None = None) -> tuple[float | None, torch.Tensor, torch.Tensor]:
    """The refit (`refit_layer` on the ``retain`` (features, labels)) whose λ in `PENALTIES` gives the lowest loss
    on the ``heldout`` (features, labels): (λ, ΔW, Δb); (None, 0, 0) when none is below the trained layer's."""
    w0, b0 = weight.double(), bias.double()
    best = (None, torch.zeros_like(w0), torch.zeros_like(b0))
    best_loss = layer_loss(*heldout, w0, b0)
    for penalty in PENALTIES:
        dw, db = refit_layer(*retain, w0, b0, penalty, forget)
        loss = layer_loss(*heldout, w0 + dw.to(w0.device), b0 + db.to(b0.device))
        if loss < best_loss:
            best, best_loss = (penalty, dw, db), loss
    return best


class HeadRefit(TrainerCallback):
    """Refits the output layer after the last step (`choose_refit`), logging ``head_refit_penalty`` (0: the layer
    kept) and ``head_refit_loss_before`` / ``_after`` (the retain rows' mean loss; aggregates only)."""

    def __init__(self, trainer):
        if zero3(trainer.args):
            raise ValueError("head_refit=True cannot refit an output layer that DeepSpeed ZeRO-3 partitions across "
                             "ranks; run with ZeRO-1/2 (or FSDP2, or one process) or leave head_refit off.")
        self.trainer = trainer

    def on_train_end(self, args, state, control, **kwargs):
        trainer = self.trainer
        model = trainer.accelerator.unwrap_model(trainer.model)
        num_labels = getattr(getattr(model, "config", None), "num_labels", None)
        layer = output_layer(model, num_labels) if num_labels else None
        if layer is None or not layer.weight.requires_grad:
            logger.warning("head_refit: the model has no trainable output layer with num_labels outputs; left as "
                           "trained.")
            return
        rows = row_pass(trainer, trainer.retain_dataset, layer=layer)
        held = row_pass(trainer, tau_rows(trainer), layer=layer)
        gone = row_pass(trainer, trainer.forget_dataset, layer=layer)
        if any(r.inputs is None or r.labels is None for r in (rows, held, gone)):
            logger.warning("head_refit: the output layer's inputs are not one vector a row; left as trained.")
            return
        weight, bias = full_tensor(layer.weight), full_tensor(layer.bias)
        alpha = trainer.alpha0 if trainer.alpha0 is not None else 0.5
        forget = (gone.inputs, gone.labels, held.inputs, held.labels, alpha)
        penalty, dw, db = choose_refit((rows.inputs, rows.labels), (held.inputs, held.labels), weight, bias, forget)
        # every process solved the same problems; take the main process's answer so replicas stay identical
        dw, db = (broadcast(t.to(trainer.accelerator.device)) for t in (dw, db))
        entry = {"head_refit_penalty": penalty if penalty is not None else 0.0,
                 "head_refit_loss_before": round(float(rows.losses.mean()), 4),
                 "head_refit_loss_after": round(layer_loss(rows.inputs, rows.labels, weight.double() + dw.double().to(
                     weight.device), bias.double() + db.double().to(bias.device)), 4)}
        add_in_place(layer.weight, dw)
        add_in_place(layer.bias, db)
        state.log_history.append({**entry, "step": state.global_step})
        logger.info("head_refit: λ %s; retain rows' mean loss %.4f → %.4f.", penalty,
                    entry["head_refit_loss_before"], entry["head_refit_loss_after"])
