"""Reliability: crash and resume, damaged checkpoints, non-finite losses and weights, determinism."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
from helpers import tiny_bert, token_dataset
from safetensors.torch import load_file
from transformers import default_data_collator

from hf_unlearn import UnlearningArguments, UnlearningTrainer, select_forget
from hf_unlearn.trainer.checkpoints import STATE_NAME, last_complete_checkpoint
from hf_unlearn.trainer.persistence import LOCK_NAME, STAGING_NAME

HERE = Path(__file__).parent


def _script(out, mode):
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    return subprocess.run([sys.executable, str(HERE / "crash_script.py"), str(out), mode], env=env,
                          capture_output=True, text=True)


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


def _trainer(out, forget_rows=range(16), callbacks=None, **kw):
    train = token_dataset(48, 0)
    args = UnlearningArguments(str(out), per_device_train_batch_size=8, report_to=[], disable_tqdm=True,
                               logging_steps=1, **{"forget_epochs": 2, **kw})
    forget = [i for i in range(48) if i in forget_rows]
    return UnlearningTrainer(model=tiny_bert(), args=args, forget_dataset=train.select(forget),
                             retain_dataset=train.select([i for i in range(48) if i not in forget]),
                             validation_dataset=token_dataset(24, 1), data_collator=default_data_collator,
                             callbacks=callbacks)


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
    trainer = _trainer(tmp_path, save_strategy="steps", save_steps=2, keep_checkpoints=False)
    trainer.train()
    assert len(list(tmp_path.glob("checkpoint-*"))) == 2  # kept until the final model is safely saved
    trainer.save_model()
    assert not list(tmp_path.glob("checkpoint-*"))
    assert (tmp_path / "model.safetensors").is_file()


def test_nonfinite_loss_steps_are_skipped_and_counted(tmp_path):
    # the ascent: a NaN forget loss reaches its objective (the relabel push only compares it with a target)
    trainer = _trainer(tmp_path, forget_epochs=3, forget_push="ascent")
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


# ------------------------------------------------------------------------- a checkpoint belongs to its job
def _weights(model):
    return [p.detach().clone() for p in model.parameters()]


def test_resume_true_skips_checkpoints_of_another_job(tmp_path, caplog):
    """Issue 16, case 1: job B (other forget rows) in job A's folder must not resume A's checkpoint."""
    _trainer(tmp_path, save_strategy="steps", save_steps=2).train()  # job A: checkpoint-2, checkpoint-4
    b = _trainer(tmp_path, forget_rows=range(16, 32), save_strategy="steps", save_steps=2)
    with pytest.raises(ValueError, match="No complete checkpoint of this job") as caught:
        b.train(resume_from_checkpoint=True)
    assert "2 checkpoint folder(s) skipped" in str(caught.value)
    assert "forget rows" in caplog.text and "checkpoint-4" in caplog.text
    assert b.state.global_step == 0 and b.tau is None  # nothing of A's run was loaded


@pytest.mark.parametrize("change, named", [
    ({"forget_rows": range(8, 24)}, "forget rows"),   # issue 16, case 2: another forget set
    ({"method": "grad_diff"}, "method ('nabla_tau' in the checkpoint, 'grad_diff' now)"),
    ({"seed": 7}, "seed (42 in the checkpoint, 7 now)"),
    ({"learning_rate": 1e-4}, "learning_rate"),
    ({"retain_replay": 2}, "retain_replay (0 in the checkpoint, 2 now)"),
    ({"prior_repair": False}, "prior_repair (True in the checkpoint, False now)"),  # on with the relabel push
    ({"prior_target": "original"}, "prior_target ('retain_shares' in the checkpoint, 'original' now)"),
])
def test_resuming_another_jobs_checkpoint_is_refused_naming_the_difference(tmp_path, change, named):
    _trainer(tmp_path, save_strategy="steps", save_steps=2).train()
    other = _trainer(tmp_path, save_strategy="steps", save_steps=2, **change)
    before = _weights(other.model)
    with pytest.raises(ValueError, match="belongs to another job") as caught:
        other.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    assert named in str(caught.value)
    assert all(torch.equal(a, b) for a, b in zip(before, other.model.parameters()))


def test_same_job_resumes_its_own_checkpoint(tmp_path):
    _trainer(tmp_path, save_strategy="steps", save_steps=2).train()
    again = _trainer(tmp_path, save_strategy="steps", save_steps=2)
    again.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    assert again.state.global_step == 4 and again.tau_history[0]["step"] == 0


# --------------------------------------------------------------- damaged checkpoints: hashes, fall-back
@pytest.mark.parametrize("damage", ["flipped byte", "garbage state"])
def test_damaged_last_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog, damage):
    """Issue 16, cases 6 and 20: a same-size byte flip in the weights, or a garbage unlearning_state.json."""
    _trainer(tmp_path, save_strategy="steps", save_steps=2).train()
    last = tmp_path / "checkpoint-4"
    if damage == "flipped byte":
        weights = last / "model.safetensors"
        data = bytearray(weights.read_bytes())
        data[-10] ^= 0xFF
        weights.write_bytes(bytes(data))
    else:
        (last / STATE_NAME).write_bytes(b"\x00garbage{")
    with pytest.raises(ValueError, match="damaged: model.safetensors is changed" if damage == "flipped byte"
                       else "not a valid unlearning state"):
        _trainer(tmp_path, save_strategy="steps", save_steps=2).train(resume_from_checkpoint=str(last))
    resumed = _trainer(tmp_path, save_strategy="steps", save_steps=2)
    resumed.train(resume_from_checkpoint=True)
    assert "Skipping" in caplog.text and "checkpoint-4" in caplog.text
    assert resumed.state.global_step == 4  # resumed from checkpoint-2, then trained to the end
    assert [h["step"] for h in resumed.tau_history] == [0]


# ------------------------------------------------------------------------------ saves and output_dir
def test_failed_save_leaves_the_previous_model_intact(tmp_path, monkeypatch):
    """Issue 16, case 7: the disk fills up while the new weights are written over an existing model."""
    import errno

    import transformers.modeling_utils as modeling_utils

    first = _trainer(tmp_path, forget_epochs=1)
    first.train()
    first.save_model()
    saved = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert {"model.safetensors", "config.json", "README.md"} <= set(saved)

    def disk_full(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    second = _trainer(tmp_path, forget_rows=range(8, 24), forget_epochs=1, overwrite_output_dir=True)
    second.train()
    monkeypatch.setattr(modeling_utils, "safe_save_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        second.save_model()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == saved
    assert not (tmp_path / STAGING_NAME).exists()


def test_keep_checkpoints_false_keeps_them_when_the_final_save_fails(tmp_path, monkeypatch):
    """Issue 16, case 8."""
    import transformers.modeling_utils as modeling_utils

    trainer = _trainer(tmp_path, save_strategy="steps", save_steps=2, keep_checkpoints=False)
    trainer.train()

    def fail(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(modeling_utils, "safe_save_file", fail)
    with pytest.raises(OSError):
        trainer.save_model()
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert last_complete_checkpoint(str(tmp_path)).endswith("checkpoint-4")


def test_second_concurrent_run_into_the_same_output_dir_is_refused(tmp_path):
    """Issue 16, case 9: while run A trains, run B into the same output_dir is refused and writes nothing."""
    from transformers import TrainerCallback

    outcome = {}

    class StartSecondRun(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1 and not outcome:
                assert (tmp_path / LOCK_NAME).exists()
                second = _trainer(tmp_path, forget_rows=range(16, 32), save_strategy="steps", save_steps=1)
                try:
                    second.train()
                except ValueError as err:
                    outcome["error"] = str(err)
                outcome["checkpoints"] = sorted(p.name for p in tmp_path.glob("checkpoint-*"))

    first = _trainer(tmp_path, save_strategy="steps", save_steps=2, callbacks=[StartSecondRun()])
    first.train()
    assert "is in use by another run" in outcome["error"]
    assert outcome["checkpoints"] == []  # B wrote nothing (A's first checkpoint comes at step 2)
    assert not (tmp_path / LOCK_NAME).exists()  # released at the end of A
    assert last_complete_checkpoint(str(tmp_path), first.job).endswith("checkpoint-4")


def test_overwriting_a_saved_model_needs_overwrite_output_dir(tmp_path):
    """Issue 16, case 9 (second half): a second job into a folder that holds a model; a rerun of the same job may."""
    first = _trainer(tmp_path, forget_epochs=1)
    first.train()
    first.save_model()
    weights = (tmp_path / "model.safetensors").read_bytes()
    second = _trainer(tmp_path, forget_rows=range(8, 24), forget_epochs=1)
    with pytest.raises(ValueError, match="holds a model saved by another job. Pass overwrite_output_dir=True"):
        second.train()
    assert second.state.global_step == 0 and (tmp_path / "model.safetensors").read_bytes() == weights
    rerun = _trainer(tmp_path, forget_epochs=1)  # the same job again (same data, seed, arguments): same weights
    rerun.train()
    rerun.save_model()
    assert (tmp_path / "model.safetensors").read_bytes() == weights
    third = _trainer(tmp_path, forget_rows=range(8, 24), forget_epochs=1, overwrite_output_dir=True)
    third.train()
    third.save_model()
    assert (tmp_path / "model.safetensors").read_bytes() != weights


# ------------------------------------------------------------------------------ issue 31 (API level)
def test_an_edited_tau_in_the_checkpoint_state_is_detected(tmp_path, caplog):
    _trainer(tmp_path, save_strategy="steps", save_steps=2).train()
    state = tmp_path / "checkpoint-4" / STATE_NAME
    content = json.loads(state.read_text())
    content["tau"] *= 2
    state.write_text(json.dumps(content, indent=2))
    with pytest.raises(ValueError, match="damaged: unlearning_state.json is changed"):
        _trainer(tmp_path, save_strategy="steps", save_steps=2).train(resume_from_checkpoint=str(state.parent))
    resumed = _trainer(tmp_path, save_strategy="steps", save_steps=2)
    resumed.train(resume_from_checkpoint=True)  # falls back to checkpoint-2, whose τ is intact
    assert "checkpoint-4" in caplog.text and resumed.tau_history[0]["tau"] == pytest.approx(content["tau"] / 2)


def _rows(dataset):
    return [dict(r) for r in dataset]


def _list_trainer(out, forget, retain, validation, **kw):
    args = UnlearningArguments(str(out), per_device_train_batch_size=8, report_to=[], disable_tqdm=True,
                               forget_epochs=2, **kw)
    return UnlearningTrainer(model=tiny_bert(), args=args, forget_dataset=forget, retain_dataset=retain,
                             validation_dataset=validation, data_collator=default_data_collator)


def test_python_lists_get_the_held_out_check(tmp_path):
    rows = _rows(token_dataset(48, 0))
    with pytest.raises(ValueError, match="validation_dataset is not held out: 16 of its 16 rows are forget rows"):
        _list_trainer(tmp_path, rows[:16], rows[16:], rows[:16])
    with pytest.raises(ValueError, match="retain_dataset holds 2 exact copies of forget rows"):
        _list_trainer(tmp_path, rows[:16], rows[16:] + rows[:2], _rows(token_dataset(24, 1)))
    assert not tmp_path.joinpath("checkpoint-2").exists()


def test_python_lists_carry_the_job_fingerprint(tmp_path):
    rows, validation = _rows(token_dataset(48, 0)), _rows(token_dataset(24, 1))
    _list_trainer(tmp_path, rows[:16], rows[16:], validation, save_strategy="steps", save_steps=2).train()
    other = _list_trainer(tmp_path, rows[16:32], rows[:16] + rows[32:], validation, save_strategy="steps",
                          save_steps=2)
    with pytest.raises(ValueError, match="belongs to another job: forget rows"):
        other.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))


def test_a_retain_copy_with_an_extra_pad_token_is_a_copy(tmp_path):
    data = token_dataset(48, 0)
    padded = data.select([3]).map(lambda r: {"input_ids": r["input_ids"] + [0], "attention_mask": r["attention_mask"]
                                             + [0]})
    retain = datasets.concatenate_datasets([data.select(range(16, 48)), padded.cast(data.features)])
    with pytest.raises(ValueError, match="retain_dataset holds 1 exact copies of forget rows"):
        _list_trainer(tmp_path, data.select(range(16)), retain, token_dataset(24, 1))


@pytest.mark.parametrize("where, token", [(5, -3), (2050, 60)])
def test_token_ids_outside_the_vocabulary_anywhere_are_one_line(tmp_path, where, token):
    data = token_dataset(2100, 0)
    ids = [list(row) for row in data["input_ids"]]
    ids[where][2] = token
    retain = data.remove_columns("input_ids").add_column("input_ids", ids)
    with pytest.raises(ValueError, match=f"retain_dataset: token id {token} is outside the model's vocabulary"):
        _list_trainer(tmp_path, token_dataset(16, 2), retain, token_dataset(24, 1))


def test_multi_label_vectors_of_the_wrong_width_are_one_line(tmp_path):
    def multi(n, width, seed):
        return token_dataset(n, seed).map(lambda r: {"labels": [float(i == r["labels"]) for i in range(width)]})

    args = UnlearningArguments(str(tmp_path), per_device_train_batch_size=8, report_to=[])
    with pytest.raises(ValueError, match="retain_dataset: 32 rows have a multi-label vector of 4 values, the model "
                                         "has 3 labels"):
        UnlearningTrainer(model=tiny_bert(problem_type="multi_label_classification"), args=args,
                          forget_dataset=multi(16, 3, 0), retain_dataset=multi(32, 4, 1),
                          validation_dataset=multi(8, 3, 2), data_collator=default_data_collator)


@pytest.mark.parametrize("name", ["weight_decay", "max_grad_norm", "adam_beta1", "adam_epsilon", "forget_epochs",
                                  "ssd_alpha", "ssd_lambda", "label_smoothing_factor"])
def test_nan_is_refused_for_every_number(tmp_path, name):
    with pytest.raises(ValueError, match=f"{name}=nan is not a finite number"):
        UnlearningArguments(str(tmp_path), **{name: float("nan")})


def test_records_are_written_atomically_everywhere():
    """One helper (`hf_unlearn.io`) writes every record: no module writes JSON or text files by hand."""
    import re

    package = Path(__file__).resolve().parents[1] / "hf_unlearn"
    by_hand = re.compile(r"json\.dump\(|\.write_text\(|open\([^)]*[\"']w[\"']")
    offenders = [str(p.relative_to(package)) for p in package.rglob("*.py")
                 if p.name != "io.py" and by_hand.search(p.read_text())]
    assert offenders == []
