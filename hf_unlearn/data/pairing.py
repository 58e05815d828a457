"""Temporary pairing collator (replaced by data.collators.ForgetRetainCollator)."""

from __future__ import annotations

import torch


class ForgetRetainCollator:
    def __init__(self, base, fused=None):
        self.base = base
        self.fused = fused

    def __call__(self, pairs):
        forget = [p[0] for p in pairs]
        retain = [p[1] for p in pairs]
        if self.fused is not False:
            try:
                if set(forget[0]) == set(retain[0]):
                    batch = self.base(forget + retain)
                    batch["num_forget"] = torch.tensor(len(forget))
                    return batch
            except Exception:
                if self.fused:
                    raise
        return {"forget": self.base(forget), "retain": self.base(retain)}
