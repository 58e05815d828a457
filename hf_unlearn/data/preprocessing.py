"""Turn standard-schema datasets into model inputs, one function per task.

Outputs keep only model inputs (``input_ids``, ``attention_mask``, ``token_type_ids``,
``pixel_values``) and ``labels``, plus any ``keep_columns`` asked for. Sequences are not
padded here; the collators pad each batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datasets import Dataset, DatasetDict, List, Value

from .checks import require_columns
from .selection import _is_string_column
from .selection import label_names as _label_names

__all__ = ["QA_TEMPLATE", "preprocess_images", "tokenize_classification", "tokenize_qa"]

#: Default prompt for question answering; ``{question}`` is replaced by the question. The space
#: after "Answer:" is added to the answer (``answer_prefix``), see :func:`tokenize_qa`.
QA_TEMPLATE = "Question: {question}\nAnswer:"


def _drop(dataset: Dataset, keep: Sequence[str]) -> list[str]:
    return [c for c in dataset.column_names if c not in keep]


def _string_label_ids(dataset: Dataset, label_column: str, label_names: Sequence[str] | None) -> dict[str, int]:
    """String label -> class id: its index in ``label_names`` (default: the sorted names); every value must have one."""
    names = list(label_names) if label_names is not None else _label_names(dataset, label_column)
    to_id = {name: i for i, name in enumerate(names)}
    unknown = sorted({str(v) for v in dataset[label_column]} - set(to_id))
    if unknown:
        raise ValueError(f"{len(unknown)} label value(s) of '{label_column}' are not in label_names "
                         f"({len(names)} names): pass label_names that cover every split.")
    return to_id


def _multi_hot(ids: Sequence[Any], num_labels: int) -> list[float]:
    """A float multi-hot vector of length ``num_labels``; ``ValueError`` for an id outside it."""
    row = [0.0] * num_labels
    for i in ids:
        if not 0 <= int(i) < num_labels:
            raise ValueError(f"Label id {i} is outside 0..{num_labels - 1}; check num_labels.")
        row[int(i)] = 1.0
    return row


def tokenize_classification(
    dataset: Dataset | DatasetDict,
    tokenizer: Any,
    *,
    text_column: str = "text",
    label_column: str | None = None,
    num_labels: int | None = None,
    multi_label: bool | None = None,
    max_length: int = 128,
    keep_columns: Sequence[str] = (),
    label_names: Sequence[str] | None = None,
) -> Dataset | DatasetDict:
    """Tokenize ``text_column`` and build ``labels`` for sequence classification (a ``DatasetDict``: every split).

    Single-label: ``labels`` is the int class id; string labels (e.g. "ham"/"spam") become the index of their
    name in ``label_names`` (default: :func:`~hf_unlearn.data.label_names`, the sorted names over every split).
    Multi-label (default when the label column holds lists): ``labels`` is a float multi-hot vector of length
    ``num_labels`` (taken from the ``ClassLabel`` names if not given), as transformers expects with
    ``problem_type="multi_label_classification"``. ``label_column`` defaults to ``label``, else ``labels``.
    The text column is dropped.
    """
    kwargs = dict(text_column=text_column, label_column=label_column, num_labels=num_labels, multi_label=multi_label,
                  max_length=max_length, keep_columns=keep_columns)
    if isinstance(dataset, DatasetDict):
        names = label_names if label_names is not None else _label_names(dataset, label_column)
        return DatasetDict({split: tokenize_classification(part, tokenizer, label_names=names, **kwargs)
                            for split, part in dataset.items()})
    if label_column is None:
        label_column = "label" if "label" in dataset.column_names else "labels"
    require_columns(dataset, [text_column, label_column])
    feature = dataset.features[label_column]
    if multi_label is None:
        multi_label = hasattr(feature, "feature") or isinstance(feature, list)
    if multi_label and num_labels is None:
        names = _label_names(dataset, label_column)
        if names is None:
            raise ValueError(f"Pass num_labels=...: the '{label_column}' column has no label names.")
        num_labels = len(names)
    to_id = None
    if not multi_label and _is_string_column(dataset, label_column):
        to_id = _string_label_ids(dataset, label_column, label_names)

    def encode(batch: dict) -> dict:
        out = dict(tokenizer(batch[text_column], truncation=True, max_length=max_length))
        labels = batch[label_column]
        if multi_label:
            out["labels"] = [_multi_hot(ids, num_labels) for ids in labels]
        elif to_id is not None:
            out["labels"] = [to_id[str(v)] for v in labels]
        else:
            out["labels"] = [int(v) for v in labels]
        return out

    removed = _drop(dataset, keep_columns)
    result = dataset.map(encode, batched=True, remove_columns=removed)
    if multi_label:
        result = result.cast_column("labels", List(Value("float32")))
    return result


def tokenize_qa(
    dataset: Dataset,
    tokenizer: Any,
    *,
    template: str = QA_TEMPLATE,
    question_column: str = "question",
    answer_column: str = "answer",
    max_length: int = 256,
    answer_prefix: str = " ",
    add_eos: bool = True,
    keep_columns: Sequence[str] = (),
) -> Dataset:
    """Tokenize question/answer pairs for a causal LM; the loss covers the answer only.

    ``input_ids`` = tokens of ``template.format(question=...)`` (default
    ``"Question: {question}\nAnswer:"``, with the tokenizer's special tokens, e.g. BOS) + tokens
    of ``answer_prefix + answer`` (no special tokens) + EOS, i.e. the text
    ``"Question: ...\nAnswer: <answer>"``. Keeping the space with the answer makes byte-level
    BPE tokenizers (GPT-2, Llama 3, SmolLM2) split the boundary as in running text.
    ``labels`` copies ``input_ids`` with -100 on every prompt token (padding gets -100 in the
    collator). Too-long rows keep the end of the prompt and the start of the answer, so at
    least one answer token is always supervised.
    """
    require_columns(dataset, [question_column, answer_column])
    if "{question}" not in template:
        raise ValueError("template must contain '{question}', e.g. 'Question: {question}\\nAnswer: '.")
    eos = [tokenizer.eos_token_id] if add_eos and tokenizer.eos_token_id is not None else []

    def encode(batch: dict) -> dict:
        prompts = [template.format(question=q) for q in batch[question_column]]
        prompt_ids = tokenizer(prompts, add_special_tokens=True)["input_ids"]
        answers = [answer_prefix + a for a in batch[answer_column]]
        answer_ids = tokenizer(answers, add_special_tokens=False)["input_ids"]
        out: dict[str, list] = {"input_ids": [], "attention_mask": [], "labels": []}
        for p, a in zip(prompt_ids, answer_ids):
            a = list(a) + eos
            if len(p) >= max_length:
                p = p[-(max_length - 1):]
            a = a[: max_length - len(p)]
            out["input_ids"].append(list(p) + a)
            out["attention_mask"].append([1] * (len(p) + len(a)))
            out["labels"].append([-100] * len(p) + a)
        return out

    return dataset.map(encode, batched=True, remove_columns=_drop(dataset, keep_columns))


def preprocess_images(
    dataset: Dataset,
    image_processor: Any,
    *,
    image_column: str = "image",
    label_column: str = "label",
    convert_rgb: bool = True,
    lazy: bool = True,
) -> Dataset:
    """Give ``pixel_values`` and ``labels`` for ``ViTForImageClassification``.

    Images (PIL) are converted to RGB (``convert_rgb``; grayscale MNIST -> 3 channels) and run
    through ``image_processor``. ``lazy=True`` applies this on access with ``with_transform``
    (no 3×224×224 float copy of the dataset; use ``remove_unused_columns=False`` in the
    Trainer); ``lazy=False`` stores the result (small datasets only).
    """
    require_columns(dataset, [image_column, label_column])

    def transform(batch: dict) -> dict:
        images = [im.convert("RGB") if convert_rgb else im for im in batch[image_column]]
        pixels = image_processor(images, return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixels if lazy else pixels.numpy(), "labels": list(batch[label_column])}

    if lazy:
        return dataset.select_columns([image_column, label_column]).with_transform(transform)
    return dataset.map(transform, batched=True, remove_columns=dataset.column_names)
