"""τ's data held out and rows without a loss left out of means (issue 16, cases 3-5): beyond the error matrix in
test_bad_inputs.py, what the library does with natural duplicates and fully masked causal-LM rows."""

import datasets
import pytest
import torch
from helpers import token_dataset
from transformers import LlamaConfig, LlamaForCausalLM, default_data_collator

from hf_unlearn import UnlearningArguments, UnlearningTrainer
from hf_unlearn.data import check_held_out, drop_shared
from hf_unlearn.data.holdout import drop_copies
from hf_unlearn.data.identity import dataset_digest
from hf_unlearn.losses import causal_lm_loss


def test_drop_copies_removes_natural_duplicates_that_the_trainer_refuses():
    data = token_dataset(40, 0)
    forget, retain = data.select(range(8)), datasets.concatenate_datasets([data.select(range(8, 30)),
                                                                           data.select([0, 1, 2])])
    validation = datasets.concatenate_datasets([token_dataset(10, 1), data.select([3, 20])])
    with pytest.raises(ValueError, match="3 exact copies"):
        check_held_out(forget, retain, validation)
    clean_retain, clean_validation = drop_copies(forget, retain, validation)
    check_held_out(forget, clean_retain, clean_validation)
    assert (len(clean_retain), len(clean_validation)) == (22, 10)
    assert drop_shared(token_dataset(10, 1), forget) is not None


def test_dataset_digest_is_order_free_and_sees_labels():
    data = token_dataset(20, 0)
    assert dataset_digest(data) == dataset_digest(data.select(list(reversed(range(20)))))
    relabelled = data.map(lambda r: {"labels": (r["labels"] + 1) % 3})
    assert dataset_digest(relabelled) != dataset_digest(data)


def _lm():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=60, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=2))


def _masked(ds, rows):
    return ds.map(lambda r, i: {"labels": [-100] * len(r["labels"]) if i in rows else r["labels"]},
                  with_indices=True)


@torch.no_grad()
def _supervised_mean(model, rows):
    batch = default_data_collator(rows)
    labels = batch.pop("labels")
    model.eval()
    losses = causal_lm_loss(model(**batch).logits, labels)
    keep = (labels[:, 1:] != -100).any(1)
    return float(losses[keep].double().mean()), float(losses.double().mean())


class _Rows:
    """Indexable rows that are neither a datasets.Dataset nor a list (the data checks pass them through)."""

    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def test_fully_masked_causal_lm_rows_are_left_out_of_tau_and_the_retain_mean(tmp_path):
    data = token_dataset(40, 0).map(lambda r: {"labels": r["input_ids"]})
    retain = _masked(data.select(range(8, 40)), set(range(0, 32, 2)))  # half the retain rows carry no loss
    # rows the data checks cannot read (a plain indexable object) pass them: the masked rows must not count in τ either
    validation = _Rows([dict(r) for r in _masked(token_dataset(8, 1).map(lambda r: {"labels": r["input_ids"]}),
                                                 {1, 4})])
    model = _lm()
    args = UnlearningArguments(str(tmp_path), report_to=[], per_device_train_batch_size=4, tau_max_samples=0,
                               per_device_eval_batch_size=3)
    trainer = UnlearningTrainer(model=model, args=args, forget_dataset=data.select(range(8)), retain_dataset=retain,
                                validation_dataset=validation, data_collator=default_data_collator)
    expected, with_masked = _supervised_mean(model, validation)
    assert trainer.compute_tau() == pytest.approx(expected, rel=1e-6)
    assert with_masked < 0.8 * expected  # counting the masked rows as 0 would have pulled τ down

    trainer.tau = expected
    batch = trainer.pair_collator([(data[i], retain[j]) for i, j in zip(range(4), range(4))])
    model.train()
    trainer.compute_loss(model, batch)
    model.eval()
    supervised_retain, _ = _supervised_mean(model, [retain[j] for j in range(4)])
    assert float(trainer._metrics["retain_loss"][-1]) == pytest.approx(supervised_retain, rel=1e-4)


def test_one_row_hasher_int32_and_int64_token_ids_hash_alike_everywhere():
    """`data.checks.row_keys` (disjoint splits) and `data.identity.content_hashes` (held-out checks, digests) are one
    hasher: the same token ids give the same key whether stored as int32 or int64, as a dataset or a list of rows."""
    from hf_unlearn.data import count_shared, row_keys
    from hf_unlearn.data.identity import content_hashes

    rows = [[5, 6, 7], [8, 9, 10, 11], [12]]
    as_int32, as_int64 = (datasets.Dataset.from_dict(
        {"input_ids": rows}, features=datasets.Features({"input_ids": datasets.Sequence(datasets.Value(dtype))}))
        for dtype in ("int32", "int64"))
    tensors = [{"input_ids": torch.tensor(r, dtype=torch.int32)} for r in rows]
    keys = content_hashes(as_int64)
    assert content_hashes(as_int32) == keys and content_hashes(tensors) == keys
    assert row_keys(as_int32, ["input_ids"]) == row_keys(as_int64, ["input_ids"]) == keys
    assert count_shared(as_int32, as_int64) == 3
    assert dataset_digest(as_int32) == dataset_digest(as_int64)
