"""Causal LMs: the per-sample loss equals transformers' loss per row, NPO on the sequence scale, the KL retain
option, and the per-batch fusion decision (both paths give the same losses and gradients)."""

import math

import datasets
import pytest
import torch
from helpers import tiny_bert, token_dataset
from transformers import LlamaConfig, LlamaForCausalLM, default_data_collator

from hf_unlearn import UnlearningArguments, UnlearningTrainer
from hf_unlearn.data.collators import CausalLMCollator
from hf_unlearn.losses import causal_lm_loss, per_sample_kl, supervised_token_counts
from hf_unlearn.methods import get_method, npo_loss
from hf_unlearn.methods.base import ObjectiveInputs

VOCAB = 50


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                        pad_token_id=0, bos_token_id=1, eos_token_id=2))


def qa_rows(n: int, seed: int, lengths=(6, 14)) -> datasets.Dataset:
    """Rows of varying length whose first 3 tokens are an unsupervised prompt."""
    g = torch.Generator().manual_seed(seed)
    rows = {"input_ids": [], "attention_mask": [], "labels": []}
    for _ in range(n):
        length = int(torch.randint(lengths[0], lengths[1] + 1, (), generator=g))
        ids = torch.randint(3, VOCAB, (length,), generator=g).tolist()
        rows["input_ids"].append(ids)
        rows["attention_mask"].append([1] * length)
        rows["labels"].append([-100] * 3 + ids[3:])
    return datasets.Dataset.from_dict(rows)


def test_causal_lm_loss_equals_transformers_loss_per_row():
    model = tiny_llama().eval()
    rows = qa_rows(6, 0)
    batch = CausalLMCollator(pad_token_id=0)([rows[i] for i in range(len(rows))])
    with torch.no_grad():
        losses = causal_lm_loss(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
                                batch["labels"])
        for i in range(len(rows)):
            row = torch.tensor([rows[i]["input_ids"]])
            reference = model(input_ids=row, labels=torch.tensor([rows[i]["labels"]])).loss
            assert losses[i].item() == pytest.approx(reference.item(), rel=1e-5)
    counts = supervised_token_counts(batch["labels"])
    assert counts.tolist() == [len(r) - 3 for r in rows["input_ids"]]


def test_causal_lm_loss_does_not_copy_fp32_logits_and_upcasts_half():
    logits = torch.randn(2, 5, 7, requires_grad=True)
    labels = torch.tensor([[1, 2, 3, -100, -100], [4, 5, 6, 1, 2]])
    loss = causal_lm_loss(logits, labels)
    # the only graph input derived from the logits is a view of them (no shifted copy)
    node, seen = loss.grad_fn, []
    stack = [node]
    while stack:
        n = stack.pop()
        if n is None:
            continue
        seen.append(type(n).__name__)
        stack += [f for f, _ in n.next_functions]
    assert not any(name.startswith(("Slice", "Clone", "Copy")) for name in seen), seen
    half = causal_lm_loss(logits.detach().half(), labels)
    assert half.dtype == torch.float32
    assert torch.allclose(half, loss.detach(), atol=1e-2)


def test_npo_uses_sequence_log_probabilities_by_hand():
    # two sequences of 2 and 10 supervised tokens with token-mean losses; log π = −n·L
    forget, ref, counts, beta = torch.tensor([1.0, 0.5]), torch.tensor([1.2, 0.3]), torch.tensor([2, 10]), 0.1
    log_ratio = [-(2 * 1.0) + 2 * 1.2, -(10 * 0.5) + 10 * 0.3]  # log π_θ − log π_ref per sequence: 0.4, −2.0
    expected = (2 / beta) * sum(math.log1p(math.exp(beta * r)) for r in log_ratio) / 2
    assert npo_loss(forget, ref, beta, counts).item() == pytest.approx(expected, rel=1e-6)
    objective = get_method("npo").objective(ObjectiveInputs(forget, torch.tensor([2.0]), ref_forget_losses=ref,
                                                            forget_token_counts=counts,
                                                            hparams={"npo_beta": beta, "retain_weight": 0.5}))
    assert objective.item() == pytest.approx(expected + 0.5 * 2.0, rel=1e-6)
    # the token-mean scale (counts = 1) gives a different, smaller push: the paper's scale matters
    assert npo_loss(forget, ref, beta).item() != pytest.approx(expected, rel=1e-3)


