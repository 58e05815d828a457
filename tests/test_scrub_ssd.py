"""The paper's baselines SCRUB (teacher KL, max/min steps) and SSD (one-shot synaptic dampening)."""

import pytest
import torch
import torch.nn.functional as F
from helpers import mean_loss_and_acc, overfit, tiny_bert, token_dataset
from transformers import default_data_collator

from hf_unlearn import UnlearningArguments, UnlearningTrainer
from hf_unlearn.methods import ObjectiveInputs, get_method
from hf_unlearn.methods.scrub import distill_kl
from hf_unlearn.methods.ssd import selective_synaptic_dampening

SCRUB_HP = {"retain_weight": 1.0, "scrub_kl_weight": 0.5, "scrub_temperature": 4.0, "scrub_msteps": None}


def _scrub_inputs(progress=0.0, epoch=0.0, **hp):
    g = torch.Generator().manual_seed(0)
    logits = {k: torch.randn(3, 4, generator=g) for k in ("f", "r", "tf", "tr")}
    return ObjectiveInputs(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5, 0.5, 2.0]), hparams={**SCRUB_HP, **hp},
                           forget_logits=logits["f"], retain_logits=logits["r"], ref_forget_logits=logits["tf"],
                           ref_retain_logits=logits["tr"], progress=progress, epoch=epoch), logits


def test_distill_kl_matches_the_reference_formula():
    s, t = torch.randn(5, 3), torch.randn(5, 3)
    # repdistiller's DistillKL: kl_div(log_softmax(s/T), softmax(t/T), sum) · T² / batch
    expected = F.kl_div(F.log_softmax(s / 4, 1), F.softmax(t / 4, 1), reduction="sum") * 16 / 5
    assert distill_kl(s, t, 4.0).mean().item() == pytest.approx(expected.item(), rel=1e-5)
    assert distill_kl(t, t, 4.0).abs().max().item() < 1e-6


def test_scrub_objective_max_phase_then_min_only():
    scrub = get_method("scrub").objective
    x, lg = _scrub_inputs(progress=0.2)
    kl_r, kl_f = distill_kl(lg["r"], lg["tr"], 4.0).mean(), distill_kl(lg["f"], lg["tf"], 4.0).mean()
    assert scrub(x).item() == pytest.approx(1.0 + 0.5 * kl_r.item() - kl_f.item(), rel=1e-5)
    x, _ = _scrub_inputs(progress=0.6)  # default: max-steps in the first half of the run only
    assert scrub(x).item() == pytest.approx(1.0 + 0.5 * kl_r.item(), rel=1e-5)
    x, _ = _scrub_inputs(progress=0.9, epoch=1.5, scrub_msteps=2)  # msteps counts forget-epochs
    assert scrub(x).item() == pytest.approx(1.0 + 0.5 * kl_r.item() - kl_f.item(), rel=1e-5)


@pytest.fixture(scope="module")
def memorised():
    model = tiny_bert()
    overfit(model, token_dataset(128, 0))
    return model.state_dict()


def _trainer(tmp_path, state, method, **kw):
    model = tiny_bert()
    model.load_state_dict(state)
    train = token_dataset(128, 0)
    args = UnlearningArguments(str(tmp_path / method), method=method, per_device_train_batch_size=8, report_to=[],
                               logging_steps=2, disable_tqdm=True, seed=0, **kw)
    return UnlearningTrainer(model=model, args=args, forget_dataset=train.select(range(16)),
                             retain_dataset=train.select(range(16, 128)), validation_dataset=token_dataset(64, 1),
                             data_collator=default_data_collator)


def test_scrub_raises_forget_loss_and_keeps_retain_accuracy(tmp_path, memorised):
    trainer = _trainer(tmp_path, memorised, "scrub", learning_rate=1e-3)
    assert trainer.ref_model is not None and trainer.args.forget_epochs == 6  # 2 × the automatic 3
    forget_before, _ = mean_loss_and_acc(trainer.model, trainer.forget_dataset)
    _, retain_acc_before = mean_loss_and_acc(trainer.model, trainer.retain_dataset)
    trainer.train()
    forget_after, _ = mean_loss_and_acc(trainer.model, trainer.forget_dataset)
    _, retain_acc_after = mean_loss_and_acc(trainer.model, trainer.retain_dataset)
    assert forget_after > forget_before + 0.5
    assert retain_acc_after >= retain_acc_before - 0.05
    assert "forget_loss" in trainer.state.log_history[0] and "alpha" not in trainer.state.log_history[0]


