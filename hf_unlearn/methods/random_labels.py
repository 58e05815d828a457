"""Random labels (Amnesiac unlearning, Graves et al. 2021): fine-tune on forget samples with wrong labels + retain.

Classification only: each forget label is replaced by a random *other* class (multi-label: a random multi-hot
vector with the same number of positives) before the forward pass.
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
        description="mean loss over forget samples with random wrong labels and retain samples.",
    )
)
