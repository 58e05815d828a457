"""The bad-input matrix: each case raises an error that names the problem and the fix, and writes nothing.

The same list is in README.md ("Bad inputs"). Every case runs against an empty output folder and checks that the
folder is still empty (or absent) afterwards.
"""

import subprocess
import sys

import datasets
import pytest
from helpers import tiny_bert, token_dataset
from transformers import BertConfig, BertModel, default_data_collator

from hf_unlearn import UnlearningArguments, UnlearningTrainer, select_forget
from hf_unlearn.data import check_disjoint, load_data, read_ids


def _train(tmp_path, forget=None, retain=None, validation="default", model=None, **kw):
    data = token_dataset(48, 0)
    forget = data.select(range(8)) if forget is None else forget
    retain = data.select(range(8, 48)) if retain is None else retain
    validation = token_dataset(16, 1) if validation == "default" else validation
    args = UnlearningArguments(str(tmp_path / "out"), report_to=[], per_device_train_batch_size=4, **kw)
    trainer = UnlearningTrainer(model=model or tiny_bert(), args=args, forget_dataset=forget, retain_dataset=retain,
                                validation_dataset=validation, data_collator=default_data_collator)
    trainer.train()


def _labels(values):
    data = token_dataset(len(values), 3)
    return data.remove_columns("labels").add_column("labels", values)


def _cli(tmp_path, *argv):
    result = subprocess.run([sys.executable, "-m", "hf_unlearn.cli", *argv], capture_output=True, text=True,
                            cwd=tmp_path)
    if result.returncode != 0:
        raise ValueError(result.stderr.strip().splitlines()[-1])


def _yaml(tmp_path, text):
    path = tmp_path / "job.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def _cli_line(*argv):
    """The CLI in this process (fast): its exit code must be 1 with one line on stderr, raised as ValueError."""
    import contextlib
    import io

    from hf_unlearn.cli.main import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(list(argv))
    lines = err.getvalue().strip().splitlines()
    assert code == 1 and len(lines) == 1, (code, lines)
    raise ValueError(lines[0])


def _file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def _tokens(rows):
    return datasets.Dataset.from_dict({"input_ids": rows, "attention_mask": [[1] * len(r) for r in rows],
                                       "labels": [i % 3 for i in range(len(rows))]})


