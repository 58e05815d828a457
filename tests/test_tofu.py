"""TOFU metrics on a tiny Llama: ROUGE-L and truth ratio by hand, forget quality's KS test, metrics moving the right
way after training on the forget answers, and the report / JSON / markdown / card carrying them."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import load_dataset
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from hf_unlearn.audit import TofuData, UnlearningReport, audit_model, tofu_metrics, truth_ratios
from hf_unlearn.audit.tofu import (
    answer_nll,
    forget_quality,
    forget_truth_ratio_score,
    model_utility,
    retain_truth_ratio_score,
    rouge_l_recall,
    tofu_markdown,
    truth_ratio_from_nll,
)
from hf_unlearn.data import CausalLMCollator, tokenize_qa
from hf_unlearn.hub.card import _eval_results

SAMPLE = Path(__file__).resolve().parents[1] / "hf_unlearn" / "data" / "tofu_sample"


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """The built-in byte-level tokenizer of tiny causal-LM jobs (``tokenizer: bytes``; one definition, imported)."""
    from hf_unlearn.pipeline.models import byte_tokenizer as builtin_tokenizer

    return builtin_tokenizer()


@pytest.fixture(scope="module")
def setup():
    tokenizer = byte_tokenizer()
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                         max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id))
    forget = load_dataset("json", data_files=str(SAMPLE / "forget10.json"), split="train").select(range(10))
    retain = load_dataset("json", data_files=str(SAMPLE / "retain90.json"), split="train")
    return model, tokenizer, forget, retain.select(range(10)), retain.select(range(60, 80))


def test_rouge_l_recall_by_hand():
    assert rouge_l_recall("The cat sat on the mat.", "the cat is on the mat") == pytest.approx(5 / 6)
    assert rouge_l_recall("mat the", "the mat") == pytest.approx(1 / 2)
    assert rouge_l_recall("", "anything") == 0.0 and rouge_l_recall("x", "") == 0.0


def test_metrics_equal_the_peers_formulas_on_the_same_per_sample_numbers():
    """open-unlearning d3d7cf9 (src/evals/metrics/memorization.py, privacy.py, utility.py), by hand on fixed
    per-row token-mean NLLs: correct = exp(−avg_loss(paraphrased)); wrong = exp(−mean_k avg_loss(perturbed_k));
    tr = wrong / (correct + 1e-10); forget: mean(min(tr, 1/(tr + 1e-10))); retain: mean(max(0, 1 − tr));
    forget quality: ks_2samp(unlearned tr, retrained tr).pvalue; model utility: scipy.stats.hmean."""
    from scipy import stats

    rng = np.random.default_rng(0)
    para = rng.uniform(0.2, 3.0, 40)
    pert = rng.uniform(0.2, 3.0, (40, 5))
    para_retrained, pert_retrained = rng.uniform(1.0, 3.0, 40), rng.uniform(1.0, 3.0, (40, 5))
    correct, wrong = np.exp(-para), np.exp(-pert.mean(axis=1))
    peer_tr = wrong / (correct + 1e-10)
    ours = truth_ratio_from_nll(para, pert)
    np.testing.assert_allclose(ours, peer_tr, rtol=1e-12)
    np.testing.assert_allclose(truth_ratio_from_nll(para, pert.mean(axis=1)), peer_tr, rtol=1e-12)
    assert forget_truth_ratio_score(ours) == pytest.approx(np.mean(np.minimum(peer_tr, 1 / (peer_tr + 1e-10))))
    assert retain_truth_ratio_score(ours) == pytest.approx(np.mean(np.maximum(0, 1 - peer_tr)))
    retrained_tr = np.exp(-pert_retrained.mean(axis=1)) / (np.exp(-para_retrained) + 1e-10)
    p, d = forget_quality(ours, truth_ratio_from_nll(para_retrained, pert_retrained))
    peer = stats.ks_2samp(peer_tr, retrained_tr)
    assert p == pytest.approx(peer.pvalue, rel=1e-12) and d == pytest.approx(peer.statistic)
    values = [0.61, 0.42, 0.37]
    assert model_utility(values) == pytest.approx(stats.hmean(values), rel=1e-12)
    assert model_utility([0.5, 0.0, 0.3]) == 0.0 and model_utility([0.5, None]) == pytest.approx(0.5)
    # answer probability: mean over rows of exp(−avg_loss), the peer's `probability` metric
    assert float(np.mean(np.exp(-para))) == pytest.approx(np.mean(correct))


def test_rouge_l_is_rouge_scores_recall_with_stemming():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    pairs = [("The cats were sitting on mats", "the cat sat on the mat"), ("", "x y"), ("Answer: 1987!", "1987")]
    for prediction, reference in pairs:
        assert rouge_l_recall(prediction, reference) == scorer.score(reference, prediction)["rougeL"].recall
    assert rouge_l_recall("the cats sitting", "the cat sits") == pytest.approx(1.0)  # stems match


def test_truth_ratio_by_hand(setup):
    model, tokenizer, forget, _, _ = setup
    rows = forget.select(range(3))
    ratios = truth_ratios(model, tokenizer, rows, max_length=512)
    for i in range(3):
        q, para, perturbed = rows[i]["question"], rows[i]["paraphrased_answer"], rows[i]["perturbed_answer"]
        l_para = answer_nll(model, tokenizer, [q], [para], max_length=512)[0]
        l_pert = answer_nll(model, tokenizer, [q] * len(perturbed), perturbed, max_length=512)
        assert ratios[i] == pytest.approx(math.exp(-np.mean(l_pert)) / (math.exp(-l_para) + 1e-10), rel=1e-6)
    # answer_nll is the token-mean NLL of the answer tokens, as transformers computes it
    row = tokenize_qa(rows.select(range(1)), tokenizer, max_length=512)[0]
    batch = CausalLMCollator(tokenizer)([{k: row[k] for k in ("input_ids", "attention_mask", "labels")}])
    with torch.no_grad():
        expected = model(**batch).loss.item()
    assert answer_nll(model, tokenizer, [rows[0]["question"]], [rows[0]["answer"]], max_length=512)[0] == \
        pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="paraphrased_answer"):
        truth_ratios(model, tokenizer, setup[3])


def test_metrics_move_the_right_way_and_forget_quality(setup):
    model, tokenizer, forget, retain, _ = setup
    data = TofuData(forget=forget, retain=retain, max_new_tokens=8, max_length=512)
    before = tofu_metrics(model, tokenizer, data)
    same = tofu_metrics(model, tokenizer, TofuData(forget=forget, retrained=model, max_new_tokens=4, max_length=512))
    assert same["forget_quality"] == pytest.approx(1.0)  # identical truth ratios: indistinguishable
    trained = LlamaForCausalLM(model.config)
    trained.load_state_dict(model.state_dict())
    rows = tokenize_qa(forget.map(lambda r: {"answer": r["paraphrased_answer"]}), tokenizer, max_length=512)
    batch = CausalLMCollator(tokenizer)([{k: r[k] for k in ("input_ids", "attention_mask", "labels")} for r in rows])
    optim = torch.optim.AdamW(trained.parameters(), lr=3e-3)
    for _ in range(30):  # learn the paraphrased (true) answers of the forget rows
        optim.zero_grad()
        trained(**batch).loss.backward()
        optim.step()
    after = tofu_metrics(trained, tokenizer, TofuData(forget=forget, retain=retain, retrained=model,
                                                      max_new_tokens=8, max_length=512))
    assert after["forget_truth_ratio"] < before["forget_truth_ratio"]  # prefers the true answer now
    assert after["forget_answer_prob"] > before["forget_answer_prob"]
    assert after["forget_quality"] < 0.05  # its truth ratios are far from the untrained ("retrained") model's
    assert 0 <= after["model_utility"] <= 1 and after["n_forget"] == 10 and after["n_retain"] == 10


def test_report_json_markdown_and_card_carry_tofu(setup, tmp_path):
    model, tokenizer, forget, retain, test = setup
    tok = lambda ds: tokenize_qa(ds, tokenizer, max_length=512)  # noqa: E731
    report = audit_model(model, forget=tok(forget), test=tok(test.select(range(10))), data_collator=CausalLMCollator(
        tokenizer), tokenizer=tokenizer, tofu=TofuData(forget=forget, retain=retain, retrained=model,
                                                       max_new_tokens=4, max_length=512))
    assert report.tofu["forget_quality"] == pytest.approx(1.0)
    loaded = UnlearningReport.from_json(report.to_json(tmp_path / "audit.json"))
    assert loaded.tofu == report.tofu
    assert "forget quality" in report.to_markdown()
    names = {r.metric_name for r in _eval_results(report, "text-generation", None)}
    assert {"TOFU forget quality (KS p-value vs retrained)", "TOFU model utility"} <= names
    assert "| TOFU metric | a | b |" in tofu_markdown({"a": report.tofu, "b": report.tofu})
    text = (tmp_path / "audit.json").read_text()
    assert all(row["answer"] not in text and row["question"] not in text for row in forget)
