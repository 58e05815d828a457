"""`prior_repair`: after the run the output bias is shifted until the model's mean prediction on the held-out rows is
the original's (measured there before the first step)."""

import copy
import logging
from types import SimpleNamespace

import pytest
import torch
from helpers import overfit, tiny_bert, token_dataset
from transformers import default_data_collator

from hf_unlearn import UnlearningArguments, UnlearningTrainer
from hf_unlearn.trainer.checkpoints import write_state
from hf_unlearn.trainer.heldout import (
    PriorRepair,
    dataset_labels,
    mean_prediction,
    measure_heldout,
    output_bias,
    prior_shift,
    share_log_ratio,
)


def test_prior_shift_matches_the_target_mean_prediction():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 5, generator=g) * 2
    target = torch.tensor([0.4, 0.3, 0.15, 0.1, 0.05])
    shift = prior_shift(logits, target)
    assert torch.allclose(mean_prediction(logits + shift), target.double(), atol=1e-6)
    assert abs(float(shift.sum())) < 1e-9  # softmax ignores a common offset: the shift is centred
    assert torch.allclose(prior_shift(logits, mean_prediction(logits)), torch.zeros(5, dtype=torch.float64),
                          atol=1e-9)  # already there: nothing moves


def _trainer(tmp_path, model, forget, retain, **kw):
    kw.setdefault("method", "gradient_ascent")
    args = UnlearningArguments(str(tmp_path / "out"), report_to=[], per_device_train_batch_size=8, disable_tqdm=True,
                               seed=0, logging_steps=1, save_strategy="no", **kw)
    return UnlearningTrainer(model=model, args=args, forget_dataset=forget, retain_dataset=retain,
                             validation_dataset=token_dataset(64, 1), data_collator=default_data_collator)


def _held_out_mean(trainer):
    return mean_prediction(measure_heldout(trainer, with_logits=True).logits)


@pytest.mark.parametrize("method", ["gradient_ascent", "nabla_tau"])
def test_prior_repair_gives_the_original_mean_prediction_back(tmp_path, method):
    train = token_dataset(48, 0)
    model = overfit(tiny_bert(), train, epochs=30, out=str(tmp_path / "original"))
    forget, retain = train.select(range(16)), train.select(range(16, 48))
    kw = dict(method=method, forget_epochs=6, learning_rate=5e-3)
    if method == "nabla_tau":
        kw.update(forget_push="ascent", tau=5.0)  # a fixed τ far above: every step pushes
    plain = _trainer(tmp_path / "plain", copy.deepcopy(model), forget, retain, **kw)
    original = _held_out_mean(plain)
    plain.train()
    drifted = _held_out_mean(plain)
    assert (drifted - original).abs().max() > 0.02  # the ascent moved the class balance on unseen rows
    repaired = _trainer(tmp_path / "repaired", model, forget, retain, prior_repair=True, prior_target="original", **kw)
    repaired.train()
    assert torch.allclose(repaired.heldout_prior, original, atol=1e-5)
    assert torch.allclose(_held_out_mean(repaired), original, atol=1e-4)
    shifts = [h["prior_shift"] for h in repaired.state.log_history if "prior_shift" in h]
    assert shifts == [round(repaired.prior_shift, 4)] and repaired.prior_shift > 0
    # only the output bias moved: every other weight is the plain run's
    plain_state, repaired_state = plain.model.state_dict(), repaired.model.state_dict()
    moved = [k for k in plain_state if not torch.allclose(plain_state[k], repaired_state[k], atol=1e-6)]
    assert moved == ["classifier.bias"]


def test_the_original_mean_prediction_travels_with_a_checkpoint(tmp_path):
    train = token_dataset(48, 0)
    trainer = _trainer(tmp_path, tiny_bert(), train.select(range(16)), train.select(range(16, 48)),
                       method="nabla_tau", forget_push="ascent", prior_repair=True)
    trainer.tau = trainer.compute_tau()
    assert trainer.heldout_prior is not None and trainer.heldout_prior.shape == (3,)
    folder = tmp_path / "checkpoint-1"
    folder.mkdir()
    write_state(str(folder), trainer.unlearning_state())
    resumed = _trainer(tmp_path, tiny_bert(seed=1), train.select(range(16)), train.select(range(16, 48)),
                       method="nabla_tau", forget_push="ascent", prior_repair=True)
    resumed._load_unlearning_state(str(folder))
    assert torch.allclose(resumed.heldout_prior, trainer.heldout_prior)
    resumed.compute_tau()  # a refresh keeps the original's, not the resumed model's
    assert torch.allclose(resumed.heldout_prior, trainer.heldout_prior)


