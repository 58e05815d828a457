"""Random labels: the Amnesiac-style baseline (Graves et al., AAAI 2021, "Amnesiac Machine Learning"; the
``amnesiac`` strategy of the SSD reference code compared in the ∇τ paper): fine-tune on the forget samples with
wrong labels together with the retain samples.

Each step's loss is the mean cross-entropy over the paired batch, the forget half relabelled. (The reference
shuffles the relabelled forget samples into the retain set and trains 3 epochs at LR 1e-4; here every step pairs
a forget and a retain batch, so forget samples weigh as much as retain ones, for the usual run length.) Classification
only: each forget label is replaced by a random *other* class (multi-label: a random multi-hot vector with the
same number of positives) before the forward pass. (Amnesiac's other variant, subtracting the stored updates of
the batches that held forget samples, needs the original training run's updates and is not implemented.)
"""

from __future__ import annotations

import torch

from .base import Method, ObjectiveInputs, register


def random_relabel(labels: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """Random wrong labels for class ids ``[n]`` or multi-hot vectors ``[n, C]`` (seeded by ``generator``)."""
    if labels.dim() == 2 and labels.is_floating_point():
        scores = torch.rand(labels.shape, generator=generator).to(labels.device)
        k = labels.sum(dim=1, keepdim=True).clamp(min=1)
        ranks = scores.argsort(dim=1).argsort(dim=1)
        return (ranks < k).to(labels.dtype)
    if labels.dim() != 1 or labels.is_floating_point() or num_classes < 2:
        raise ValueError(
            "method='random_labels' needs classification labels (class ids with at least 2 classes, or multi-hot "
            "vectors); for causal LMs use nabla_tau, npo or grad_diff."
        )
    shift = torch.randint(1, num_classes, labels.shape, generator=generator).to(labels.device)
    return (labels + shift) % num_classes


def _objective(x: ObjectiveInputs) -> torch.Tensor:
    return torch.cat([x.forget_losses.float(), x.retain_losses.float()]).mean()


RANDOM_LABELS = register(
    Method(
        name="random_labels",
        objective=_objective,
        relabel=random_relabel,
        description="Amnesiac-style: mean loss over forget samples with random wrong labels and retain samples.",
    )
)
