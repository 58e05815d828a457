"""YAML job configs (flat or sectioned) with command-line overrides, parsed into
`hf_unlearn.pipeline.job.JobArguments` + `UnlearningArguments` by one `HfArgumentParser`; user errors raise `CLIError`
(one line in the CLI and the scripts).
"""

from __future__ import annotations

import argparse
import difflib
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser

from ..data import read_text_file
from ..trainer.arguments import UnlearningArguments
from .data import SELECTORS
from .job import JobArguments, apply_quick

SECTIONS = ("job", "model", "data", "forget", "original", "unlearning", "training", "audit", "card")


class CLIError(Exception):
    """A user error: printed as one line (no traceback) by ``hf-unlearn``."""


class ArgParser(HfArgumentParser):
    """HfArgumentParser whose errors raise `CLIError` (one line) instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CLIError(message)


def _yaml_value(text: str) -> Any:
    return yaml.safe_load(text)


def job_parser(prog: str, description: str) -> ArgParser:
    """The parser of a job: ``JobArguments`` + ``UnlearningArguments`` (mapping-valued options take YAML/JSON)."""
    parser = ArgParser((JobArguments, UnlearningArguments), prog=prog, description=description,
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for action in parser._actions:
        if action.type is dict:
            action.type = _yaml_value
    return parser


def valid_keys() -> tuple[list[str], list[str]]:
    """(job keys, unlearning/training keys) a config may set."""
    return ([f.name for f in fields(JobArguments)], [f.name for f in fields(UnlearningArguments) if f.init])


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key set twice in one mapping (instead of keeping the last)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise CLIError(f"'{key}' is set twice in '{self.name}' (lines {seen[key]} and "
                               f"{key_node.start_mark.line + 1}); keep one.")
            if isinstance(key, (str, int, float, bool)):
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML job config as a flat ``{field: value}``; sections (``model:``, ``unlearning:``, ...) are flattened."""
    p = Path(path)
    text = read_text_file(p, "Config file", "Pass the path of a YAML job config.")
    try:
        loader = _UniqueKeyLoader(text)
        loader.name = str(p)
        try:
            raw = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise CLIError(f"Malformed YAML in '{p}' at {where}: {problem}.") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise CLIError(f"'{p}' must hold a mapping of option: value, not a {type(raw).__name__}.")
    job_keys, unlearning_keys = valid_keys()
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if key in SECTIONS and key not in job_keys + unlearning_keys and not isinstance(value, dict):
            raise CLIError(f"Section '{key}' in '{p}' must be a mapping of option: value (indented lines below "
                           f"'{key}:'), not a {type(value).__name__}.")
        items = value.items() if key in SECTIONS and isinstance(value, dict) else [(key, value)]
        for k, v in items:
            if k in flat:
                raise CLIError(f"'{k}' is set twice in '{p}'; keep one.")
            flat[str(k)] = v
    for key in flat:
        if key not in job_keys and key not in unlearning_keys:
            raise CLIError(unknown_key_message(key, f"config '{p}'"))
    return flat


def unknown_key_message(key: str, where: str) -> str:
    job_keys, unlearning_keys = valid_keys()
    close = difflib.get_close_matches(key, job_keys + unlearning_keys, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    own = [f.name for f in fields(UnlearningArguments) if f.init and f.name in UnlearningArguments.__annotations__]
    return (f"Unknown key '{key}' in {where}.{hint} Valid keys: job: {', '.join(job_keys)}; unlearning: "
            f"{', '.join(own)}; and every TrainingArguments field (see --help). Sections: {', '.join(SECTIONS)}.")


def parse_job(parser: ArgParser, config: dict[str, Any], argv: list[str]) -> tuple[JobArguments, UnlearningArguments]:
    """Config values as defaults, ``argv`` (``--key value``) on top; unknown options raise `CLIError`."""
    parser.set_defaults(**config)
    *outputs, rest = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    job, args = outputs[0], outputs[1]  # a third output holds positionals (the config path)
    if rest:
        option = next((r for r in rest if r.startswith("--")), rest[0])
        raise CLIError(unknown_key_message(option.lstrip("-").split("=")[0], "the command line"))
    return job, args


def load_job(config: str | os.PathLike | None, argv: list[str], parser: ArgParser | None = None,
             **defaults: Any) -> tuple[JobArguments, UnlearningArguments]:
    """A job from a YAML config (its values as defaults) and ``argv`` on top; ``defaults`` sit below the config;
    a forget selector in ``argv`` replaces the config's; ``--quick`` applied."""
    parser = parser or job_parser("hf-unlearn", "")
    parser.set_defaults(**defaults)
    values = read_config(config) if config else {}
    given = {a.lstrip("-").split("=")[0] for a in argv if a.startswith("--")} & set(SELECTORS)
    if given:  # a forget selector on the command line replaces the config's (e.g. forget_classes for its fraction)
        values = {k: v for k, v in values.items() if k not in SELECTORS or k in given}
    job, args = parse_job(parser, values, argv)
    apply_quick(job, argv)
    return job, args
