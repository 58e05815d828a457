"""UnlearningTrainer end to end on tiny random BERTs: forgetting, logs, τ cadence, fusing, accumulation, resume."""

import pytest
import torch
from helpers import mean_loss_and_acc, overfit, tiny_bert, token_dataset
from transformers import BertConfig, BertModel, TrainerCallback, default_data_collator

from hf_unlearn import UnlearningArguments, UnlearningTrainer
from hf_unlearn.trainer.trainer import METRIC_KEYS


def _args(tmp_path, **kw):
    base = dict(per_device_train_batch_size=8, report_to=[], logging_steps=1, disable_tqdm=True, seed=0)
    base.update(kw)
    return UnlearningArguments(str(tmp_path / "out"), **base)


def _trainer(tmp_path, model=None, n_forget=16, n_retain=112, **kw):
    train = token_dataset(n_forget + n_retain, 0)
    forget, retain = train.select(range(n_forget)), train.select(range(n_forget, n_forget + n_retain))
    return UnlearningTrainer(model=model or tiny_bert(), args=_args(tmp_path, **kw), forget_dataset=forget,
                             retain_dataset=retain, validation_dataset=token_dataset(64, 1),
                             data_collator=default_data_collator)


@pytest.fixture(scope="module")
def memorised():
    """A tiny BERT that memorised 128 random-label sequences (16 to forget) and 64 held-out ones."""
    model = tiny_bert()
    train = token_dataset(128, 0)
    overfit(model, train)
    return model.state_dict()


def test_unlearning_raises_forget_loss_to_tau_and_keeps_retain(tmp_path, memorised):
    model = tiny_bert()
    model.load_state_dict(memorised)
    # the push alone (α₀ 0.5, no prior repair): on these random labels the repair's bias shift (1.2) hands forget
    # rows back (forget loss 1.2 against τ 2.5); its own tests are in test_prior_repair.py, its real-data effect in
    # docs/method.md
    trainer = _trainer(tmp_path, model=model, forget_epochs=30, learning_rate=5e-4, logging_steps=5,
                       prior_repair=False)
    forget_before, _ = mean_loss_and_acc(model, trainer.forget_dataset)
    trainer.train()
    forget_after, _ = mean_loss_and_acc(model, trainer.forget_dataset)
    _, retain_acc = mean_loss_and_acc(model, trainer.retain_dataset)
    tau = trainer.tau
    assert forget_before < 0.1 * tau  # memorised: far below the held-out loss
    assert abs(forget_after - tau) <= 0.4 * tau  # pushed up to within 40% of τ
    assert retain_acc >= 0.85  # utility on retained data kept (it was 1.0)
    logged = [log for log in trainer.state.log_history if "loss" in log]
    for key in (*METRIC_KEYS, "loss", "learning_rate"):
        assert key in logged[-1], key
    alphas = [log["alpha"] for log in logged]
    assert alphas == sorted(alphas, reverse=True) and alphas[0] <= 0.5


def test_automatic_alpha_and_length(tmp_path):
    trainer = _trainer(tmp_path, n_forget=16, n_retain=112)
    assert trainer.alpha0 == 0.6  # the relabel push with the prior repair
    assert _trainer(tmp_path, forget_push="ascent").alpha0 == 0.5  # the paper's text rule
    # ⌊retain batches / (2 × forget batches)⌋ = ⌊14 / 4⌋ = 3, twice on text (∇τ's text length)
    assert trainer.args.forget_epochs == 6 and trainer.args.num_train_epochs == 6
    paper = _trainer(tmp_path, n_forget=16, n_retain=112, forget_push="ascent", length_multiplier=1)
    assert paper.args.forget_epochs == 3  # the paper's push and rule, by two arguments (relabel: at least 4)
    image = _trainer(tmp_path, n_forget=16, n_retain=112, modality="image")
    assert image.alpha0 == pytest.approx(5 / 3 * 16 / 128)
    assert image.args.forget_epochs == 3  # the paper's rule on images
    capped = _trainer(tmp_path, n_forget=96, n_retain=32, modality="image")
    assert capped.alpha0 == pytest.approx(0.9)
    finetune = _trainer(tmp_path, method="finetune")
    assert finetune.args.forget_epochs == 6  # the paper runs the finetune baseline twice as long
    assert _trainer(tmp_path, alpha=0.2).alpha0 == 0.2
    with pytest.raises(ValueError, match="length_multiplier=0 must be > 0"):
        _trainer(tmp_path, length_multiplier=0)