def test_per_sample_kl_by_hand():
    logits, ref = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])  # p = (½, ½), q = (¾, ¼)
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert per_sample_kl(logits, ref, torch.tensor([0]), "single_label").item() == pytest.approx(expected, rel=1e-5)
    lm = torch.randn(2, 4, 6)
    labels = torch.tensor([[-100, 1, 2, 3], [-100, -100, 4, -100]])
    assert torch.allclose(per_sample_kl(lm, lm, labels, "causal_lm"), torch.zeros(2), atol=1e-6)
    ref_lm = lm.clone()
    ref_lm[1, 1] += torch.tensor([3.0, 0, 0, 0, 0, 0])  # the only supervised position of row 1 (predicts token 4)
    kl = per_sample_kl(lm, ref_lm, labels, "causal_lm")
    assert kl[0].item() == pytest.approx(0.0, abs=1e-6) and kl[1].item() > 0


def _trainer(tmp_path, **kw):
    data = qa_rows(48, 1)
    args = UnlearningArguments(str(tmp_path / "out"), per_device_train_batch_size=4, report_to=[], logging_steps=1,
                               disable_tqdm=True, seed=0, max_steps=2, **kw)
    return UnlearningTrainer(model=tiny_llama(), args=args, forget_dataset=data.select(range(8)),
                             retain_dataset=data.select(range(8, 40)), validation_dataset=data.select(range(40, 48)),
                             data_collator=CausalLMCollator(pad_token_id=0))


def test_grad_diff_kl_retain_builds_the_reference_only_then(tmp_path):
    assert _trainer(tmp_path, method="grad_diff").ref_model is None
    trainer = _trainer(tmp_path, method="grad_diff", retain_loss="kl", retain_weight=1.0)
    assert trainer.ref_model is not None
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.eval()
    forget_only = _trainer(tmp_path, method="gradient_ascent")
    forget_only.model.load_state_dict(trainer.model.state_dict())
    forget_only.model.eval()
    # at the start θ = original: the KL term is 0, so the loss is gradient ascent's
    ascent = forget_only.compute_loss(forget_only.model, {k: v for k, v in batch.items()})
    assert trainer.compute_loss(trainer.model, batch).item() == pytest.approx(ascent.item(), rel=1e-5)
    trainer.train()
    assert trainer.state.log_history[-2]["retain_loss"] > 0  # the model moved away from the original
    with pytest.raises(ValueError, match="applies to grad_diff, nabla_tau, nabla_tau_paper, npo, not "
                                         "method='finetune'"):
        _trainer(tmp_path, method="finetune", retain_loss="kl")


def test_fusion_is_decided_by_task(tmp_path):
    # causal LMs: two passes by default (leaner: full-vocabulary logits per position); fusion on request
    assert "forget" in next(iter(_trainer(tmp_path).get_train_dataloader()))
    assert "num_forget" in next(iter(_trainer(tmp_path, fuse_forget_retain=True).get_train_dataloader()))
    # classifiers: one pass whenever the collator can
    rows = token_dataset(32, 0)
    bert = UnlearningTrainer(model=tiny_bert(), args=UnlearningArguments(str(tmp_path / "b"), report_to=[]),
                             forget_dataset=rows.select(range(8)), retain_dataset=rows.select(range(8, 24)),
                             validation_dataset=rows.select(range(24, 32)), data_collator=default_data_collator)
    assert "num_forget" in next(iter(bert.get_train_dataloader()))


@pytest.mark.parametrize("method", ["nabla_tau", "npo"])
def test_causal_lm_fused_and_two_pass_agree(tmp_path, method):
    results = []
    for fused in (True, False):
        trainer = _trainer(tmp_path, method=method, fuse_forget_retain=fused)
        trainer.tau, trainer.state.max_steps = 6.0, 10
        batch = next(iter(trainer.get_train_dataloader()))
        assert ("num_forget" in batch) == fused
        trainer.model.train()
        loss = trainer.compute_loss(trainer.model, batch)
        loss.backward()
        results.append((loss.item(), [p.grad.clone() for p in trainer.model.parameters()]))
    (fused_loss, fused_grads), (two_loss, two_grads) = results
    assert fused_loss == pytest.approx(two_loss, rel=1e-5)
    for a, b in zip(fused_grads, two_grads):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_causal_lm_keeps_the_papers_ascent_and_refuses_relabel(tmp_path):
    args = _trainer(tmp_path).args
    assert (args.forget_push, args.tau_target, args.alpha_schedule, args.learning_rate) == (
        "ascent", "mean", "linear", 3e-4)
    with pytest.raises(ValueError, match="forget_push='relabel' needs single-label classification logits, not "
                                         "task='causal_lm'; use forget_push='ascent'"):
        _trainer(tmp_path, forget_push="relabel")
