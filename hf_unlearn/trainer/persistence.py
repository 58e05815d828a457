"""What `UnlearningTrainer` writes to ``output_dir``, and how it resumes: one run at a time, atomic model saves,
checkpoints that belong to their job.

* A lock file in ``output_dir`` (``fcntl.flock``, released when the process ends, even by SIGKILL) refuses a second
  run into the same folder while one is training or saving; the job pipeline holds it from its start (`job_lock`),
  before its first write.
* ``save_model`` writes the model, processor and card (and the job's records: audit.json, job.json) into a temporary
  folder inside ``output_dir`` and only then moves the files into place (``os.replace``), so a failed save (disk
  full, a crash) leaves the previous model as it was; files of the previous model that the new save does not
  replace (other shards, older records) are removed. A SIGKILL between two moves is finished by the next lock holder
  (`finish_publish`); until then the folder has no ``config.json``, so nothing loads a mix of two saves.
* A model in ``output_dir`` saved by another job is replaced only with ``overwrite_output_dir=True`` (or when
  resuming); a rerun of the same job (``_unlearning_job.json`` beside the model, never pushed) may replace it.
* ``keep_checkpoints=False`` deletes the checkpoints after the final ``save_model`` succeeded, not before.
* Checkpoints carry the job's fingerprint: an explicit resume from another job's checkpoint is refused naming what
  differs; ``resume_from_checkpoint=True`` takes the last intact checkpoint of this job.
"""

from __future__ import annotations

import contextlib
import contextvars
import glob
import json
import logging
import os
import shutil
from typing import Any

import torch
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..hub.card import write_model_card
from ..io import write_json_atomic
from .callbacks import check_finite_weights
from .checkpoints import check_same_job, checkpoint_folders, last_complete_checkpoint, read_state, write_state
from .fingerprint import job_differences
from .one_shot import run_one_shot
from .peft import is_peft_model, merged_copy

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are not guarded against each other
    fcntl = None

logger = logging.getLogger(__name__)

LOCK_NAME = ".hf_unlearn.lock"
STAGING_NAME = ".hf_unlearn-saving"
PUBLISH_NAME = ".hf_unlearn-publish.json"  # in the staging folder: the files to move, written before the first move
JOB_NAME = "_unlearning_job.json"  # the fingerprint of the job that saved the model ("_*" is never pushed)
WEIGHT_PATTERNS = ("model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json",
                   "pytorch_model*.bin", "pytorch_model.bin.index.json", "adapter_model.safetensors",
                   "adapter_model.bin", "adapter_config.json")
#: a job's records beside its model: replaced with it, so a folder's records always describe one run
RECORD_PATTERNS = ("audit.json", "job.json", "loss_histograms.png", "audit_history.png", "_hf_unlearn_salt")


class OutputDirLock:
    """An exclusive advisory lock on ``output_dir/.hf_unlearn.lock``; ``ValueError`` when another run holds it.

    Taking it first finishes a save that a killed run left half-published (`finish_publish`). A folder that cannot be
    made or written (a file, read-only, an empty name) is a one-line ``ValueError`` naming it, before any work."""

    def __init__(self, output_dir: str):
        self.output_dir = output_dir
        self.path = os.path.join(output_dir, LOCK_NAME)
        self.file = None

    def acquire(self) -> None:
        check_output_dir(self.output_dir)
        if fcntl is None:
            return
        try:
            os.makedirs(self.output_dir, exist_ok=True)
            self.file = self._lock()
        except OSError as err:
            raise ValueError(f"output_dir={self.output_dir!r} cannot be written ({err.strerror or err}). Choose a "
                             "writable folder with --output_dir.") from None
        finish_publish(self.output_dir)

    def _lock(self):
        while True:
            file = open(self.path, "a+")
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.close()
                raise ValueError(
                    f"output_dir={self.output_dir!r} is in use by another run (it holds {LOCK_NAME}). "
                    "Use another output_dir, or wait until that run ends."
                ) from None
            try:
                same = os.fstat(file.fileno()).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:  # released and removed between our open and our lock: take a fresh one
                same = False
            if same:
                return file
            file.close()

    def release(self) -> None:
        if self.file is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)
            self.file.close()
            self.file = None