def test_the_papers_recipe_is_one_argument_and_runs_the_same_steps(tmp_path, memorised):
    runs = {}
    for name, kw in {"paper": dict(method="nabla_tau_paper"),
                     "spelled out": dict(forget_push="ascent", tau_gate="train", length_multiplier=1)}.items():
        model = tiny_bert()
        model.load_state_dict(memorised)
        trainer = _trainer(tmp_path / name, model=model, **kw)
        trainer.train()
        runs[name] = trainer
    paper, spelled = runs["paper"], runs["spelled out"]
    assert paper.args.forget_epochs == 3 and paper.args.tau_gate == "train"  # the paper's length and gate
    assert paper.args.alpha_schedule == "linear" and paper.args.learning_rate == pytest.approx(3e-4)
    assert paper.method.hparams == ("tau_target", "forget_push", "update_from_layer")
    assert paper.args.method_hparams() == {"tau_target": "mean", "forget_push": "ascent", "update_from_layer": None}
    assert [log["loss"] for log in paper.state.log_history if "loss" in log] == [
        log["loss"] for log in spelled.state.log_history if "loss" in log]
    assert all(torch.equal(a, b) for a, b in zip(paper.model.parameters(), spelled.model.parameters()))
    with pytest.raises(ValueError, match="method='nabla_tau_paper' is the paper's recipe \\(forget_push='ascent'\\); "
                                         "for forget_push='relabel' use method='nabla_tau'"):
        _trainer(tmp_path, method="nabla_tau_paper", forget_push="relabel")


def test_alpha_schedule_and_lr_decay(tmp_path):
    trainer = _trainer(tmp_path, forget_epochs=4, forget_push="ascent")  # the paper's: 2 steps/forget-epoch → 8
    trainer.train()
    logs = [log for log in trainer.state.log_history if "alpha" in log]
    assert [round(log["alpha"], 6) for log in logs] == [round(0.5 * (1 - s / 8), 6) for s in range(8)]
    assert logs[-1]["learning_rate"] >= 0.1 * 3e-4 - 1e-9  # decays to 0.1×, not 0
    constant = _trainer(tmp_path, forget_epochs=2, alpha_schedule="constant", alpha=0.3)
    constant.train()
    assert {log["alpha"] for log in constant.state.log_history if "alpha" in log} == {0.3}


def test_tau_refresh_cadence_and_source(tmp_path):
    trainer = _trainer(tmp_path, forget_epochs=11, tau_refresh_epochs=5)
    passes = []
    original = trainer.compute_tau

    def counting():
        passes.append(trainer.state.global_step)
        return original()

    trainer.compute_tau = counting
    trainer.train()
    # 2 steps per forget-epoch: before the first step, then after forget-epochs 5 and 10
    assert passes == [0, 10, 20]
    assert [h["step"] for h in trainer.tau_history] == [0, 10, 20]


def test_tau_comes_from_validation_data_only(tmp_path):
    model = tiny_bert()
    trainer = _trainer(tmp_path, model=model)
    expected, _ = mean_loss_and_acc(model, trainer.validation_dataset)
    assert trainer.compute_tau() == pytest.approx(expected, rel=1e-5)
    retain_loss, _ = mean_loss_and_acc(model, trainer.retain_dataset)
    assert trainer.compute_tau() != pytest.approx(retain_loss, rel=1e-5)


def test_tau_subsample(tmp_path):
    trainer = _trainer(tmp_path, tau_max_samples=10)
    full = _trainer(tmp_path)
    assert trainer.compute_tau() != pytest.approx(full.compute_tau(), rel=1e-6)