def test_prior_repair_refuses_class_removal_and_leaves_a_bias_free_head_alone(tmp_path, caplog):
    train = token_dataset(48, 0)
    labels = torch.tensor(train["labels"])
    forget = train.select(torch.where(labels == 0)[0].tolist())
    retain = train.select(torch.where(labels != 0)[0].tolist())
    with pytest.raises(ValueError, match="prior_repair=True restores the original's class prior, which removing a "
                                         "class must change; leave prior_repair off for class removal"):
        _trainer(tmp_path, tiny_bert(), forget, retain, prior_repair=True)
    model = tiny_bert()
    model.classifier = torch.nn.Linear(32, 3, bias=False)
    assert output_bias(model, 3) is None
    trainer = _trainer(tmp_path, model, train.select(range(16)), train.select(range(16, 48)), prior_repair=True,
                       forget_epochs=1)
    with caplog.at_level(logging.WARNING, logger="hf_unlearn.trainer.heldout"):
        trainer.train()
    assert "the model has no trainable output bias with num_labels outputs" in caplog.text
    assert trainer.prior_shift is None


def test_prior_repair_refuses_a_bias_partitioned_by_zero3():
    plugin = SimpleNamespace(zero_stage=3)
    trainer = SimpleNamespace(args=SimpleNamespace(deepspeed_plugin=plugin))
    with pytest.raises(ValueError, match="prior_repair=True cannot shift an output bias that DeepSpeed ZeRO-3 "
                                         "partitions across ranks; run with ZeRO-1/2"):
        PriorRepair(trainer)
    plugin.zero_stage = 2  # ZeRO-1/2 replicate the parameters: the bias is whole on every rank
    assert PriorRepair(trainer).trainer is trainer


def test_the_retain_shares_move_each_class_by_its_label_shift():
    forget = [{"labels": torch.tensor(0)}, {"labels": torch.tensor(0)}]  # a torch dataset's rows: tensors too
    retain = [{"labels": c} for c in (0, 1, 1, 1)]
    assert dataset_labels(forget) == [0, 0] and dataset_labels(retain) == [0, 1, 1, 1]
    ratio = share_log_ratio(forget, retain, 3)
    kept, every = torch.tensor([1.5, 3.5, 0.5]), torch.tensor([3.5, 3.5, 0.5])  # counts + ½
    assert torch.allclose(ratio, torch.log(kept / kept.sum()) - torch.log(every / every.sum()).double())
    assert ratio[0] < 0 < ratio[1]  # class 0 lost 2 of its 3 rows: a retrained model predicts it less
    assert torch.isclose(ratio[1], ratio[2])  # classes that lost nothing move alike (only the normalisation)
    assert dataset_labels([{"input_ids": [1, 2]}]) is None and share_log_ratio([{"text": "x"}], retain, 3) is None
    assert dataset_labels(token_dataset(4, 0)) == token_dataset(4, 0)["labels"]


@pytest.mark.parametrize("target", ["original", "retain_shares"])
def test_prior_target_is_the_original_mean_prediction_under_the_chosen_shares(tmp_path, target):
    train = token_dataset(48, 0)
    labels = torch.tensor(train["labels"])
    forget_rows = torch.where(labels == 0)[0][:8].tolist()  # class 0 loses 8 rows, the others none
    forget = train.select(forget_rows)
    retain = train.select([i for i in range(48) if i not in forget_rows])
    trainer = _trainer(tmp_path, tiny_bert(), forget, retain, prior_repair=True, prior_target=target)
    logits = measure_heldout(trainer, with_logits=True).logits
    target_prior = trainer.prior_repair.target(logits)
    assert torch.allclose(target_prior.sum(), torch.tensor(1.0, dtype=torch.float64))
    if target == "original":
        assert torch.allclose(target_prior, mean_prediction(logits))
    else:
        assert target_prior[0] < mean_prediction(logits)[0] - 0.02  # the class the forget rows take is lower
        assert torch.allclose(target_prior, mean_prediction(logits.double() + share_log_ratio(forget, retain, 3)))


def test_prior_target_retain_shares_needs_the_rows_classes(tmp_path):
    train = token_dataset(48, 0)
    trainer = _trainer(tmp_path, tiny_bert(), train.select(range(16)), train.select(range(16, 48)),
                       prior_repair=True, prior_target="retain_shares")
    trainer.forget_dataset = [{"input_ids": row["input_ids"]} for row in trainer.forget_dataset]
    with pytest.raises(ValueError, match="prior_target='retain_shares' counts the forget and retain rows' classes: "
                                         "give them a 'labels' column"):
        trainer.prior_repair.target(torch.zeros(4, 3))


def test_the_automatic_repair_stays_off_where_it_cannot_run_or_was_not_measured():
    from hf_unlearn.methods.nabla_tau import automatic_push

    def pushed(task="single_label", modality="text", class_removal=False, **kw):
        args = UnlearningArguments("out", report_to=[], **kw)
        automatic_push(args, task, modality, class_removal, [])
        return args.prior_repair, args.alpha

    assert pushed() == (True, 0.6)
    zero3 = UnlearningArguments("out", report_to=[])
    zero3.deepspeed_plugin = SimpleNamespace(zero_stage=3)  # ZeRO-3 partitions the output bias
    automatic_push(zero3, "single_label", "text", False, [])
    assert (zero3.forget_push, zero3.prior_repair, zero3.alpha) == ("relabel", None, None)
    assert pushed(class_removal=True) == (None, None)  # the ascent for class removal: no repair
    assert pushed(modality="image", forget_push="relabel") == (None, None)  # images: not measured
    assert pushed(prior_repair=True, forget_push="relabel", modality="image") == (True, 0.6)
