"""One decoder layer's hidden states at training time, for objectives on representations (RMU).

The layer's output is caught by a forward hook while the model runs its usual forward passes of a paired step (so
no pass is added on the trained model); the frozen reference runs on the retain rows only and stops right after
that layer (the layers above it cannot change its output).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import torch

from ._torch import unwrap_model
from .reference import reference_outputs


class _Stop(Exception):
    """Raised by the hook to end a forward pass once the layer's output is caught."""


def decoder_layers(model: torch.nn.Module) -> tuple[str, torch.nn.ModuleList]:
    """The model's stack of decoder layers (the ``ModuleList`` with ``config.num_hidden_layers`` entries) and its
    parameter-name prefix; ``ValueError`` if there is none."""
    base = unwrap_model(model)
    count = getattr(getattr(base, "config", None), "num_hidden_layers", None)
    for name, module in base.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return name, module
    raise ValueError(f"{type(base).__name__} has no list of {count} decoder layers (config.num_hidden_layers); "
                     "methods on hidden states (rmu) and ∇τ's update_from_layer need a transformers model.")


def resolve_layer(model: torch.nn.Module, layer: int | None) -> int:
    """The layer index: ``layer``, or (``None``) the peer's depth, layer 7 of 32 (⌊7/32 × layers + ½⌋)."""
    _, layers = decoder_layers(model)
    index = int(7 / 32 * len(layers) + 0.5) if layer is None else int(layer)
    if not 0 <= index < len(layers):
        raise ValueError(f"hidden_layer={layer} is out of range: the model has {len(layers)} decoder layers "
                         f"(0–{len(layers) - 1}).")
    return index


def layer_parameters(model: torch.nn.Module, layers: range, pattern: str) -> list[str]:
    """Names of the parameters of decoder ``layers`` whose name (after ``<prefix>.<i>.``) matches ``pattern``."""
    prefix, _ = decoder_layers(model)
    heads = tuple(f"{prefix}.{i}." for i in layers)
    names = []
    for name, _ in unwrap_model(model).named_parameters():
        head = next((h for h in heads if h in name), None)
        if head is not None and re.search(pattern, name.split(head, 1)[1]):
            names.append(name)
    return names


@contextlib.contextmanager
def capture(model: torch.nn.Module, layer: int, stop: bool = False) -> Iterator[list[torch.Tensor]]:
    """Collect layer ``layer``'s output of every forward pass inside the block (in order); with ``stop``, each
    pass ends right after that layer (its model output is then ``None``)."""
    _, layers = decoder_layers(model)
    caught: list[torch.Tensor] = []

    def hook(module, args, output):
        caught.append(output[0] if isinstance(output, tuple) else output)
        if stop:
            raise _Stop

    handle = layers[layer].register_forward_hook(hook)
    try:
        yield caught
    finally:
        handle.remove()


def run_until(model: torch.nn.Module, layer: int, batch: dict) -> torch.Tensor:
    """Layer ``layer``'s output of ``model`` on ``batch`` (labels left out), the layers above it not run."""
    batch = {k: v for k, v in batch.items() if k not in ("labels", "label")}
    with capture(model, layer, stop=True) as caught:
        with contextlib.suppress(_Stop):
            model(**batch)
    return caught[0]


def step_hidden(trainer, model, caught: list[torch.Tensor], inputs: dict, forget_inputs: dict,
                retain_inputs: dict, layer: int) -> dict[str, torch.Tensor]:
    """``ObjectiveInputs.hidden`` of one paired step: the trained model's layer output per half (from ``caught``:
    two passes, forget then retain, or one fused pass split at ``num_forget``), the reference's on the retain rows,
    and each half's supervised-token mask."""
    if len(caught) == 1:
        n = int(inputs["num_forget"])
        forget, retain = caught[0][:n], caught[0][n:]
    else:
        forget, retain = caught[0], caught[-1]
    ref = reference_outputs(trainer.accelerator, trainer.ref_model, model,
                            lambda m: run_until(m, layer, retain_inputs))
    return {"forget": forget, "retain": retain, "ref_retain": ref.detach(),
            "forget_mask": forget_inputs["labels"] != -100, "retain_mask": retain_inputs["labels"] != -100}