def _loss_and_grads(tmp_path, fused):
    trainer = _trainer(tmp_path, model=tiny_bert(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
                       fuse_forget_retain=fused)
    trainer.tau = 3.0
    trainer.state.max_steps = 10
    batch = next(iter(trainer.get_train_dataloader()))
    assert ("num_forget" in batch) == fused
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    return loss.item(), [p.grad.clone() for p in trainer.model.parameters() if p.grad is not None]


def test_fused_and_two_pass_agree(tmp_path):
    fused_loss, fused_grads = _loss_and_grads(tmp_path, True)
    two_loss, two_grads = _loss_and_grads(tmp_path, False)
    assert fused_loss == pytest.approx(two_loss, rel=1e-5)
    for a, b in zip(fused_grads, two_grads):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_gradient_accumulation_matches_loss_schedule_and_alpha(tmp_path):
    def no_dropout():
        return tiny_bert(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)

    one = _trainer(tmp_path / "a", model=no_dropout(), forget_epochs=3, per_device_train_batch_size=8)
    two = _trainer(tmp_path / "b", model=no_dropout(), forget_epochs=3, per_device_train_batch_size=4,
                   gradient_accumulation_steps=2)
    one.train()
    two.train()
    assert one.state.max_steps == two.state.max_steps == 6
    logs_one = [log for log in one.state.log_history if "alpha" in log]
    logs_two = [log for log in two.state.log_history if "alpha" in log]
    assert [log["alpha"] for log in logs_one] == [log["alpha"] for log in logs_two]
    assert [log["learning_rate"] for log in logs_one] == [log["learning_rate"] for log in logs_two]
    # the same samples per optimizer step: the per-step mean losses agree at the first step (same weights)
    assert logs_one[0]["forget_loss"] == pytest.approx(logs_two[0]["forget_loss"], rel=1e-4)
    assert logs_one[0]["retain_loss"] == pytest.approx(logs_two[0]["retain_loss"], rel=1e-4)


class _Crash(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        raise RuntimeError("simulated crash right after the first checkpoint")


def test_resume_from_checkpoint_reaches_same_weights(tmp_path):
    kw = dict(forget_epochs=6, tau_refresh_epochs=2, save_strategy="steps", save_steps=5)
    full = _trainer(tmp_path / "full", **kw)
    full.train()
    crashed = _trainer(tmp_path / "part", **kw)
    crashed.add_callback(_Crash())
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.train()
    resumed = _trainer(tmp_path / "part", **kw)
    resumed.train(resume_from_checkpoint=True)
    assert resumed.tau_history == full.tau_history
    assert resumed.state.global_step == full.state.global_step
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_error_without_validation_data(tmp_path):
    train = token_dataset(32, 0)
    with pytest.raises(ValueError, match="validation_dataset.*retain set cannot serve"):
        UnlearningTrainer(model=tiny_bert(), args=_args(tmp_path), forget_dataset=train.select(range(8)),
                          retain_dataset=train.select(range(8, 32)))


def test_eval_dataset_fallback_warns(tmp_path, caplog):
    train = token_dataset(32, 0)
    with caplog.at_level("WARNING"):
        trainer = UnlearningTrainer(model=tiny_bert(), args=_args(tmp_path), forget_dataset=train.select(range(8)),
                                    retain_dataset=train.select(range(8, 32)), eval_dataset=token_dataset(16, 1))
    assert trainer.validation_dataset is trainer.eval_dataset
    assert "eval_dataset" in caplog.text


def test_error_empty_forget_and_same_object(tmp_path):
    train = token_dataset(32, 0)
    val = token_dataset(8, 1)
    with pytest.raises(ValueError, match="forget_dataset is empty"):
        UnlearningTrainer(model=tiny_bert(), args=_args(tmp_path), forget_dataset=train.select([]),
                          retain_dataset=train, validation_dataset=val)
    with pytest.raises(ValueError, match="same object"):
        UnlearningTrainer(model=tiny_bert(), args=_args(tmp_path), forget_dataset=train, retain_dataset=train,
                          validation_dataset=val)


def test_error_model_without_head(tmp_path):
    train = token_dataset(32, 0)
    model = BertModel(BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=64))
    with pytest.raises(ValueError, match="no classification or language-modelling head"):
        UnlearningTrainer(model=model, args=_args(tmp_path), forget_dataset=train.select(range(8)),
                          retain_dataset=train.select(range(8, 32)), validation_dataset=token_dataset(8, 1))


def test_argument_errors(tmp_path):
    for kw, message in [
        (dict(alpha=1.5), "outside \\[0, 1\\]"),
        (dict(alpha=-0.1), "outside \\[0, 1\\]"),
        (dict(tau_refresh_epochs=0), "tau_refresh_epochs"),
        (dict(method="nope"), "Valid methods"),
        (dict(alpha_schedule="cosine"), "alpha_schedule"),
        (dict(forget_epochs=2, num_train_epochs=3), "contradicts"),
        (dict(per_device_train_batch_size=0), "per_device_train_batch_size"),
    ]:
        with pytest.raises(ValueError, match=message):
            _args(tmp_path, **kw)


def test_hf_argument_parser_roundtrip():
    from transformers import HfArgumentParser

    (args,) = HfArgumentParser(UnlearningArguments).parse_args_into_dataclasses(
        ["--output_dir", "x", "--method", "grad_diff", "--alpha", "0.3", "--forget_epochs", "4"])
    assert (args.method, args.alpha, args.forget_epochs, args.num_train_epochs) == ("grad_diff", 0.3, 4, 4.0)
    assert args.learning_rate is None and args.lr_min_ratio == 0.1  # None: resolved by modality (3e-4 text)



def test_automatic_tau_sample_budget(tmp_path):
    from hf_unlearn.trainer.plan import automatic_tau_samples

    assert automatic_tau_samples(64, 12, 1) == 128  # the floor: a short run
    assert automatic_tau_samples(64, 1000, 2) == int(0.05 / 0.95 * 3 * 64 * 1000 / 2)
    trainer = _trainer(tmp_path, forget_epochs=3)
    assert trainer.tau_samples == 128
    assert _trainer(tmp_path, tau_max_samples=0).tau_samples == 0  # 0 = every validation row


def test_fixed_tau_needs_no_validation_and_is_never_refreshed(tmp_path):
    train = token_dataset(48, 0)
    args = _args(tmp_path, tau=1.7, forget_epochs=6, tau_refresh_epochs=1)
    trainer = UnlearningTrainer(model=tiny_bert(), args=args, forget_dataset=train.select(range(16)),
                                retain_dataset=train.select(range(16, 48)), data_collator=default_data_collator)
    trainer.train()
    assert [h["tau"] for h in trainer.tau_history] == [1.7]


def test_class_removal_uses_the_uniform_guess_loss(tmp_path):
    import math

    train = token_dataset(64, 0)
    forget = train.filter(lambda r: r["labels"] == 2)
    retain = train.filter(lambda r: r["labels"] != 2)
    trainer = UnlearningTrainer(model=tiny_bert(num_labels=3), args=_args(tmp_path), forget_dataset=forget,
                                retain_dataset=retain, validation_dataset=token_dataset(16, 1),
                                data_collator=default_data_collator)
    assert trainer.fixed_tau == pytest.approx(math.log(3))
    random_split = _trainer(tmp_path)
    assert random_split.fixed_tau is None


def test_learning_rate_follows_the_paper_by_modality(tmp_path):
    assert _trainer(tmp_path, forget_push="ascent").args.learning_rate == 3e-4
    assert _trainer(tmp_path, modality="image").args.learning_rate == 1e-3
    assert _trainer(tmp_path, learning_rate=5e-5).args.learning_rate == 5e-5


def test_single_label_text_gets_the_relabel_recipe_and_the_paper_stays_one_argument_away(tmp_path):
    trainer = _trainer(tmp_path)  # a single-label text classifier
    args = trainer.args
    assert (args.forget_push, args.tau_target, args.alpha_schedule, args.learning_rate) == (
        "relabel", "quantiles", "constant", 6e-4)
    # the prior repair to the retain set's class shares comes with it, at α₀ 0.6; prior_repair=False turns it off
    assert (args.prior_repair, args.prior_target, trainer.alpha0) == (True, "retain_shares", 0.6)
    assert trainer.prior_repair in trainer.callback_handler.callbacks
    assert "prior repair to 'retain_shares' (relabel push)" in trainer.plan.automatic
    off = _trainer(tmp_path, prior_repair=False)
    assert (off.prior_repair, off.alpha0) == (None, 0.5)
    assert _trainer(tmp_path, alpha=0.4).alpha0 == 0.4  # a given α₀ wins
    fixed = _trainer(tmp_path, tau=3.0)  # a fixed τ needs no held-out rows: the repair is not assumed
    assert (fixed.args.prior_repair, fixed.alpha0) == (None, 0.5)
    # nor is the retain replay with α₀ 0.75 (lower RMIA, but it cost unseen-row accuracy on fresh seeds): two away
    assert (args.retain_replay, trainer.retain_pool) == (0, None)
    replay = _trainer(tmp_path, alpha=0.75, retain_replay=2)
    assert replay.alpha0 == 0.75 and len(replay.retain_pool) > len(replay.retain_dataset)
    paper = _trainer(tmp_path, forget_push="ascent")
    assert (paper.args.tau_target, paper.args.alpha_schedule, paper.args.learning_rate) == ("mean", "linear", 3e-4)
    assert (paper.args.prior_repair, paper.alpha0) == (None, 0.5)  # the ascent: no repair, the paper's α₀
    # images: the paper's (no evidence there); anything given wins over the recipe
    image = _trainer(tmp_path, modality="image").args
    assert (image.forget_push, image.tau_target, image.alpha_schedule) == ("ascent", "mean", "linear")
    mixed = _trainer(tmp_path, alpha_schedule="linear", method_kwargs={"tau_target": "mean"}, learning_rate=1e-4).args
    assert (mixed.forget_push, mixed.alpha_schedule, mixed.learning_rate) == ("relabel", "linear", 1e-4)
    assert mixed.method_hparams()["tau_target"] == "mean" and mixed.tau_target is None


def test_relabel_runs_at_least_four_forget_epochs_where_the_length_rule_gives_fewer(tmp_path):
    large = dict(n_forget=48, n_retain=80)  # 6 forget batches, 10 retain: the rule gives ⌊10 / 12⌋ → 1, × 2 on text
    assert _trainer(tmp_path, forget_push="ascent", **large).args.forget_epochs == 2  # the ascent keeps the rule
    relabel = _trainer(tmp_path, **large).args
    assert (relabel.forget_push, relabel.min_forget_epochs, relabel.forget_epochs) == ("relabel", 4, 4)
    assert _trainer(tmp_path, min_forget_epochs=1, **large).args.forget_epochs == 2  # the floor is one argument away
    assert _trainer(tmp_path, forget_epochs=3, **large).args.forget_epochs == 3  # a set length wins
    assert _trainer(tmp_path).args.forget_epochs == 6  # small forget sets: the rule's 3 × 2, above the floor
    with pytest.raises(ValueError, match="min_forget_epochs=0 must be ≥ 1"):
        _args(tmp_path, min_forget_epochs=0)


def test_image_classifier_task_even_with_problem_type_set():
    from transformers import ViTConfig, ViTForImageClassification

    from hf_unlearn.losses import infer_task

    model = ViTForImageClassification(ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=16,
                                                num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                                num_labels=3, problem_type="single_label_classification"))
    assert infer_task(model) == "image_classification"


