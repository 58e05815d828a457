"""Scaling: Accelerate configs, mixed precision (bf16 on CPU), and the DeepSpeed reference-model config."""

from __future__ import annotations

import importlib
import math
import sys
import types
from pathlib import Path

import pytest
import torch
import yaml
from accelerate.commands.config.config_args import load_config_from_file
from ddp_script import RecordingCollator, synthetic, tiny_model

from hf_unlearn import UnlearningArguments, UnlearningTrainer
from hf_unlearn.methods import nabla_tau_loss
from hf_unlearn.trainer.deepspeed_reference import hidden_size_of, reference_deepspeed_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "accelerate"
EXPECTED = {  # file → (distributed_type, processes)
    "single_gpu.yaml": ("NO", 1),
    "multi_gpu_ddp.yaml": ("MULTI_GPU", 8),
    "fsdp_full_shard.yaml": ("FSDP", 8),
    "deepspeed_zero2.yaml": ("DEEPSPEED", 8),
    "deepspeed_zero3.yaml": ("DEEPSPEED", 8),
}


# ------------------------------------------------------------------------------------ Accelerate configs
def test_every_config_is_tested_and_documented():
    assert {p.name for p in CONFIGS.glob("*.yaml")} == set(EXPECTED)
    doc = (ROOT / "docs" / "scaling.md").read_text()
    for name in EXPECTED:
        assert f"--config_file configs/accelerate/{name}" in doc, f"docs/scaling.md has no launch line for {name}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_accelerate_config_loads(name):
    config = load_config_from_file(str(CONFIGS / name))  # accelerate's own loader rejects unknown keys
    raw = yaml.safe_load((CONFIGS / name).read_text())
    distributed_type, processes = EXPECTED[name]
    assert str(config.distributed_type).split(".")[-1] == distributed_type
    assert config.num_processes == processes
    assert config.mixed_precision in ("no", "fp16", "bf16")
    assert "mixed_precision" in raw
    if distributed_type == "FSDP":
        fsdp = raw["fsdp_config"]
        assert fsdp["fsdp_version"] == 2  # the FSDP2 path tests/test_distributed.py runs
        assert fsdp["fsdp_reshard_after_forward"] is True  # full shard
        assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
        assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"  # save_model writes an ordinary checkpoint
    if distributed_type == "DEEPSPEED":
        ds = raw["deepspeed_config"]
        assert ds["zero_stage"] == int(name[-6])
        # batch size, accumulation and clipping come from UnlearningArguments ("auto"), never from the YAML
        assert not {"gradient_accumulation_steps", "gradient_clipping"} & set(ds)
        assert ds["zero3_init_flag"] is (ds["zero_stage"] == 3)


# ------------------------------------------------------------------------------------ mixed precision
def test_nabla_tau_objective_is_fp32_for_bf16_losses():
    g = torch.Generator().manual_seed(0)
    forget32 = (torch.rand(16, generator=g) * 2).requires_grad_()
    retain32 = torch.rand(16, generator=g) * 3
    forget16 = forget32.detach().bfloat16().requires_grad_()
    loss16 = nabla_tau_loss(forget16, retain32.bfloat16(), torch.tensor(2.5, dtype=torch.bfloat16), 0.5)
    assert loss16.dtype == torch.float32
    reference = nabla_tau_loss(forget16.detach().float(), retain32.bfloat16().float(), 2.5, 0.5)
    assert loss16.item() == pytest.approx(reference.item(), rel=1e-6)  # the bf16 values, but fp32 arithmetic
    loss16.backward()
    assert forget16.grad.dtype == torch.bfloat16 and torch.isfinite(forget16.grad).all()


def test_bf16_unlearning_on_cpu_logs_finite_tau_and_gap(tmp_path):
    torch.manual_seed(0)
    args = UnlearningArguments(
        output_dir=str(tmp_path), bf16=True, use_cpu=True, report_to=[], disable_tqdm=True, logging_steps=1,
        per_device_train_batch_size=4, max_steps=4, tau_refresh_epochs=1, remove_unused_columns=False, seed=0,
    )
    trainer = UnlearningTrainer(model=tiny_model(), args=args, forget_dataset=synthetic(8, 0, 1),
                                retain_dataset=synthetic(24, 100, 2), validation_dataset=synthetic(12, 200, 3),
                                data_collator=RecordingCollator())
    assert trainer.accelerator.mixed_precision == "bf16"
    trainer.train()
    logs = [h for h in trainer.state.log_history if "tau" in h]
    assert len(logs) == 4
    for key in ("tau", "forget_gap", "forget_loss", "retain_loss", "loss"):
        assert all(math.isfinite(h[key]) for h in logs), key
    assert len(trainer.tau_history) == 2  # refreshed after the first forget-epoch (2 steps)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # autocast, fp32 master weights


# ------------------------------------------------------------------------------------ DeepSpeed reference
ZERO3 = {
    "train_micro_batch_size_per_gpu": 8, "gradient_accumulation_steps": 2, "train_batch_size": "auto",
    "gradient_clipping": 1.0, "optimizer": {"type": "AdamW", "params": {"lr": "auto"}},
    "scheduler": {"type": "WarmupLR", "params": {}}, "bf16": {"enabled": "auto"}, "fp16": {"enabled": False},
    "zero_optimization": {
        "stage": 3, "offload_optimizer": {"device": "cpu"}, "offload_param": {"device": "none"},
        "reduce_bucket_size": "auto", "stage3_prefetch_bucket_size": "auto",
        "stage3_param_persistence_threshold": 1000, "stage3_gather_16bit_weights_on_model_save": True,
    },
}


