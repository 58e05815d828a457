"""Batch collators: causal LM, classification (text or images), and forget/retain fusion."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from transformers import DataCollatorWithPadding, default_data_collator

__all__ = ["CausalLMCollator", "ClassificationCollator", "ForgetRetainCollator", "automatic_fusion"]

Features = Sequence[Mapping[str, Any]]


def _numeric(value: Any) -> bool:
    if isinstance(value, (torch.Tensor, int, float)):
        return True
    if hasattr(value, "dtype") and hasattr(value, "shape"):  # numpy
        return True
    return isinstance(value, (list, tuple)) and (not value or _numeric(value[0]))


def _stack(values: list[Any], dtype: torch.dtype | None = None) -> torch.Tensor:
    out = torch.stack([v if isinstance(v, torch.Tensor) else torch.as_tensor(v) for v in values])
    return out if dtype is None else out.to(dtype)


def _pad(seqs: list[Any], value: int, length: int) -> torch.Tensor:
    out = torch.full((len(seqs), length), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        s = torch.as_tensor(s, dtype=torch.long)
        out[i, : len(s)] = s
    return out


class CausalLMCollator:
    """Right-pad ``input_ids`` (pad id), ``attention_mask`` (0) and ``labels`` (-100).

    The pad id is the tokenizer's pad token, else its EOS token (padding is masked anyway).
    Without ``labels`` in the features, labels are ``input_ids`` with -100 on padding.
    Padding stays here rather than in ``DataCollatorForSeq2Seq``, which needs a tokenizer that has a pad token and
    follows its ``padding_side``: this one works from a bare ``pad_token_id``, falls back to EOS, and always pads
    on the right.
    """

    def __init__(
        self,
        tokenizer: Any = None,
        *,
        pad_token_id: int | None = None,
        label_pad_token_id: int = -100,
        pad_to_multiple_of: int | None = None,
    ) -> None:
        if pad_token_id is None and tokenizer is not None:
            pad_token_id = tokenizer.pad_token_id
            if pad_token_id is None:
                pad_token_id = tokenizer.eos_token_id
        if pad_token_id is None:
            raise ValueError("No pad id: pass pad_token_id=... or a tokenizer with a pad or eos token.")
        self.pad_token_id = int(pad_token_id)
        self.label_pad_token_id = label_pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: Features) -> dict[str, torch.Tensor]:
        lengths = [len(f["input_ids"]) for f in features]
        length = max(lengths)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        ids = [f["input_ids"] for f in features]
        masks = [f.get("attention_mask", [1] * n) for f, n in zip(features, lengths)]
        batch = {"input_ids": _pad(ids, self.pad_token_id, length), "attention_mask": _pad(masks, 0, length)}
        if "labels" in features[0]:
            batch["labels"] = _pad([f["labels"] for f in features], self.label_pad_token_id, length)
        else:
            labels = batch["input_ids"].clone()
            labels[batch["attention_mask"] == 0] = self.label_pad_token_id
            batch["labels"] = labels
        for key in features[0]:
            if key not in batch and _numeric(features[0][key]):
                batch[key] = _stack([f[key] for f in features])
        return batch


class ClassificationCollator:
    """``DataCollatorWithPadding`` on the text inputs, ``default_data_collator`` on the other numeric columns.

    Text inputs (``input_ids``, ``attention_mask``, ``token_type_ids``) are padded by transformers'
    ``DataCollatorWithPadding``; features without them (e.g. ``pixel_values``) are stacked by
    ``default_data_collator``, so it also serves image models. ``labels`` (or ``label``) are stacked here: int labels
    become ``long``, float labels (multi-hot vectors) ``float32``. Non-numeric columns (strings such as ids) are
    left out.
    """

    def __init__(self, tokenizer: Any = None, *, pad_to_multiple_of: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: Features) -> dict[str, torch.Tensor]:
        first = features[0]
        label_key = "labels" if "labels" in first else ("label" if "label" in first else None)
        text_keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in first]
        batch: dict[str, torch.Tensor] = {}
        if text_keys:
            if self.tokenizer is None:
                raise ValueError("ClassificationCollator needs a tokenizer to pad input_ids.")
            pad = DataCollatorWithPadding(self.tokenizer, pad_to_multiple_of=self.pad_to_multiple_of)
            batch.update(pad([{k: f[k] for k in text_keys} for f in features]))
        others = [k for k in first if k not in text_keys and k != label_key and _numeric(first[k])]
        if others:
            batch.update(default_data_collator([{k: f[k] for k in others} for f in features]))
        if label_key is not None:
            labels = _stack([f[label_key] for f in features])
            batch["labels"] = labels.to(torch.float32 if labels.is_floating_point() else torch.long)
        return batch


def automatic_fusion(fuse: bool | None, task: str | None) -> bool | None:
    """Whether forget and retain share one forward pass: ``fuse`` when set, else decided by task.

    Classifiers: one pass over the padded pair when the collator can (their head reads one position, so a single
    forward is as cheap as a plain Trainer step on the same rows). Causal LMs: two passes. Every position carries
    full-vocabulary logits and backward's largest temporaries (the gradients of the logits and of their
    log-softmax) scale with the rows of one pass: two half-size passes peak at ~0.7× the fused memory, pad no
    short row to the other half's longest, and are no slower (``benchmarks/throughput_lm.py``).
    """
    return fuse if fuse is not None or task != "causal_lm" else False


class ForgetRetainCollator:
    """Collate ``(forget_example, retain_example)`` pairs for one unlearning step.

    Fused (default when possible): ``base_collator(forget + retain)`` padded together, the
    first ``num_forget`` rows being the forget half, plus ``"num_forget": tensor(n)``; one
    forward pass serves both halves. Two-pass fallback, when the halves have different keys
    or the base collator fails on them together:
    ``{"forget": base(forget), "retain": base(retain)}``.
    ``fused=True`` forces fusion (ValueError if impossible), ``False`` forces two passes.
    """

    def __init__(self, base_collator: Callable[[list], dict], fused: bool | None = None) -> None:
        self.base_collator = base_collator
        self.fused = fused

    @staticmethod
    def _split(pairs: Sequence[Any]) -> tuple[list, list]:
        forget, retain = [], []
        for pair in pairs:
            if isinstance(pair, Mapping) and "forget" in pair and "retain" in pair:
                f, r = pair["forget"], pair["retain"]
            else:
                f, r = pair
            forget.append(f)
            retain.append(r)
        return forget, retain

    def __call__(self, pairs: Sequence[Any]) -> dict[str, Any]:
        if not pairs:
            raise ValueError("ForgetRetainCollator got an empty batch.")
        forget, retain = self._split(pairs)
        if self.fused is not False:
            keys = {frozenset(x.keys()) for x in forget + retain}
            if len(keys) == 1:
                try:
                    batch = dict(self.base_collator(forget + retain))
                except Exception as err:  # e.g. shapes that cannot be stacked together
                    if self.fused:
                        raise ValueError(
                            f"Cannot collate forget and retain together ({type(err).__name__}). "
                            "Use fused=None or False for two passes."
                        ) from err
                else:
                    batch["num_forget"] = torch.tensor(len(forget))
                    return batch
            elif self.fused:
                raise ValueError(
                    "Cannot fuse forget and retain: their examples have different keys. Preprocess both "
                    "the same way, or use fused=None or False for two passes."
                )
        return {"forget": self.base_collator(forget), "retain": self.base_collator(retain)}