def test_every_argument_help_renders():
    from transformers import HfArgumentParser

    text = HfArgumentParser(UnlearningArguments).format_help()
    for name in ("--method", "--alpha", "--tau", "--tau_refresh_epochs", "--forget_epochs", "--stop_at_tau"):
        assert name in text


def test_stop_at_tau_stops_after_an_epoch_where_forget_loss_sat_at_tau(tmp_path):
    from transformers import TrainerControl, TrainerState

    trainer = _trainer(tmp_path, stop_at_tau=True)
    trainer.tau = 2.0
    stop = trainer.tau_stop

    def epoch(means):
        for m in means:
            stop.observe(torch.tensor(m))
        return stop.on_epoch_end(trainer.args, TrainerState(global_step=7), TrainerControl())

    assert not epoch([1.0, 1.5, 2.1]).should_training_stop  # ascent still firing in most batches
    assert epoch([1.9, 2.0, 2.2, 1.8]).should_training_stop  # at/above τ in half the batches: done
    assert stop.stopped_at == 7
    assert _trainer(tmp_path).tau_stop is None  # opt-in


def test_audit_mia_moves_toward_chance_and_trainer_audit_writes_files(tmp_path, memorised):
    import json

    from hf_unlearn import audit_model

    model = tiny_bert()
    model.load_state_dict(memorised)
    train = token_dataset(128, 0)
    forget, retain, test = train.select(range(40)), train.select(range(40, 128)), token_dataset(64, 2)
    before = audit_model(model, forget=forget, test=test, data_collator=default_data_collator)
    args = _args(tmp_path, forget_epochs=20, learning_rate=5e-4, logging_steps=5)
    trainer = UnlearningTrainer(model=model, args=args, forget_dataset=forget, retain_dataset=retain,
                                validation_dataset=token_dataset(64, 1), eval_dataset=test,
                                data_collator=default_data_collator)
    trainer.train()
    after = trainer.audit(before=before)
    assert before.mia_loss.accuracy > 0.7  # memorised: the attack tells forget from test apart
    assert abs(after.mia_loss.accuracy - 0.5) < abs(before.mia_loss.accuracy - 0.5) - 0.2
    content = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert content["report"]["n_forget"] == 40 and content["method"] == "nabla_tau"
    assert (tmp_path / "out" / "loss_histograms.png").stat().st_size > 1000