def test_zero3_reference_stays_sharded_and_inference_only():
    config = reference_deepspeed_config(ZERO3, hidden_size=384, mixed_precision="bf16")
    zero = config["zero_optimization"]
    assert zero["stage"] == 3
    assert zero["reduce_bucket_size"] == 384 * 384
    assert zero["stage3_prefetch_bucket_size"] == int(0.9 * 384 * 384)
    assert zero["stage3_param_persistence_threshold"] == 1000  # the user's value is kept
    assert zero["offload_param"] == {"device": "none"} and "offload_optimizer" not in zero
    for key in ("optimizer", "scheduler", "gradient_clipping", "gradient_accumulation_steps", "train_batch_size"):
        assert key not in config
    assert config["bf16"] == {"enabled": True} and config["fp16"] == {"enabled": False}
    assert config["train_micro_batch_size_per_gpu"] == 8
    assert ZERO3["zero_optimization"]["reduce_bucket_size"] == "auto"  # input untouched


def test_zero3_without_hidden_size_drops_auto_buckets():
    zero = reference_deepspeed_config(ZERO3)["zero_optimization"]
    assert "reduce_bucket_size" not in zero and "stage3_prefetch_bucket_size" not in zero
    assert not _autos(reference_deepspeed_config(ZERO3))


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_zero12_reference_is_replicated_with_stage0(stage):
    train = {"train_micro_batch_size_per_gpu": "auto", "fp16": {"enabled": "auto", "loss_scale": 0},
             "zero_optimization": {"stage": stage, "offload_optimizer": {"device": "cpu"}, "overlap_comm": True}}
    config = reference_deepspeed_config(train, hidden_size=64, mixed_precision="fp16")
    assert config["zero_optimization"] == {"stage": 0}
    assert config["fp16"] == {"enabled": True, "loss_scale": 0}
    assert config["train_micro_batch_size_per_gpu"] == 1
    assert not _autos(config)


def test_hidden_size_of():
    assert hidden_size_of(tiny_model()) == 32
    assert hidden_size_of(types.SimpleNamespace(config=types.SimpleNamespace(hidden_sizes=[64, 128, 96]))) == 128
    assert hidden_size_of(torch.nn.Linear(2, 2)) is None


def test_prepare_deepspeed_reference_uses_the_derived_config(monkeypatch):
    calls = {}

    class Engine:
        def eval(self):
            calls["eval"] = True
            return self

    def initialize(model=None, config=None):
        calls.update(model=model, config=config)
        return Engine(), None, None, None

    monkeypatch.setitem(sys.modules, "deepspeed", types.SimpleNamespace(initialize=initialize))
    from hf_unlearn.trainer.deepspeed_reference import prepare_deepspeed_reference

    plugin = types.SimpleNamespace(deepspeed_config=ZERO3)
    accelerator = types.SimpleNamespace(state=types.SimpleNamespace(deepspeed_plugin=plugin), mixed_precision="bf16")
    model = tiny_model()
    engine = prepare_deepspeed_reference(model, accelerator)
    assert isinstance(engine, Engine) and calls["eval"] and calls["model"] is model
    assert calls["config"] == reference_deepspeed_config(ZERO3, hidden_size=32, mixed_precision="bf16")


def test_deepspeed_reference_does_not_import_deepspeed_at_import_time(monkeypatch):
    monkeypatch.setitem(sys.modules, "deepspeed", None)  # any `import deepspeed` now raises ImportError
    module = importlib.reload(importlib.import_module("hf_unlearn.trainer.deepspeed_reference"))
    with pytest.raises(ImportError, match="pip install deepspeed"):
        module.prepare_deepspeed_reference(tiny_model(), types.SimpleNamespace())


def _autos(config) -> list[str]:
    if isinstance(config, dict):
        return [k for k, v in config.items() if v == "auto"] + [a for v in config.values() for a in _autos(v)]
    return []


def test_fsdp_config_builds_accelerates_fsdp2_plugin(monkeypatch):
    """`accelerate launch --config_file fsdp_full_shard.yaml` → the environment Accelerate's launcher exports → the
    FSDP plugin the Accelerator builds: FSDP2, full shard, one unit per transformer block."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(CONFIGS / "fsdp_full_shard.yaml"), "x.py"])
    env = prepare_multi_gpu_env(_validate_launch_command(args)[0])
    for key, value in env.items():
        if key.startswith(("FSDP_", "ACCELERATE_")):
            monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.auto_wrap_policy.__name__ == "transformer_auto_wrap_policy"
    assert str(plugin.state_dict_type).endswith("FULL_STATE_DICT")


def test_every_zero3_check_reads_the_arguments_plugin(tmp_path):
    """One helper (`hf_unlearn._torch.zero3`) answers for the reference model, the prior repair, the replay and the
    automatic choices: the plugin on the training arguments, which the Trainer's accelerator runs with."""
    from types import SimpleNamespace

    from hf_unlearn._torch import zero3

    args = UnlearningArguments(str(tmp_path), report_to=[])
    assert args.deepspeed_plugin is None and not zero3(args)
    args.deepspeed_plugin = SimpleNamespace(zero_stage=2)
    assert not zero3(args)
    args.deepspeed_plugin.zero_stage = 3
    assert zero3(args)
    model = tiny_model()
    trainer = SimpleNamespace(args=SimpleNamespace(method="npo", deepspeed_plugin=args.deepspeed_plugin),
                              _fresh_adapters=False, is_deepspeed_enabled=True,
                              accelerator=SimpleNamespace(unwrap_model=lambda m: m), model=model)
    with pytest.raises(ValueError, match="method='npo' needs a frozen reference model; under DeepSpeed ZeRO-3"):
        UnlearningTrainer._build_reference(trainer, None)