def test_scrub_refuses_causal_lm(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=60, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    data = token_dataset(16, 0).map(lambda r: {"labels": r["input_ids"]})
    args = UnlearningArguments(str(tmp_path / "x"), method="scrub", report_to=[])
    held_out = token_dataset(8, 1).map(lambda r: {"labels": r["input_ids"]})
    with pytest.raises(ValueError, match="method='scrub' applies to single_label, image_classification"):
        UnlearningTrainer(model=model, args=args, forget_dataset=data.select(range(4)),
                          retain_dataset=data.select(range(4, 16)), validation_dataset=held_out)


def test_ssd_dampens_only_weights_more_important_to_the_forget_set():
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 1.0]]))

    def loss(m, batch):  # linear in the weights: the gradient is the mean input, whatever the weights
        return m(batch["x"]).mean()

    forget = [{"x": torch.tensor([[2.0, 0.0]])}]
    full = [{"x": torch.tensor([[0.0, 1.0]])}] * 19 + forget
    # importances: forget (4, 0); full (4/20, 19/20) = (0.2, 0.95). Selected: 4 > 10·0.2 (w1), not 0 > 9.5 (w2).
    summary = selective_synaptic_dampening(model, forget, full, loss, {"ssd_alpha": 10.0, "ssd_lambda": 1.0})
    assert model.weight[0].tolist() == pytest.approx([0.2 / 4, 1.0])  # w1 × min(λ·0.2/4, 1)
    assert summary == {"ssd_dampened_params": 1.0, "ssd_dampened_fraction": 0.5, "ssd_alpha": 10.0}
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 1.0]]))
    selective_synaptic_dampening(model, forget, full, loss, {"ssd_alpha": 10.0, "ssd_lambda": 30.0})
    assert model.weight.tolist() == [[1.0, 1.0]]  # λ·0.2/4 = 1.5 is bounded by 1: no weight grows
    selective_synaptic_dampening(model, forget, full, loss, {"ssd_alpha": 25.0, "ssd_lambda": 1.0})
    assert model.weight.tolist() == [[1.0, 1.0]]  # 4 < 25·0.2: nothing selected


def test_ssd_with_the_reference_alpha_cannot_select_at_a_large_forget_fraction(tmp_path, memorised, caplog):
    trainer = _trainer(tmp_path, memorised, "ssd", ssd_alpha=10.0)  # forget = 2 of 16 batches: 1/α < 2/16
    before = [p.detach().clone() for p in trainer.model.parameters()]
    with caplog.at_level("WARNING"):
        assert trainer.train().metrics["ssd_dampened_params"] == 0
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    assert "Lower ssd_alpha" in caplog.text


def test_ssd_alpha_is_derived_from_the_forget_fraction(tmp_path, memorised):
    """Unset, α = 0.5 / forget fraction (the benchmark's rule), so a large forget set still dampens weights."""
    trainer = _trainer(tmp_path, memorised, "ssd")
    metrics = trainer.train().metrics
    fraction = len(trainer.forget_dataset) / (len(trainer.forget_dataset) + len(trainer.retain_dataset))
    assert metrics["ssd_alpha"] == pytest.approx(0.5 / fraction) and metrics["ssd_dampened_params"] > 0


def test_ssd_is_one_shot_and_forgets_more_than_it_costs(tmp_path, memorised):
    trainer = _trainer(tmp_path, memorised, "ssd", ssd_alpha=4.0)
    test = token_dataset(128, 7)
    _, forget_acc_before = mean_loss_and_acc(trainer.model, trainer.forget_dataset)
    _, test_acc_before = mean_loss_and_acc(trainer.model, test)
    output = trainer.train()
    _, forget_acc_after = mean_loss_and_acc(trainer.model, trainer.forget_dataset)
    _, test_acc_after = mean_loss_and_acc(trainer.model, test)
    assert output.global_step == 0 and trainer.ref_model is None and trainer.tau is None
    assert output.metrics["ssd_dampened_params"] > 0 and "train_runtime" in trainer.state.log_history[-1]
    assert forget_acc_before - forget_acc_after >= 0.2  # 1.0 → 0.75 (a few % of the weights dampened)
    assert test_acc_after >= test_acc_before - 0.05
    trainer.save_model()
    assert (tmp_path / "ssd" / "model.safetensors").exists()
    with pytest.raises(ValueError, match="one-shot"):
        trainer.train(resume_from_checkpoint=str(tmp_path))


def test_with_fresh_lora_adapters_scrub_uses_the_disabled_adapters_and_ssd_is_refused(tmp_path):
    from peft import LoraConfig

    data = token_dataset(32, 0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], task_type="SEQ_CLS")
    for method in ("scrub", "ssd"):
        args = UnlearningArguments(str(tmp_path / method), method=method, per_device_train_batch_size=8,
                                   report_to=[], disable_tqdm=True, max_steps=2)
        trainer = UnlearningTrainer(model=tiny_bert(), args=args, forget_dataset=data.select(range(8)),
                                    retain_dataset=data.select(range(8, 32)), validation_dataset=token_dataset(8, 1),
                                    data_collator=default_data_collator, peft_config=config)
        if method == "ssd":
            with pytest.raises(ValueError, match="fresh PEFT adapters"):
                trainer.train()
        else:
            assert trainer.ref_model is None  # the reference is the base model with the adapters disabled
            assert trainer.train().global_step == 2
