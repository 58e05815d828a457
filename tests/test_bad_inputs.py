"""The bad-input matrix: each case raises an error that names the problem and the fix, and writes nothing.

The same list is in README.md ("Bad inputs"). Every case runs against an empty output folder and checks that the
folder is still empty (or absent) afterwards.
"""

import subprocess
import sys

import pytest
from helpers import tiny_bert, token_dataset
from transformers import BertConfig, BertModel, default_data_collator

from hf_unlearn import UnlearningArguments, UnlearningTrainer, select_forget
from hf_unlearn.data import check_disjoint, load_data


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
                            cwd=tmp_path, timeout=120)
    if result.returncode != 0:
        raise ValueError(result.stderr.strip().splitlines()[-1])


def _yaml(tmp_path, text):
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return str(path)


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
    # configs
    "unknown config key": (lambda t: _cli(t, "run", _yaml(t, "learnig_rate: 0.1\n")), ValueError, "learnig_rate"),
    "malformed YAML": (lambda t: _cli(t, "run", _yaml(t, "method: [nabla_tau\n")), ValueError, "line"),
    # files
    "missing data file": (lambda t: load_data(str(t / "nope.csv")), FileNotFoundError, "nope.csv"),
    "unreadable data file": (lambda t: (t / "bad.parquet").write_bytes(b"not parquet") and
                             load_data(str(t / "bad.parquet")), Exception, "bad.parquet"),
    "truncated checkpoint": (lambda t: _resume_truncated(t), ValueError, "damaged"),
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
    inputs = {"out", "job.yaml", "bad.parquet", "checkpoint-1"}  # the case's own inputs and the (empty) output_dir
    assert {p.name for p in tmp_path.iterdir()} <= set(before) | inputs
