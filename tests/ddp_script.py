"""A tiny ∇τ unlearning job for tests/test_distributed.py; run under ``torchrun`` or as one plain process.

Each rank writes ``<out>/<job>_rank<r>.json`` (the sample ids it collated at each step, the α and τ it used,
its τ history, the τ recomputed directly over the full validation set, and the final forget/retain losses) and
``<out>/<job>_rank<r>.pt`` (the final weights, flattened). Accelerate reads the rank from torchrun's env vars.

    torchrun --nproc_per_node 2 tests/ddp_script.py --out DIR --batch 4    # 2 ranks × 4 pairs per step
    python tests/ddp_script.py --out DIR --batch 8                         # 1 process × 8 pairs per step
    torchrun --nproc_per_node 2 tests/ddp_script.py --out DIR --batch 4 --fsdp   # FSDP2 through Accelerate
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import datasets
import torch
from transformers import BertConfig, BertForSequenceClassification

from hf_unlearn import UnlearningArguments, UnlearningTrainer

# 37 validation rows: not a multiple of ranks × eval batch, so gather_for_metrics must drop the padding
N_FORGET, N_RETAIN, N_VALIDATION = 16, 48, 37
NUM_LABELS, VOCAB = 4, 64
# uid ranges tell the halves apart in what a collator sees
FORGET_UID, RETAIN_UID, VALIDATION_UID = 0, 10_000, 20_000
JOBS = {
    # name: (alpha, alpha_schedule); "retain_only" (α = 0) is linear in the batch mean: DDP must match exactly
    "nabla_tau": (0.5, "linear"),
    "retain_only": (0.0, "constant"),
    # ∇τ with the prior repair (`prior_repair=True`): the output bias shifted after the run, on every rank alike; and
    # with `retain_replay=2`: one replay pool, read on the main process, on every rank
    "prior_repair": (0.5, "linear"),
}


def tiny_model(seed: int = 0) -> BertForSequenceClassification:
    """A 2-layer BERT without dropout (so ranks and runs differ only by the batch split)."""
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32, num_labels=NUM_LABELS,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertForSequenceClassification(config)


def synthetic(n: int, uid_start: int, seed: int) -> datasets.Dataset:
    """Random token sequences of varying length (so padding differs per batch) with random labels."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(4, 13, (n,), generator=g).tolist()
    ids = [torch.randint(1, VOCAB, (length,), generator=g).tolist() for length in lengths]
    return datasets.Dataset.from_dict({
        "input_ids": ids,
        "attention_mask": [[1] * len(x) for x in ids],
        "labels": torch.randint(0, NUM_LABELS, (n,), generator=g).tolist(),
        "uid": list(range(uid_start, uid_start + n)),
    })


class RecordingCollator:
    """Pads a list of rows and records their ``uid`` (per call) before dropping it."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        self.calls.append([int(r["uid"]) for r in rows])
        width = max(len(r["input_ids"]) for r in rows)
        pad = [width - len(r["input_ids"]) for r in rows]
        return {
            "input_ids": torch.tensor([r["input_ids"] + [0] * p for r, p in zip(rows, pad)]),
            "attention_mask": torch.tensor([r["attention_mask"] + [0] * p for r, p in zip(rows, pad)]),
            "labels": torch.tensor([r["labels"] for r in rows]),
        }


class RecordingTrainer(UnlearningTrainer):
    """Records the α and τ each training micro-batch used on this rank."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.used: list[dict[str, float]] = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training and "num_forget" in inputs:
            self.used.append({"step": self.state.global_step, "alpha": self.current_alpha(), "tau": self.tau})
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


# Accelerate's FSDP plugin, FSDP2 (torch.distributed.fsdp.fully_shard), one unit per BertLayer, full-shard
FSDP_ARGS = {"fsdp": "full_shard", "fsdp_config": {"version": 2, "transformer_layer_cls_to_wrap": ["BertLayer"],
                                                   "state_dict_type": "FULL_STATE_DICT"},
             "accelerator_config": {"use_configured_state": True}}


def route_accelerate_to_fsdp() -> None:
    """Accelerate only switches to FSDP from a GPU-like multi-process state (``AcceleratorState`` ignores the FSDP
    plugin under ``MULTI_CPU``, silently: the run would be plain gloo DDP). Mark the shared gloo process state
    ``MULTI_GPU`` so Accelerate takes its FSDP2 path (``fully_shard`` on CPU tensors); the device stays CPU."""
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    state = PartialState(cpu=True)
    if state.distributed_type == DistributedType.MULTI_CPU:
        state.distributed_type = DistributedType.MULTI_GPU


def full_model(trainer: UnlearningTrainer) -> torch.nn.Module:
    """The unsharded model after an FSDP2 run, on every rank: each DTensor shard all-gathered into a fresh copy."""
    state = {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in trainer.model.state_dict().items()}
    model = tiny_model()
    model.load_state_dict({k: v.detach().cpu() for k, v in state.items()})
    return model


