"""Unlearning methods: a registry of pure objectives over per-sample losses and logits (no Trainer, no datasets),
and one-shot methods that edit a model once (SSD)."""

from . import finetune, grad_diff, gradient_ascent, nabla_tau, npo, random_labels, scrub, ssd  # noqa: F401  (registration)
from .base import METHODS, Method, ObjectiveInputs, get_method, register
from .nabla_tau import nabla_tau_loss
from .npo import npo_loss

__all__ = ["METHODS", "Method", "ObjectiveInputs", "get_method", "register", "nabla_tau_loss", "npo_loss"]