def _lm_train(tmp_path, forget_labels=None, validation_labels=None, class_labels=False):
    """A tiny causal LM job; ``*_labels``: replace those rows' labels (e.g. all -100); ``class_labels``: one int
    label per row (a classification dataset given to a causal LM)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=60, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    data = token_dataset(40, 0).map(lambda r: {"labels": r["input_ids"]})
    validation = token_dataset(8, 1).map(lambda r: {"labels": r["input_ids"]})
    forget, retain = data.select(range(8)), data.select(range(8, 40))

    def mask(ds, rows):
        return ds.map(lambda r, i: {"labels": [-100] * len(r["labels"]) if i in rows else r["labels"]},
                      with_indices=True)

    forget = mask(forget, forget_labels or ())
    validation = mask(validation, validation_labels or ())
    if class_labels:
        forget, retain, validation = (ds.map(lambda r, i: {"labels": i % 3}, with_indices=True)
                                      for ds in (forget, retain, validation))
    args = UnlearningArguments(str(tmp_path / "out"), report_to=[], per_device_train_batch_size=4)
    UnlearningTrainer(model=model, args=args, forget_dataset=forget, retain_dataset=retain,
                      validation_dataset=validation, data_collator=default_data_collator)


DATA = token_dataset(40, 0)
CASES = {
    # data
    "forget and retain overlap": (lambda t: check_disjoint(DATA.select(range(10)), DATA.select(range(5, 40))),
                                  ValueError, "5 rows"),
    "empty forget set": (lambda t: _train(t, forget=DATA.select([])), ValueError, "forget_dataset is empty"),
    "forget set is the retain set": (lambda t: _train(t, forget=DATA, retain=DATA), ValueError, "same object"),
    "forget set is all the data": (lambda t: select_forget(DATA, where=lambda r: True), ValueError, "all"),
    "fraction outside (0, 1)": (lambda t: select_forget(DATA, fraction=1.5), ValueError, "fraction"),
    "wrong label column": (lambda t: select_forget(DATA, classes=[1], label_column="emotion"), ValueError,
                           "input_ids"),
    "label outside the head": (lambda t: _train(t, retain=_labels([0, 1, 7] * 10)), ValueError,
                               "outside the model's head"),
    "labels of the wrong dtype": (lambda t: _train(t, retain=_labels(["joy", "anger"] * 15)), ValueError,
                                  "integer class ids"),
    "no validation data": (lambda t: _train(t, validation=None), ValueError, "Pass validation_dataset"),
    # issue 16: τ data held out, copies, masked causal-LM rows (cases 3, 4, 5)
    "validation set is the forget set": (lambda t: _train(t, validation=DATA.select(range(8))), ValueError,
                                         "validation_dataset is not held out: 8 of its 8 rows are forget rows"),
    "validation rows are retain rows": (lambda t: _train(t, validation=token_dataset(48, 0).select(range(30, 40))),
                                        ValueError, "0 of its 10 rows are forget rows and 10 are retain rows"),
    "exact copies of forget rows in retain": (
        lambda t: _train(t, retain=datasets.concatenate_datasets([token_dataset(48, 0).select(range(8, 48)),
                                                                  token_dataset(48, 0).select([1, 2])])),
        ValueError, "retain_dataset holds 2 exact copies of forget rows"),
    "causal LM: forget rows without a supervised token": (lambda t: _lm_train(t, forget_labels={0, 3}), ValueError,
                                                          "forget_dataset: 2 of 8 rows have every label -100"),
    "causal LM: class labels, not token labels": (lambda t: _lm_train(t, class_labels=True), ValueError,
                                                  "forget_dataset: a causal LM needs token labels"),
    "causal LM: validation rows without a supervised token": (
        lambda t: _lm_train(t, validation_labels=set(range(8))), ValueError,
        "validation_dataset: 8 of 8 rows have every label -100"),
    # issue 16: inputs the model cannot take (cases 11-14)
    "empty token rows": (lambda t: _train(t, retain=_tokens([[5, 6, 7]] * 30 + [[]] * 2)), ValueError,
                         "retain_dataset: 2 rows have no tokens (empty input_ids)"),
    "rows longer than max_position_embeddings": (lambda t: _train(t, forget=token_dataset(8, 5, length=40)),
                                                 ValueError, "8 rows are longer than the model's "
                                                 "max_position_embeddings=32 (longest 40 tokens)"),
    "an IterableDataset": (lambda t: _train(t, forget=DATA.select(range(8)).to_iterable_dataset()), ValueError,
                           "forget_dataset is an IterableDataset (streamed)"),
    "a DatasetDict as retain": (lambda t: _train(t, retain=datasets.DatasetDict(train=DATA.select(range(8, 40)))),
                                ValueError, "retain_dataset is a DatasetDict with splits ['train']; pass one split"),
    "a DatasetDict as validation": (lambda t: _train(t, validation=datasets.DatasetDict(dev=token_dataset(8, 1))),
                                    ValueError, "validation_dataset is a DatasetDict"),
    # model
    "model without a classification head": (
        lambda t: _train(t, model=BertModel(BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=1,
                                                       num_attention_heads=2, intermediate_size=32))),
        ValueError, "no classification or language-modelling head"),
    "tokenizer/vocabulary mismatch": (lambda t: _train(t, model=tiny_bert(vocab_size=20)), ValueError,
                                      "Re-tokenize with the model's tokenizer"),
    # arguments
    "negative alpha": (lambda t: UnlearningArguments(str(t / "out"), alpha=-0.5), ValueError, "outside [0, 1]"),
    "alpha above 1": (lambda t: UnlearningArguments(str(t / "out"), alpha=1.5), ValueError, "outside [0, 1]"),
    "tau refresh 0": (lambda t: UnlearningArguments(str(t / "out"), tau_refresh_epochs=0), ValueError, "≥ 1"),
    "zero batch size": (lambda t: UnlearningArguments(str(t / "out"), per_device_train_batch_size=0), ValueError,
                        "per_device_train_batch_size"),
    "unknown method": (lambda t: UnlearningArguments(str(t / "out"), method="forget_all"), ValueError,
                       "Valid methods"),
    # issue 16, case 10: non-finite values
    "learning_rate=inf": (lambda t: UnlearningArguments(str(t / "out"), learning_rate=float("inf")), ValueError,
                          "learning_rate=inf is not a finite number"),
    "npo_beta=nan": (lambda t: UnlearningArguments(str(t / "out"), npo_beta=float("nan")), ValueError,
                     "npo_beta=nan is not a finite number"),
    "retain_weight=inf": (lambda t: UnlearningArguments(str(t / "out"), retain_weight=float("inf")), ValueError,
                          "retain_weight=inf is not a finite number"),
    # configs
    "unknown config key": (lambda t: _cli(t, "run", _yaml(t, "learnig_rate: 0.1\n")), ValueError, "learnig_rate"),
    "malformed YAML": (lambda t: _cli(t, "run", _yaml(t, "method: [nabla_tau\n")), ValueError, "line"),
    # issue 16, cases 16-19
    "non-UTF-8 YAML": (lambda t: _cli_line("run", _yaml(t, b"method: caf\xe9\n")), ValueError,
                       "job.yaml' is not UTF-8 text (byte 0xe9 at offset 11); save it as UTF-8"),
    "a folder as the config": (lambda t: _cli_line("run", str(t)), ValueError, "is a folder, not a file"),
    "a YAML section that is not a mapping": (lambda t: _cli_line("run", _yaml(t, "unlearning: [0.1, 3]\n")),
                                             ValueError, "Section 'unlearning' in"),
    "a key set twice in one YAML mapping": (
        lambda t: _cli_line("run", _yaml(t, "unlearning:\n  alpha: 0.1\n  alpha: 0.3\n")), ValueError,
        "'alpha' is set twice in"),
    # issue 16, case 15: a missing local model folder is "not found", not a Hub error
    "audit --model with a missing folder": (
        lambda t: _cli_line("audit", "--model", str(t / "out" / "model"), "--config", _yaml(t, "method: npo\n")),
        ValueError, "no such model folder"),
    # files
    "missing data file": (lambda t: load_data(str(t / "nope.csv")), FileNotFoundError, "nope.csv"),
    "unreadable data file": (lambda t: (t / "bad.parquet").write_bytes(b"not parquet") and
                             load_data(str(t / "bad.parquet")), Exception, "bad.parquet"),
    "truncated checkpoint": (lambda t: _resume_truncated(t), ValueError, "damaged"),
    "non-UTF-8 ids file": (lambda t: read_ids(_file(t, "ids.txt", b"row-1\nrow-\xff\n")), ValueError,
                           "ids.txt' is not UTF-8 text"),
    "a folder as the ids file": (lambda t: read_ids(str(t)), FileNotFoundError, "is a folder, not a file"),
}


def _resume_truncated(tmp_path):
    import shutil

    src = tmp_path.parent / f"{tmp_path.name}-src"
    _train(src, forget_epochs=1, save_strategy="steps", save_steps=1)
    checkpoint = tmp_path / "checkpoint-1"
    shutil.copytree(src / "out" / "checkpoint-1", checkpoint)
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])
    data = token_dataset(48, 0)
    args = UnlearningArguments(str(tmp_path / "out"), report_to=[], per_device_train_batch_size=4, forget_epochs=1)
    UnlearningTrainer(model=tiny_bert(), args=args, forget_dataset=data.select(range(8)),
                      retain_dataset=data.select(range(8, 48)), validation_dataset=token_dataset(16, 1),
                      data_collator=default_data_collator).train(resume_from_checkpoint=str(checkpoint))


def test_matrix_has_at_least_15_cases():
    assert len(CASES) >= 15


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, tmp_path):
    action, error, message = CASES[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(error) as caught:
        action(tmp_path)
    assert message in str(caught.value), str(caught.value)
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()] if (tmp_path / "out").exists() else []
    assert not written, f"{case}: files written to output_dir: {written}"
    # the case's own inputs and the (empty) output_dir
    inputs = {"out", "job.yaml", "bad.parquet", "checkpoint-1", "ids.txt"}
    assert {p.name for p in tmp_path.iterdir()} <= set(before) | inputs
