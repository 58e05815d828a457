"""Reliability: crash and resume, damaged checkpoints, non-finite losses and weights, determinism."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import tiny_bert, token_dataset
from safetensors.torch import load_file
from transformers import default_data_collator

from hf_unlearn import UnlearningArguments, UnlearningTrainer, select_forget
from hf_unlearn.checkpoints import STATE_NAME, last_complete_checkpoint

HERE = Path(__file__).parent


def _script(out, mode):
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    return subprocess.run([sys.executable, str(HERE / "crash_script.py"), str(out), mode], env=env,
                          capture_output=True, text=True, timeout=300)


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    full = _script(tmp_path / "full", "full")
    assert full.returncode == 0, full.stderr[-2000:]
    crashed = _script(tmp_path / "run", "crash")
    assert crashed.returncode == -signal.SIGKILL
    assert not (tmp_path / "run" / "final.safetensors").exists()
    assert last_complete_checkpoint(str(tmp_path / "run")).endswith("checkpoint-4")
    resumed = _script(tmp_path / "run", "resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = load_file(tmp_path / "full" / "final.safetensors"), load_file(tmp_path / "run" / "final.safetensors")
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name
    # τ sequence (refreshed every forget-epoch) identical, including the refreshes after the crash
    assert (tmp_path / "full" / "tau.txt").read_text() == (tmp_path / "run" / "tau.txt").read_text()


def _trainer(out, **kw):
    train = token_dataset(48, 0)
    args = UnlearningArguments(str(out), per_device_train_batch_size=8, report_to=[], disable_tqdm=True,
                               logging_steps=1, **{"forget_epochs": 2, **kw})
    return UnlearningTrainer(model=tiny_bert(), args=args, forget_dataset=train.select(range(16)),
                             retain_dataset=train.select(range(16, 48)), validation_dataset=token_dataset(24, 1),
                             data_collator=default_data_collator)


def test_half_written_checkpoint_is_never_picked_up(tmp_path):
    _trainer(tmp_path, save_strategy="steps", save_steps=2).train()
    last = tmp_path / "checkpoint-4"
    (last / STATE_NAME).unlink()  # as if killed while saving step 4
    assert last_complete_checkpoint(str(tmp_path)).endswith("checkpoint-2")
    with pytest.raises(FileNotFoundError, match="not a complete UnlearningTrainer checkpoint"):
        _trainer(tmp_path, save_strategy="steps", save_steps=2).train(resume_from_checkpoint=str(last))


def test_truncated_checkpoint_is_refused(tmp_path):
    _trainer(tmp_path, save_strategy="steps", save_steps=2).train()
    weights = tmp_path / "checkpoint-2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="damaged: model.safetensors"):
        _trainer(tmp_path, save_strategy="steps", save_steps=2).train(
            resume_from_checkpoint=str(tmp_path / "checkpoint-2"))


def test_keep_checkpoints_false_deletes_partial_unlearning_weights(tmp_path):
    _trainer(tmp_path, save_strategy="steps", save_steps=2, keep_checkpoints=False).train()
    assert not list(tmp_path.glob("checkpoint-*"))


def test_nonfinite_loss_steps_are_skipped_and_counted(tmp_path):
    trainer = _trainer(tmp_path, forget_epochs=3)
    original = trainer.loss_fn
    calls = {"n": 0}

    def sometimes_nan(logits, labels):  # NaN in the 2nd and 3rd training forward passes (not in τ's)
        losses = original(logits, labels)
        if not torch.is_grad_enabled():
            return losses
        calls["n"] += 1
        return losses * float("nan") if calls["n"] in (2, 3) else losses

    trainer.loss_fn = sometimes_nan
    trainer.train()
    logs = [log for log in trainer.state.log_history if "nonfinite_steps" in log]
    assert logs[-1]["nonfinite_steps"] == 2
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_too_many_nonfinite_steps_stop_without_saving(tmp_path):
    trainer = _trainer(tmp_path / "out", forget_epochs=3, max_nonfinite_steps=2)
    original = trainer.loss_fn
    trainer.loss_fn = lambda logits, labels: original(logits, labels) * (float("nan") if torch.is_grad_enabled() else 1)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    with pytest.raises(RuntimeError, match="2 optimizer steps in a row had a non-finite"):
        trainer.train()
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_model_with_nonfinite_weights_is_never_saved(tmp_path):
    trainer = _trainer(tmp_path / "out")
    with torch.no_grad():
        next(trainer.model.parameters())[0] = float("inf")
    with pytest.raises(ValueError, match="NaN/inf values: refusing to save"):
        trainer.save_model()
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_same_seed_same_split_tau_sequence_and_weights(tmp_path):
    data = token_dataset(64, 0)
    assert select_forget(data, fraction=0.25, seed=5)[0]["input_ids"] == \
        select_forget(data, fraction=0.25, seed=5)[0]["input_ids"]
    runs = []
    for name in ("a", "b"):
        trainer = _trainer(tmp_path / name, forget_epochs=4, tau_refresh_epochs=1)
        trainer.train()
        runs.append(trainer)
    assert [h["tau"] for h in runs[0].tau_history] == [h["tau"] for h in runs[1].tau_history]
    for a, b in zip(runs[0].model.parameters(), runs[1].model.parameters()):
        assert torch.equal(a, b)


def test_output_dir_untouched_by_failed_setup(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError):
        _trainer(out, alpha=2.0)
    assert not out.exists()
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_nonfinite_tau_is_a_clear_error(tmp_path):
    trainer = _trainer(tmp_path / "out")
    trainer.loss_fn = lambda logits, labels: logits.sum(-1) * float("inf")
    with pytest.raises(ValueError, match="τ is not finite"):
        trainer.train()
