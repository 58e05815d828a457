"""Unlearning methods: a registry of pure objectives over per-sample losses and logits (no Trainer, no datasets),
and one-shot methods that edit a model once (SSD)."""

# registration: importing a method's module registers it
from . import finetune, grad_diff, gradient_ascent, nabla_tau, npo, random_labels, rmu, scrub, simnpo, ssd  # noqa
from .base import METHODS, Method, ObjectiveInputs, get_method, register
from .nabla_tau import nabla_tau_loss
from .npo import npo_loss
from .simnpo import simnpo_loss

__all__ = ["METHODS", "Method", "ObjectiveInputs", "get_method", "register", "nabla_tau_loss", "npo_loss",
           "simnpo_loss"]
