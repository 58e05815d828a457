"""Gradient ascent on the forget set only (Golatkar et al. 2020; Jang et al. 2023): unbounded, no retain term."""

from __future__ import annotations

from .base import Method, register

GRADIENT_ASCENT = register(
    Method(
        name="gradient_ascent",
        objective=lambda x: -x.forget_mean(),
        uses_retain=False,
        description="−mean L_forget (pushes the forget loss up without bound).",
    )
)