def memorize(model: torch.nn.Module, train: datasets.Dataset, steps: int = 60) -> None:
    """Overfit the training rows first, so the forget loss starts well below τ (as for a real trained model)."""
    collator = RecordingCollator()
    batch = collator([train[i] for i in range(len(train))])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()


@torch.no_grad()
def mean_prediction(model: torch.nn.Module, dataset: datasets.Dataset) -> list[float]:
    """The mean predicted class distribution over a whole dataset (float64), in eval mode."""
    was_training = model.training
    model.eval()
    batch = RecordingCollator()([dataset[i] for i in range(len(dataset))])
    batch.pop("labels")
    probs = torch.softmax(model(**batch).logits.double(), dim=-1).mean(0)
    model.train(was_training)
    return probs.tolist()


@torch.no_grad()
def mean_loss(model: torch.nn.Module, dataset: datasets.Dataset) -> float:
    """Mean per-sample cross-entropy over a whole dataset (float64), in eval mode."""
    was_training = model.training
    model.eval()
    batch = RecordingCollator()([dataset[i] for i in range(len(dataset))])
    labels = batch.pop("labels")
    losses = torch.nn.functional.cross_entropy(model(**batch).logits.float(), labels, reduction="none")
    model.train(was_training)
    return float(losses.double().mean())


def run_job(name: str, batch: int, steps: int, out: str, fsdp: bool = False) -> None:
    forget, retain = synthetic(N_FORGET, FORGET_UID, 1), synthetic(N_RETAIN, RETAIN_UID, 2)
    validation = synthetic(N_VALIDATION, VALIDATION_UID, 3)
    model = tiny_model()
    memorize(model, datasets.concatenate_datasets([forget, retain]))
    tau_reference = mean_loss(model, validation)
    alpha, schedule = JOBS[name]
    if fsdp:
        route_accelerate_to_fsdp()
    args = UnlearningArguments(
        output_dir=os.path.join(out, f"trainer_{name}"), use_cpu=True, report_to=[],
        per_device_train_batch_size=batch, per_device_eval_batch_size=4, max_steps=steps, learning_rate=1e-3,
        warmup_steps=0, alpha=alpha, alpha_schedule=schedule, tau_refresh_epochs=1, logging_steps=1, seed=0,
        remove_unused_columns=False, disable_tqdm=True, save_strategy="no", prior_repair=name == "prior_repair",
        retain_replay=2 if name == "prior_repair" else 0,
        **(FSDP_ARGS if fsdp else {}),
    )
    collator = RecordingCollator()
    trainer = RecordingTrainer(model=model, args=args, forget_dataset=forget, retain_dataset=retain,
                               validation_dataset=validation, data_collator=collator)
    trainer.train()
    rank = trainer.args.process_index
    final = full_model(trainer) if fsdp else trainer.accelerator.unwrap_model(trainer.model)
    train_calls = [c for c in collator.calls if c and c[0] < VALIDATION_UID]
    record = {
        "world_size": trainer.args.world_size,
        "distributed_type": str(trainer.accelerator.distributed_type),
        "fsdp2_modules": sum(type(m).__name__.startswith("FSDP") for m in trainer.model.modules()),
        "local_param_numel": sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel()
                                 for p in trainer.model.parameters()),
        "steps": [{"forget": c[: len(c) // 2], "retain": c[len(c) // 2:]} for c in train_calls[:steps]],
        "used": trainer.used,
        "tau_history": trainer.tau_history,
        "tau_reference": tau_reference,
        "final_forget_loss": mean_loss(final, forget),
        "final_retain_loss": mean_loss(final, retain),
        "logs": [h for h in trainer.state.log_history if "loss" in h],
        "prior": None if trainer.heldout_prior is None else trainer.heldout_prior.tolist(),
        "prior_shift": trainer.prior_shift,
        "retain_pool": trainer.retain_pool,
        "mean_prediction": mean_prediction(final, validation),
    }
    with open(os.path.join(out, f"{name}_rank{rank}.json"), "w") as f:
        json.dump(record, f)
    weights = torch.cat([p.detach().flatten() for p in final.parameters()])
    torch.save(weights, os.path.join(out, f"{name}_rank{rank}.pt"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch", type=int, required=True, help="per-device pairs per step")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--jobs", nargs="+", default=list(JOBS), choices=list(JOBS))
    parser.add_argument("--fsdp", action="store_true", help="shard with Accelerate's FSDP plugin (FSDP2)")
    cli = parser.parse_args()
    torch.set_num_threads(1)  # same reduction order in the 1- and 2-process runs
    os.makedirs(cli.out, exist_ok=True)
    for name in cli.jobs:
        run_job(name, cli.batch, cli.steps, cli.out, cli.fsdp)


if __name__ == "__main__":
    main()