#: output_dirs whose lock the running job (`hf_unlearn.pipeline.job.run_job`) holds: its trainer works under that lock
_JOB_LOCKS: contextvars.ContextVar[frozenset] = contextvars.ContextVar("hf_unlearn_job_locks", default=frozenset())


@contextlib.contextmanager
def job_lock(output_dir: str):
    """Hold ``output_dir``'s lock for a whole job (before its first write); the job's trainer runs under it."""
    lock = OutputDirLock(output_dir)
    lock.acquire()
    token = _JOB_LOCKS.set(_JOB_LOCKS.get() | {os.path.realpath(output_dir)})
    try:
        yield
    finally:
        _JOB_LOCKS.reset(token)
        lock.release()


def check_output_dir(output_dir: str) -> None:
    """``ValueError`` (one line, before any work) when ``output_dir`` is empty, a file, or not writable."""
    if not str(output_dir).strip():
        raise ValueError("output_dir is empty: pass --output_dir FOLDER (where the model and its records go).")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"output_dir={output_dir!r} is a file, not a folder: choose another --output_dir.")
    existing = os.path.abspath(output_dir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(f"output_dir={output_dir!r} cannot be made: {existing!r} is a file. Choose another "
                         "--output_dir.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"output_dir={output_dir!r} is not writable ({existing!r} is read-only for this user). "
                         "Choose a writable --output_dir.")


def holds_model(folder: str) -> bool:
    """True when ``folder`` holds a saved model (config or weight files)."""
    return os.path.isfile(os.path.join(folder, "config.json")) or any(
        glob.glob(os.path.join(folder, pattern)) for pattern in WEIGHT_PATTERNS)


def saved_by_same_job(folder: str, job: dict[str, Any]) -> bool:
    """True when the model in ``folder`` was saved by this very job (same data digests, method and arguments)."""
    try:
        with open(os.path.join(folder, JOB_NAME), encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return False
    known = saved.get("forget_rows") and saved.get("retain_rows") and job.get("forget_rows") and job.get("retain_rows")
    return bool(known) and not job_differences(saved, job)


def publish(staging: str, output_dir: str, records: bool = False) -> None:
    """Move every file of ``staging`` into ``output_dir`` (each move atomic), after removing the weight files of the
    previous model (with ``records``: also its records, `RECORD_PATTERNS`) that the new save does not replace; then
    remove ``staging``.

    What to remove and move is written into ``staging`` first (``PUBLISH_NAME``): a run killed in between leaves a
    staging folder that the next lock holder (`OutputDirLock`: any run, save or ``hf-unlearn audit`` of the folder)
    finishes publishing (`finish_publish`), so the folder never stays a mix of two saves. Until then it has no
    ``config.json`` (removed first, moved in last): nothing loads the mix as a model."""
    new = sorted(os.listdir(staging), key=lambda n: n == "config.json")  # config last: it marks a model folder
    patterns = WEIGHT_PATTERNS + (RECORD_PATTERNS if records else ())
    old = sorted({os.path.basename(p) for pattern in patterns for p in glob.glob(os.path.join(output_dir, pattern))}
                 - set(new))
    if "config.json" in new and os.path.isfile(os.path.join(output_dir, "config.json")):
        old.append("config.json")  # first out, last in: a folder caught between two saves loads as no model at all
    write_json_atomic(os.path.join(staging, PUBLISH_NAME), {"remove": old, "move": new})
    _move_files(staging, output_dir, old, new)


def _move_files(staging: str, output_dir: str, old: list[str], new: list[str]) -> None:
    for name in old:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(output_dir, name))
    for name in new:
        source, target = os.path.join(staging, name), os.path.join(output_dir, name)
        if not os.path.lexists(source):
            continue  # moved before the kill
        if os.path.isdir(source) and os.path.isdir(target):
            shutil.rmtree(target)
        os.replace(source, target)
    shutil.rmtree(staging)


def finish_publish(output_dir: str) -> None:
    """A save interrupted in ``output_dir``: finish publishing it when its staging folder was complete (it lists its
    files), else drop the staging folder (the previous model was not touched yet)."""
    staging = os.path.join(output_dir, STAGING_NAME)
    if not os.path.isdir(staging):
        return
    try:
        with open(os.path.join(staging, PUBLISH_NAME), encoding="utf-8") as f:
            plan = json.load(f)
        old, new = list(plan["remove"]), list(plan["move"])
    except (OSError, ValueError, TypeError, KeyError):
        shutil.rmtree(staging, ignore_errors=True)
        return
    logger.warning("Finishing a save into %s that was interrupted while its files were moved into place.",
                   output_dir)
    _move_files(staging, output_dir, old, new)


class PersistenceMixin:
    """`UnlearningTrainer`'s saving, checkpointing and resuming (see the module docstring).

    What it reads of the trainer, declared here (set by `UnlearningTrainer.__init__`): the job's fingerprint, the
    method, τ and its history, α₀, samples per step, the card metadata, whether the PEFT adapters are fresh, and (for
    one-shot methods) its ``_strip`` (the model's columns) and ``_per_sample`` (per-sample losses); what it keeps
    itself: the lock it holds,
    the records saved with the final model (``extra_records``, set by the job pipeline) and whether to delete the
    checkpoints once that save is published."""

    job: dict[str, Any]
    method: Any
    tau: float | None
    tau_step: int
    tau_history: list[dict[str, float]]
    heldout_losses: Any
    heldout_labels: Any
    heldout_prior: Any
    alpha0: float
    samples_per_step: int
    card_metadata: dict[str, Any]
    _fresh_adapters: bool
    _lock: OutputDirLock | None = None
    extra_records: tuple | list = ()
    _delete_checkpoints_after_save: bool = False

    def unlearning_state(self) -> dict[str, Any]:
        """What a checkpoint needs beyond Trainer's state to resume unlearning exactly, and the job it belongs to."""
        heldout = None if self.heldout_losses is None else self.heldout_losses.tolist()
        classes = None if self.heldout_labels is None else self.heldout_labels.tolist()
        return {"tau": self.tau, "tau_step": self.tau_step, "tau_history": self.tau_history, "heldout_losses": heldout,
                "heldout_labels": classes,
                "heldout_prior": None if self.heldout_prior is None else self.heldout_prior.tolist(),
                "alpha0": self.alpha0, "forget_epochs": self.args.forget_epochs,
                "samples_per_step": self.samples_per_step, "job": self.job}

    def _save_checkpoint(self, model, trial) -> None:
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            write_state(os.path.join(self._get_output_dir(trial=trial), name), self.unlearning_state())

    @contextlib.contextmanager
    def _output_lock(self):
        """Hold ``output_dir``'s lock (main process only; re-entrant within this trainer)."""
        if (not self.args.should_save or self._lock is not None
                or os.path.realpath(self.args.output_dir) in _JOB_LOCKS.get()):
            yield
            return
        self._lock = OutputDirLock(self.args.output_dir)
        self._lock.acquire()
        try:
            yield
        finally:
            self._lock.release()
            self._lock = None

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs):
        """Run the unlearning; ``resume_from_checkpoint`` (a folder, or True for the last intact checkpoint of this
        job in ``output_dir``) also restores τ, its history and α₀. Damaged checkpoints and other jobs' are refused.
        One-shot methods (e.g. ``ssd``) edit the model once instead (`one_shot.run_one_shot`)."""
        output_dir = self.args.output_dir
        if self.method.one_shot is not None and resume_from_checkpoint:
            return self._one_shot(resume_from_checkpoint)  # refuses: a one-shot method has no checkpoints
        with self._output_lock():
            if resume_from_checkpoint is True:
                resume_from_checkpoint = last_complete_checkpoint(output_dir, self.job)
                if resume_from_checkpoint is None:
                    others = len(checkpoint_folders(output_dir))
                    raise ValueError(
                        f"No complete checkpoint of this job in output_dir={output_dir!r} to resume from"
                        + (f" ({others} checkpoint folder(s) skipped: incomplete, damaged or of another job, see "
                           "the warnings)" if others else "") + ". Start without resume_from_checkpoint."
                    )
            if resume_from_checkpoint:
                self._load_unlearning_state(resume_from_checkpoint)
            elif (holds_model(output_dir) and not self.args.overwrite_output_dir
                  and not saved_by_same_job(output_dir, self.job)):
                raise ValueError(
                    f"output_dir={output_dir!r} already holds a model saved by another job. Pass "
                    "overwrite_output_dir=True to replace it, or choose another output_dir."
                )
            if self.method.one_shot is not None:  # no training steps (e.g. ssd): the model is edited once
                output = self._one_shot()
            else:
                output = super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
        self._delete_checkpoints_after_save = not self.args.keep_checkpoints
        return output

    def _one_shot(self, resume_from_checkpoint=None):
        """`one_shot.run_one_shot` with what it needs from this trainer: the model's columns of forget and retain,
        a batch's mean loss, whether the adapters are fresh."""
        return run_one_shot(
            self, forget=self._strip(self.forget_dataset, "forget"), retain=self._strip(self.retain_dataset, "retain"),
            batch_loss=lambda model, batch: self._per_sample(model, self._prepare_inputs(batch))[0].mean(),
            fresh_adapters=self._fresh_adapters, resume_from_checkpoint=resume_from_checkpoint)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save the model (refusing non-finite weights) and, outside checkpoints, its hf-unlearn model card,
        atomically; with ``merge_adapter`` LoRA adapters are merged into a plain model. With
        ``keep_checkpoints=False`` the checkpoints are deleted once this final save succeeded; with ``push_to_hub``
        the saved folder is pushed after that."""
        check_finite_weights(self.accelerator.unwrap_model(self.model))
        output_dir = output_dir or self.args.output_dir
        final = not _internal_call
        if _internal_call and os.path.abspath(output_dir) != os.path.abspath(self.args.output_dir):
            return self._write_model(output_dir, merge=False)  # a checkpoint: complete once its state is written
        staging = os.path.join(output_dir, STAGING_NAME)
        with self._output_lock():
            if self.args.should_save:
                shutil.rmtree(staging, ignore_errors=True)
                os.makedirs(staging)
            try:
                self._write_model(staging, merge=final and self.args.merge_adapter)
                if self.args.should_save:
                    if final:
                        write_model_card(self, staging, **self.card_metadata)
                    write_json_atomic(os.path.join(staging, JOB_NAME), self.job)
                    writers = self.extra_records if final else ()
                    for write in writers:  # the job's records (audit.json, job.json...): one save with the model
                        write(staging)
                    publish(staging, output_dir, records=bool(writers))
            finally:
                if self.args.should_save:
                    shutil.rmtree(staging, ignore_errors=True)
            if final and self._delete_checkpoints_after_save and self.args.should_save:
                for folder in checkpoint_folders(self.args.output_dir):
                    shutil.rmtree(folder, ignore_errors=True)
                self._delete_checkpoints_after_save = False
        if final and self.args.push_to_hub:  # after the files are in place and the lock file is gone
            self.push_to_hub(commit_message="Model save", revision=self.args.hub_revision)

    def _write_model(self, output_dir: str, merge: bool) -> None:
        model = self.accelerator.unwrap_model(self.model)
        if merge and is_peft_model(model):
            if self.args.should_save:
                merged_copy(model).save_pretrained(output_dir, safe_serialization=True)
                if self.processing_class is not None:
                    self.processing_class.save_pretrained(output_dir)
        else:  # _internal_call=True: Trainer would push to the Hub before the files are in place
            super().save_model(output_dir, _internal_call=True)

    def _load_unlearning_state(self, checkpoint: str) -> None:
        state = read_state(checkpoint)
        check_same_job(checkpoint, state, self.job)
        if state["samples_per_step"] != self.samples_per_step:
            raise ValueError(
                f"The checkpoint was written with {state['samples_per_step']} samples per optimizer step, this run "
                f"has {self.samples_per_step}: keep batch size × processes × accumulation the same to resume."
            )
        self.tau, self.tau_step = state["tau"], state["tau_step"]
        self.tau_history = state["tau_history"]
        heldout = state.get("heldout_losses")  # held-out rows' losses, for tau_target="quantiles"
        self.heldout_losses = None if heldout is None else torch.tensor(heldout, dtype=torch.float32)
        classes = state.get("heldout_labels")  # their classes, for tau_target="class_quantiles"
        self.heldout_labels = None if classes is None else torch.tensor(classes, dtype=torch.long)
        prior = state.get("heldout_prior")  # the original's mean prediction there, for prior_repair
        self.heldout_prior = None if prior is None else torch.tensor(prior, dtype=torch.float64)
        self.alpha0 = state["alpha0"]
