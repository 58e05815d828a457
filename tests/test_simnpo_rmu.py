"""SimNPO and RMU: their objectives by hand on known per-sample inputs, the direction they push, what they build
(SimNPO no reference; RMU a reference run on retain rows only, and only its chosen MLPs trainable), and the pooled
token mean."""

import math

import pytest
import torch
from test_causal_lm import qa_rows, tiny_llama

from hf_unlearn import UnlearningArguments, UnlearningTrainer
from hf_unlearn.data.collators import CausalLMCollator
from hf_unlearn.hidden import decoder_layers, resolve_layer, run_until
from hf_unlearn.methods import METHODS, ObjectiveInputs, get_method, simnpo_loss
from hf_unlearn.methods.rmu import activation_loss, control_vector


def test_simnpo_value_by_hand():
    losses, beta, delta = torch.tensor([0.5, 2.0, 4.0]), 4.5, 1.0
    # −(2/β) · mean log σ(β(L − δ))
    expected = -(2 / beta) * sum(math.log(1 / (1 + math.exp(-beta * (v - delta)))) for v in losses.tolist()) / 3
    assert simnpo_loss(losses, beta, delta).item() == pytest.approx(expected, rel=1e-6)
    hp = {"simnpo_beta": beta, "simnpo_delta": delta, "retain_weight": 0.125}
    retain = torch.tensor([1.0, 3.0])
    total = get_method("simnpo").objective(ObjectiveInputs(losses, retain, hparams=hp))
    assert total.item() == pytest.approx(expected + 0.125 * 2.0, rel=1e-6)


def test_simnpo_pushes_forget_loss_up_and_fades():
    losses = torch.tensor([0.2, 1.0, 6.0], requires_grad=True)
    simnpo_loss(losses, beta=4.5).backward()
    grad = losses.grad
    assert (grad < 0).all()  # minimising raises every forget loss
    assert abs(grad[2]) < 1e-3 * abs(grad[0])  # a sample far above δ is hardly pushed any more (bounded objective)
    assert simnpo_loss(torch.tensor([50.0]), beta=4.5).item() == pytest.approx(0.0, abs=1e-6)


def test_registry_and_what_each_builds(tmp_path):
    assert {"simnpo", "rmu"} <= set(METHODS)
    assert not get_method("simnpo").needs_reference and get_method("rmu").needs_reference
    assert _trainer(tmp_path, "simnpo").ref_model is None
    with pytest.raises(ValueError, match="simnpo_beta=0 must be > 0"):
        UnlearningArguments(str(tmp_path), method="simnpo", method_kwargs={"simnpo_beta": 0})
    with pytest.raises(ValueError, match="hidden_layer=5 is out of range: the model has 2 decoder layers"):
        _trainer(tmp_path, "rmu", method_kwargs={"hidden_layer": 5})


def test_rmu_activation_loss_and_control_vector_by_hand():
    h = torch.tensor([[[1.0, 2.0], [3.0, 5.0], [9.0, 9.0]]])  # one row, 3 tokens, H = 2
    target = torch.tensor([1.0, 1.0])
    mask = torch.tensor([[True, True, False]])  # the third token is not supervised
    # token 0: ((0)² + (1)²)/2 = 0.5; token 1: (2² + 4²)/2 = 10; mean over the row's 2 tokens = 5.25
    assert activation_loss(h, target, mask).item() == pytest.approx(5.25)
    u = control_vector(64, 6.5, seed=3)
    assert u.norm().item() == pytest.approx(6.5, rel=1e-6) and (u >= 0).all()
    assert torch.equal(u, control_vector(64, 6.5, seed=3)) and not torch.equal(u, control_vector(64, 6.5, seed=4))


def _trainer(tmp_path, method, steps=2, learning_rate=5e-3, **kw):
    data = qa_rows(48, 0)
    args = UnlearningArguments(str(tmp_path / method), method=method, per_device_train_batch_size=4,
                               learning_rate=learning_rate, report_to=[], disable_tqdm=True, seed=0, max_steps=steps,
                               logging_steps=1, save_strategy="no", **kw)
    return UnlearningTrainer(model=tiny_llama(), args=args, forget_dataset=data.select(range(8)),
                             retain_dataset=data.select(range(8, 40)), validation_dataset=data.select(range(40, 48)),
                             data_collator=CausalLMCollator(pad_token_id=0))


def test_rmu_trains_only_its_mlps_and_steers_forget_activations(tmp_path):
    hp = {"hidden_layer": 1, "rmu_steering": 3.0, "rmu_alpha": 10.0}
    trainer = _trainer(tmp_path, "rmu", steps=20, learning_rate=3e-2, method_kwargs=hp)
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable == ["model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.down_proj.weight"]
    assert resolve_layer(trainer.model, None) == 0  # layer 7 of 32 scaled to 2 layers
    batch = next(iter(trainer.get_train_dataloader()))
    forget, retain = batch["forget"], batch["retain"]
    target = control_vector(32, 3.0, seed=0)

    def distances():
        with torch.no_grad():
            f = activation_loss(run_until(trainer.model, 1, forget), target, forget["labels"] != -100)
            r = activation_loss(run_until(trainer.model, 1, retain), run_until(trainer.ref_model, 1, retain),
                                retain["labels"] != -100)
        return f.item(), r.item()

    # the objective by hand at step 0 (θ = frozen: the retain term is 0)
    calls = []
    _, layers = decoder_layers(trainer.ref_model)
    handle = layers[0].register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, batch)
    handle.remove()
    before = distances()
    assert before[1] == pytest.approx(0.0, abs=1e-10)
    assert loss.item() == pytest.approx(before[0], rel=1e-4)
    assert calls == [len(retain["input_ids"])]  # the reference ran once, on the retain rows only
    frozen = trainer.model.model.layers[1].self_attn.q_proj.weight.clone()
    trainer.train()
    after = distances()
    assert after[0] < 0.9 * before[0]  # forget activations moved towards c·u
    assert after[1] < 0.1 * after[0]  # retain activations stayed near the frozen model's
    assert torch.equal(frozen, trainer.model.model.layers[1].self_attn.q_proj.weight)


def test_pooled_token_mean_by_hand(tmp_path):
    forget, retain = torch.tensor([1.0, 3.0]), torch.tensor([2.0, 4.0])
    counts_f, counts_r = torch.tensor([1, 3]), torch.tensor([3, 1])
    x = ObjectiveInputs(forget, retain, hparams={"retain_weight": 1.0}, forget_token_counts=counts_f,
                        retain_token_counts=counts_r, pooled=True)
    pooled = -(1 * 1.0 + 3 * 3.0) / 4 + (3 * 2.0 + 1 * 4.0) / 4  # −2.5 + 2.5
    assert get_method("grad_diff").objective(x).item() == pytest.approx(pooled)
    x.pooled = False
    assert get_method("grad_diff").objective(x).item() == pytest.approx(-2.0 + 3.0)
    # the trainer passes both halves' token counts: its pooled loss is Σ n_i·L_i / Σ n_i of its own rows
    trainer = _trainer(tmp_path, "grad_diff", token_mean="pooled")
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch).item()
        parts = []
        for half in ("forget", "retain"):
            b = batch[half]
            out = trainer.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"])
            parts.append(out.loss.item())  # transformers' own loss: all tokens of the batch pooled
    assert loss == pytest.approx(-parts[0] + parts[1], abs=1e-5)
    with pytest.raises(ValueError, match="token_mean='tokens'; choose 'row' or 'pooled'"):
        UnlearningArguments(str(tmp_path), token_mean="tokens")
