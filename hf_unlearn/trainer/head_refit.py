"""The head refit (``UnlearningArguments.head_refit``): after the last step, the classifier's output layer is fitted
again on the retain rows, to convergence.

The retain rows a forget push erases are the original's low-margin fits (rare classes' rows), which any move of the
weights flips and which a run that sees each retain row about once cannot fit again; a retrained model keeps them
because it trained to convergence on them (`benchmarks/retain_damage.py`, docs/method.md). Fitting the whole model
again is a retraining; fitting its last layer is a convex problem on the features the model now gives the retain rows.
One eval pass reads them (the inputs of the output layer, gathered over all processes), and the layer (W, b) is moved
by full-batch L-BFGS on

    mean_i CE(W h_i + b, y_i) + ‖W − W₀‖² / 2n + ‖b − b₀‖² / 2n

from the trained layer (W₀, b₀): a unit Gaussian prior on the change, n the retain rows. Only retain rows and their
labels are read; the refit runs before the prior repair, which then sets the output bias's balance on unseen rows.
"""

from __future__ import annotations

import logging

import torch
from accelerate.utils import broadcast
from transformers import TrainerCallback

from .._torch import zero3
from .heldout import add_in_place, full_tensor, output_layer, row_pass

logger = logging.getLogger(__name__)

#: L-BFGS iterations of the refit (it converges in tens on GoEmotions' 384 features × 28 classes)
REFIT_ITERATIONS = 100


def refit_layer(features: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor, iterations: int = REFIT_ITERATIONS) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The change (ΔW, Δb) that minimises mean CE(h (W₀ + ΔW)ᵀ + b₀ + Δb, y) + (‖ΔW‖² + ‖Δb‖²) / 2n (float64,
    full-batch L-BFGS from zero), and the mean CE after it."""
    x, y = features.double(), labels.long().to(features.device)
    w0, b0 = weight.double().to(x.device), bias.double().to(x.device)
    dw = torch.zeros_like(w0, requires_grad=True)
    db = torch.zeros_like(b0, requires_grad=True)
    optimizer = torch.optim.LBFGS([dw, db], max_iter=iterations, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-9, tolerance_change=1e-12)
    n = max(1, len(y))

    def closure():
        optimizer.zero_grad()
        with torch.enable_grad():
            loss = torch.nn.functional.cross_entropy(x @ (w0 + dw).T + b0 + db, y)
            loss = loss + (dw.square().sum() + db.square().sum()) / (2 * n)
            loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        after = torch.nn.functional.cross_entropy(x @ (w0 + dw).T + b0 + db, y)
    return dw.detach(), db.detach(), float(after)


class HeadRefit(TrainerCallback):
    """Refits the output layer on the retain rows after the last step (`refit_layer`), logging ``head_refit_loss``
    (the retain rows' mean loss before → after; aggregates only)."""

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
        if rows.inputs is None or rows.labels is None:
            logger.warning("head_refit: the output layer's inputs are not one vector a row; left as trained.")
            return
        dw, db, after = refit_layer(rows.inputs, rows.labels, full_tensor(layer.weight), full_tensor(layer.bias))
        # every process solved the same problem; take the main process's answer so replicas stay identical
        dw, db = (broadcast(t.to(trainer.accelerator.device)) for t in (dw, db))
        add_in_place(layer.weight, dw)
        add_in_place(layer.bias, db)
        before, after = round(float(rows.losses.mean()), 4), round(after, 4)
        state.log_history.append({"head_refit_loss_before": before, "head_refit_loss_after": after,
                                  "step": state.global_step})
        logger.info("head_refit: retain rows' mean loss %.4f → %.4f.", before, after)
