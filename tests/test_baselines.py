"""Baseline methods inside UnlearningTrainer: behaviour on a tiny memorised model."""

import pytest
import torch
from helpers import mean_loss_and_acc, overfit, tiny_bert, token_dataset
from transformers import default_data_collator

from hf_unlearn import UnlearningArguments, UnlearningTrainer


@pytest.fixture(scope="module")
def memorised():
    model = tiny_bert()
    overfit(model, token_dataset(128, 0))
    return model.state_dict()


def _run(tmp_path, state, method, **kw):
    model = tiny_bert()
    model.load_state_dict(state)
    train = token_dataset(128, 0)
    args = UnlearningArguments(str(tmp_path / method), method=method, per_device_train_batch_size=8, report_to=[],
                               logging_steps=2, disable_tqdm=True, seed=0, **kw)
    trainer = UnlearningTrainer(model=model, args=args, forget_dataset=train.select(range(16)),
                                retain_dataset=train.select(range(16, 128)), validation_dataset=token_dataset(64, 1),
                                data_collator=default_data_collator)
    return trainer


def test_gradient_ascent_is_unbounded_but_nabla_tau_stops_near_tau(tmp_path, memorised):
    ascent = _run(tmp_path, memorised, "gradient_ascent", forget_epochs=30, learning_rate=2e-3)
    ascent.train()
    nabla = _run(tmp_path, memorised, "nabla_tau", forget_epochs=30, learning_rate=2e-3)
    nabla.train()
    tau = nabla.tau
    ascent_loss, _ = mean_loss_and_acc(ascent.model, ascent.forget_dataset)
    nabla_loss, _ = mean_loss_and_acc(nabla.model, nabla.forget_dataset)
    assert ascent_loss > 2 * tau  # far past the held-out loss: over-unlearned, itself a membership signal
    assert nabla_loss < 1.3 * tau  # the push stops once the forget loss reaches τ
    assert ascent.ref_model is None and ascent.tau is None  # no τ and no reference needed


@pytest.mark.parametrize("method", ["finetune", "grad_diff", "random_labels", "npo"])
def test_each_method_runs_and_logs_the_same_keys(tmp_path, memorised, method):
    trainer = _run(tmp_path, memorised, method, forget_epochs=2)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    after = list(trainer.model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
    logs = [log for log in trainer.state.log_history if "loss" in log]
    assert "retain_loss" in logs[-1]
    if method != "finetune":
        assert "forget_loss" in logs[-1]
    assert "alpha" not in logs[-1] and "tau" not in logs[-1]  # only ∇τ has α and τ


def test_finetune_runs_twice_the_forget_epochs(tmp_path, memorised):
    nabla = _run(tmp_path, memorised, "nabla_tau", forget_push="ascent", length_multiplier=1)  # the paper's length
    finetune = _run(tmp_path, memorised, "finetune")
    assert finetune.args.forget_epochs == 2 * nabla.args.forget_epochs


def test_reference_model_only_for_npo(tmp_path, memorised):
    nabla = _run(tmp_path, memorised, "nabla_tau")
    assert nabla.ref_model is None
    npo = _run(tmp_path, memorised, "npo")
    assert npo.ref_model is not None and not npo.ref_model.training
    assert all(not p.requires_grad for p in npo.ref_model.parameters())
    n_params = sum(p.numel() for p in npo.model.parameters())
    assert sum(p.numel() for p in npo.ref_model.parameters()) == n_params
    # the reference is a frozen copy: the model moves, the reference does not
    ref_before = [p.clone() for p in npo.ref_model.parameters()]
    npo.train()
    assert all(torch.equal(a, b) for a, b in zip(ref_before, npo.ref_model.parameters()))


def test_npo_first_step_loss_matches_formula(tmp_path, memorised):
    npo = _run(tmp_path, memorised, "npo", retain_weight=0.0)
    npo.tau = None
    npo.state.max_steps = 1
    batch = next(iter(npo.get_train_dataloader()))
    npo.model.eval()  # no dropout: model and reference agree exactly
    loss = npo.compute_loss(npo.model, batch)
    # at the start θ = reference, so L_ref − L_θ = 0 and the loss is (2/β)·log 2
    assert loss.item() == pytest.approx(2 / 0.1 * torch.log(torch.tensor(2.0)).item(), rel=1e-5)


def test_random_labels_refuses_causal_lm(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=60, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    data = token_dataset(16, 0).map(lambda r: {"labels": r["input_ids"]})
    args = UnlearningArguments(str(tmp_path / "x"), method="random_labels", report_to=[])
    with pytest.raises(ValueError, match="does not apply to causal LMs"):
        UnlearningTrainer(model=model, args=args, forget_dataset=data.select(range(4)),
                          retain_dataset=data.select(range(4, 16)), validation_dataset=data)
