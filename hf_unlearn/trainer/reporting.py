"""Reporting for `UnlearningTrainer`: the audit, the model card and a push that never uploads partial unlearning."""

from __future__ import annotations

import os
from typing import Any

from huggingface_hub import upload_folder

from ..audit import audit_model
from ..audit.report import write_audit_json
from ..data.selection import sample_rows
from ..hub.card import write_model_card
from ..hub.push import push_ignore_patterns


class ReportingMixin:
    """Audit, model card and Hub push for `UnlearningTrainer` (kept apart from the training step).

    Reads these attributes, which `UnlearningTrainer.__init__` sets (with ``transformers.Trainer``'s own ``args``,
    ``model``, ``accelerator``, ``data_collator``, ``state``, and its ``_strip``):
    """

    forget_dataset: Any
    retain_dataset: Any
    alpha0: float
    tau_history: list[dict[str, float]]
    last_audit: Any
    last_comparison: Any
    card_metadata: dict[str, Any]

    def audit(self, test_dataset=None, *, before=None, max_retain: int | None = 500, **kwargs):
        """Audit the model now: forget set vs ``test_dataset`` (default: ``eval_dataset``), retain utility.

        Uses the trainer's datasets and collator, writes ``audit.json`` and plots into ``output_dir``, and keeps the
        report for the model card. ``before`` (an earlier report, e.g. of the original model) adds the before/after
        loss histograms. Only sizes and aggregates are written, never forget-set content.
        """
        test = test_dataset if test_dataset is not None else self.eval_dataset
        if test is None:
            raise ValueError("audit() needs held-out test data: pass test_dataset=... or set eval_dataset.")
        retain = sample_rows(self.retain_dataset, max_retain, self.args.seed)  # the same rows as the job's audit
        forget, test, retain = (self._strip(d, "audit") for d in (self.forget_dataset, test, retain))
        model = self.accelerator.unwrap_model(self.model)
        report = audit_model(model, forget=forget, test=test, retain=retain, data_collator=self.data_collator,
                             batch_size=self.args.per_device_eval_batch_size, seed=self.args.seed, **kwargs)
        self.save_audit(report, before=before)
        return report

    def save_audit(self, report, *, before=None, comparison=None, timings: dict | None = None,
                   extra: dict | None = None, output_dir: str | None = None) -> None:
        """Write ``audit.json`` (report, comparison, timings, τ history, ``extra`` keys; atomically) and PNG plots
        into ``output_dir`` (default: ``args.output_dir``)."""
        self.last_audit, self.last_comparison = report, comparison
        if not self.args.should_save:
            return
        output_dir = output_dir or self.args.output_dir
        content = {"report": report, "method": self.args.method, "tau_history": self.tau_history,
                   "alpha0": self.alpha0, "steps": self.state.global_step}
        if comparison is not None:
            content["comparison"] = comparison
        if timings:
            content["timings"] = timings
        content.update(extra or {})
        write_audit_json(os.path.join(output_dir, "audit.json"), content)
        report.plot(output_dir, before=before)

    def create_model_card(self, language=None, license=None, tags=None, model_name=None, finetuned_from=None,
                          tasks=None, dataset_tags=None, dataset=None, dataset_args=None, **kwargs) -> None:
        """Write ``README.md`` with the hf-unlearn card: tags, arguments, forget-set size, audit, citation."""
        given = {"model_name": model_name, "finetuned_from": finetuned_from, "dataset": dataset, "license": license,
                 "language": language, "tags": tags}
        metadata = {**self.card_metadata, **{k: v for k, v in given.items() if v}}
        write_model_card(self, self.args.output_dir, **metadata)

    def push_to_hub(self, commit_message: str | None = "End of unlearning", blocking: bool = True,
                    token: str | None = None, revision: str | None = None, private: bool | None = None, **kwargs):
        """Upload the final unlearned model, its card and audit; never ``checkpoint-*`` folders (they hold partly
        unlearned weights) unless ``push_checkpoints=True``, nor ``_*`` scratch folders (e.g. a cached original).

        `Trainer.push_to_hub` with its own ignore patterns (``_*``, ``checkpoint-*``) is the model; this override only
        widens them (`hub.push_ignore_patterns`: nested checkpoints, ``last-checkpoint/``, the folders of original
        and retrained models) and lets ``push_checkpoints`` include checkpoints. Intermediate pushes are Trainer's
        own, governed by ``hub_strategy`` (``"end"`` unless ``push_checkpoints``)."""

        self.callback_handler.on_push_begin(self.args, self.state, self.control)
        token = token if token is not None else self.args.hub_token
        if self.hub_model_id is None:
            self.init_hf_repo(token=token, private=private)
        self.save_model(_internal_call=True)  # refuses non-finite weights
        if not self.is_world_process_zero():
            return None
        tags = list(kwargs.pop("tags", None) or [])
        self.create_model_card(tags=tags, **kwargs)
        self._finish_current_push()
        return upload_folder(repo_id=self.hub_model_id, folder_path=self.args.output_dir,
                             commit_message=commit_message, token=token, run_as_future=not blocking,
                             ignore_patterns=push_ignore_patterns(self.args.push_checkpoints),
                             revision=revision or self.args.hub_revision)
