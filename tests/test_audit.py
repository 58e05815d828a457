"""Behavioural tests of hf_unlearn.audit: attacks, statistics, metrics, reports, plots, comparison, callback."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from datasets import Dataset
from PIL import Image
from sklearn.metrics import accuracy_score, roc_curve
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    LlamaConfig,
    LlamaForCausalLM,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    ViTConfig,
    ViTForImageClassification,
)

from hf_unlearn.audit import (
    AuditCallback,
    MIAMetric,
    MIAResult,
    ThresholdAttackMetric,
    UnlearningAuditMetric,
    UnlearningReport,
    audit_model,
    compare,
    lm_attacks,
    mia,
    sample_stats,
    threshold_attack,
)
from hf_unlearn.audit._batching import pad_collate
from hf_unlearn.audit.attacks import _best_threshold, tpr_at_fpr

SECRET_TEXT = "ZQX-forget-secret-text"
SECRET_ID = "forget-id-7Q3KX"
SEQ = 16


# ----------------------------------------------------------------------------- helpers and fixtures
def tiny_bert(num_labels: int = 3, **kwargs) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=num_labels,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        **kwargs,
    )
    return BertForSequenceClassification(config)


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=100,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config)


def cls_data(n: int, seed: int, secret: bool = False) -> Dataset:
    """Random-token classification rows; with ``secret`` the rows carry text and string-id columns."""
    g = np.random.default_rng(seed)
    data = {
        "input_ids": g.integers(1, 100, (n, SEQ)).tolist(),
        "attention_mask": np.ones((n, SEQ), dtype=int).tolist(),
        "labels": g.integers(0, 3, n).tolist(),
    }
    if secret:
        data["text"] = [f"{SECRET_TEXT} {i}" for i in range(n)]
        data["id"] = [f"{SECRET_ID}-{i}" for i in range(n)]
    return Dataset.from_dict(data)


def lm_rows(n: int, seed: int) -> list[dict[str, list[int]]]:
    """Random sequences of varying length (8..16 tokens), labels = input_ids."""
    g = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        ids = g.integers(1, 100, int(g.integers(8, SEQ + 1))).tolist()
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": list(ids)})
    return rows


def overfit(model: torch.nn.Module, batch: dict[str, torch.Tensor], steps: int, lr: float) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """Tiny models run fastest on one thread, and far faster than two when the CPU is shared."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def bert_runs():
    """A tiny BERT before and after memorising 32 random-label examples, with their audit reports."""
    forget, test, retain = cls_data(32, 1, secret=True), cls_data(40, 2), cls_data(24, 3)
    model = tiny_bert()
    before = audit_model(model, forget=forget, test=test, retain=retain)
    batch = {"input_ids": torch.tensor(forget["input_ids"]), "labels": torch.tensor(forget["labels"])}
    overfit(model, batch, steps=100, lr=3e-3)
    after = audit_model(model, forget=forget, test=test, retain=retain)
    return {"model": model, "forget": forget, "test": test, "before": before, "after": after}


@pytest.fixture(scope="module")
def llama_run():
    forget, test = lm_rows(32, 1), lm_rows(32, 2)
    model = tiny_llama()
    overfit(model, pad_collate([dict(r) for r in forget]), steps=60, lr=1e-2)
    return {"model": model, "forget": forget, "test": test}


# ----------------------------------------------------------------------------- attacks
def test_identical_distributions_are_at_chance():
    g = np.random.default_rng(0)
    members, nonmembers = g.normal(size=2000), g.normal(size=2500)
    result = mia(members, nonmembers)
    assert abs(result.accuracy - 0.5) <= 0.05
    assert abs(result.auc - 0.5) <= 0.05
    assert result.n_per_class == 2000
    assert abs(threshold_attack(members, nonmembers).accuracy - 0.5) <= 0.05


def test_separated_distributions_are_detected_and_auc_is_not_folded():
    g = np.random.default_rng(0)
    low, high = g.normal(0.0, 0.5, 300), g.normal(4.0, 0.5, 300)
    memorised = mia(low, high)  # members have lower loss: memorised
    assert memorised.accuracy > 0.95 and memorised.auc > 0.95
    over_unlearned = mia(high, low)  # members have *higher* loss: accuracy high, AUC below 0.5
    assert over_unlearned.accuracy > 0.95 and over_unlearned.auc < 0.05
    assert threshold_attack(low, high).accuracy > 0.95
    assert threshold_attack(high, low).accuracy > 0.95  # direction learned
    assert threshold_attack(high, low, higher_is_member=False).accuracy == pytest.approx(0.5)  # fixed: no rule helps
    assert mia(-low, -high, higher_is_member=True).auc > 0.95


def test_mia_is_scale_invariant():
    g = np.random.default_rng(1)
    a, b = g.normal(0, 1, 40), g.normal(1.5, 1, 40)
    assert mia(a * 1e-3, b * 1e-3).accuracy == pytest.approx(mia(a, b).accuracy)


def test_unbalanced_inputs_are_balanced_and_seeded():
    g = np.random.default_rng(0)
    members, nonmembers = g.normal(size=500), g.normal(0.3, 1, 37)
    result = mia(members, nonmembers, seed=3)
    assert result.n_per_class == 37
    assert result == mia(members, nonmembers, seed=3)
    assert threshold_attack(members, nonmembers).n_per_class == 37


def test_attack_input_errors():
    with pytest.raises(ValueError, match="at least 10 samples per class"):
        mia(np.arange(9.0), np.arange(50.0))
    with pytest.raises(ValueError, match="at least 10"):
        threshold_attack(np.arange(50.0), np.arange(3.0))
    with pytest.raises(ValueError, match="NaN/inf"):
        mia(np.r_[np.arange(20.0), np.nan], np.arange(20.0))
    with pytest.raises(ValueError, match="NaN/inf"):
        mia(np.arange(20.0), np.r_[np.arange(20.0), np.inf])


def test_threshold_rule_and_low_fpr_tprs_match_sklearn_roc_curve():
    # Fixed scores with ties: the fitted rule is the best point of sklearn's ROC curve, in either direction.
    x = np.array([0.1, 0.2, 0.2, 0.3, 0.5, 0.5, 0.7, 0.9, 0.2, 0.4, 0.5, 0.6, 0.6, 0.8, 0.9, 1.0])
    y = np.array([1] * 8 + [0] * 8)
    for direction, score in (("<", -x), (">", x)):
        fpr, tpr, _ = roc_curve(y, score, drop_intermediate=False)
        t, d = _best_threshold(x, y, direction)
        assert d == direction
        assert accuracy_score(y, x < t if d == "<" else x > t) == pytest.approx(np.max((tpr + 1 - fpr) / 2))
    assert _best_threshold(x, y) == (0.35, "<")
    # TPR at low FPR: 200 non-members; 10 members above them all, 10 between the top two, 30 in the middle.
    nonmembers = np.arange(200) / 200
    score = np.r_[[2.0] * 10, [0.9925] * 10, [0.5] * 30, nonmembers]
    y = np.r_[np.ones(50, dtype=np.int64), np.zeros(200, dtype=np.int64)]
    fpr, tpr, _ = roc_curve(y, score)
    for target, expected in ((0.01, 0.4), (0.001, 0.2)):
        assert tpr_at_fpr(y, score, target) == expected == tpr[fpr <= target].max()


# ----------------------------------------------------------------------------- evaluate metrics
def test_metrics_compute_offline_and_match_functions():
    g = np.random.default_rng(0)
    members, nonmembers = g.normal(0, 1, 60), g.normal(0.8, 1, 90)
    scores = [*members, *nonmembers]
    membership = [1] * 60 + [0] * 90
    got = MIAMetric().compute(scores=scores, membership=membership, seed=2)
    assert got == mia(members, nonmembers, seed=2).to_dict()
    got = ThresholdAttackMetric().compute(scores=scores, membership=membership)
    assert got == threshold_attack(members, nonmembers).to_dict()
    correct = [1.0] * 45 + [0.0] * 15 + [1.0] * 30 + [0.0] * 60
    summary = UnlearningAuditMetric().compute(scores=scores, membership=membership, correct=correct)
    assert summary["forget_accuracy"] == pytest.approx(0.75)
    assert summary["test_accuracy"] == pytest.approx(1 / 3)
    assert summary["mia_accuracy"] == pytest.approx(mia(members, nonmembers).accuracy)
    with pytest.raises(ValueError, match="membership"):
        MIAMetric().compute(scores=scores, membership=[2] * len(scores))


# ----------------------------------------------------------------------------- statistics
def test_sample_stats_classification_drops_text_columns_and_restores_mode():
    model = tiny_bert()
    model.train()
    data = cls_data(20, 0, secret=True)
    stats = sample_stats(model, data, batch_size=8)
    assert model.training
    assert set(stats) == {"loss", "entropy", "confidence", "correct"}
    assert all(v.shape == (20,) for v in stats.values())
    with torch.no_grad():
        model.eval()
        logits = model(input_ids=torch.tensor(data["input_ids"])).logits
    expected = (logits.argmax(-1) == torch.tensor(data["labels"])).numpy()
    np.testing.assert_array_equal(stats["correct"], expected.astype(float))
    np.testing.assert_allclose(stats["confidence"], logits.softmax(-1).max(-1).values.numpy(), rtol=1e-5)
    assert np.all((stats["entropy"] >= 0) & (stats["entropy"] <= math.log(3) + 1e-6))
    np.testing.assert_allclose(sample_stats(model, data, batch_size=3)["loss"], stats["loss"], rtol=1e-5)


def test_sample_stats_multi_label_exact_match():
    model = tiny_bert(num_labels=4, problem_type="multi_label_classification")
    g = np.random.default_rng(0)
    data = Dataset.from_dict(
        {"input_ids": g.integers(1, 100, (12, 8)).tolist(), "labels": g.integers(0, 2, (12, 4)).astype(float).tolist()}
    )
    stats = sample_stats(model, data)
    with torch.no_grad():
        probs = torch.sigmoid(model.eval()(input_ids=torch.tensor(data["input_ids"])).logits)
    expected = ((probs > 0.5) == (torch.tensor(data["labels"]) > 0.5)).all(-1).float().numpy()
    np.testing.assert_array_equal(stats["correct"], expected)


def test_sample_stats_image_classification_torch_dataset():
    torch.manual_seed(0)
    config = ViTConfig(
        image_size=8,
        patch_size=4,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
    )
    model = ViTForImageClassification(config)

    class Images(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 10

        def __getitem__(self, i: int) -> dict:
            return {"pixel_values": torch.randn(3, 8, 8), "labels": i % 3, "path": f"img_{i}.png"}

    stats = sample_stats(model, Images(), batch_size=4)
    assert set(stats) == {"loss", "entropy", "confidence", "correct"} and stats["loss"].shape == (10,)


def test_sample_stats_causal_lm_pads_varying_lengths():
    model = tiny_llama()
    rows = lm_rows(6, 0)
    rows.append({"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [-100, -100, -100]})
    stats = sample_stats(model, rows, batch_size=4)  # a list of dicts is a map-style dataset
    assert {"nll", "min_k", "zlib", "n_tokens"} <= set(stats)
    assert np.isnan(stats["loss"][-1]) and stats["n_tokens"][-1] == 0
    one_by_one = sample_stats(model, rows[:-1], batch_size=1)
    for key in ("loss", "nll", "min_k", "zlib", "entropy", "correct"):
        np.testing.assert_allclose(stats[key][:-1], one_by_one[key], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stats["nll"][:-1], stats["loss"][:-1], rtol=1e-5)
    assert np.all(stats["min_k"][:-1] <= -stats["nll"][:-1] + 1e-6)  # the lowest 20% are below the mean
    np.testing.assert_array_equal(stats["n_tokens"][:-1], [len(r["input_ids"]) - 1 for r in rows[:-1]])


# ----------------------------------------------------------------------------- audits of memorising models
def test_loss_mia_detects_memorisation(bert_runs):
    before, after = bert_runs["before"], bert_runs["after"]
    assert after.forget_accuracy == 1.0 and after.forget_loss < 0.1 < after.test_loss
    assert after.mia_loss.accuracy > 0.65 and after.mia_loss.auc > 0.75
    assert after.mia_threshold.accuracy > 0.7
    assert after.mia_loss.auc > before.mia_loss.auc
    assert (after.n_forget, after.n_test, after.n_retain) == (32, 40, 24)
    assert after.lm_attacks is None


def test_lm_audit_and_attacks(llama_run):
    report = audit_model(llama_run["model"], forget=llama_run["forget"], test=llama_run["test"], batch_size=16)
    assert report.task == "causal_lm"
    assert report.mia_loss.accuracy > 0.9
    assert set(report.lm_attacks) == {"loss_auc", "min_k_auc", "zlib_auc", "n_per_class"}
    assert all(report.lm_attacks[k] > 0.9 for k in ("loss_auc", "min_k_auc", "zlib_auc"))
    assert "Min-K%" in report.to_markdown()
    with pytest.raises(ValueError, match="causal LM"):
        lm_attacks({"loss": np.zeros(20)}, {"loss": np.zeros(20)})


def test_audit_model_sizes_and_errors(bert_runs):
    model, forget, test = bert_runs["model"], bert_runs["forget"], bert_runs["test"]
    report = audit_model(model, forget=forget, test=test, max_samples=12, seed=1)
    assert (report.n_forget, report.n_test, report.max_samples) == (12, 12, 12)
    with pytest.raises(ValueError, match="forget set has 5 usable rows"):
        audit_model(model, forget=forget.select(range(5)), test=test)


# ----------------------------------------------------------------------------- report outputs
def test_report_json_round_trip_and_markdown(bert_runs, tmp_path):
    report = bert_runs["after"]
    loaded = UnlearningReport.from_json(report.to_json(tmp_path / "report.json"))
    assert loaded == report and loaded.forget_losses is None
    assert isinstance(loaded.mia_loss, MIAResult)
    with_losses = UnlearningReport.from_json(report.to_json(tmp_path / "full.json", include_losses=True))
    np.testing.assert_allclose(with_losses.forget_losses, report.forget_losses)
    md = report.to_markdown()
    assert "| split | n | accuracy | mean loss |" in md and "| forget | 32 |" in md and "MIA, loss" in md
    with pytest.raises(FileNotFoundError):
        UnlearningReport.from_json(tmp_path / "missing.json")


def test_plots_are_valid_pngs(bert_runs, tmp_path):
    history = [{"step": 0, "mia_loss": 0.9, "test_accuracy": 0.4}, {"step": 10, "mia_loss": 0.55, "test_accuracy": 0.4}]
    paths = bert_runs["after"].plot(tmp_path / "plots", before=bert_runs["before"], history=history)
    assert [p.name for p in paths] == ["loss_histograms.png", "audit_history.png"]
    for path in paths:
        assert path.stat().st_size > 1000
        with Image.open(path) as img:
            assert img.format == "PNG" and img.size[0] > 100
    no_losses = UnlearningReport.from_dict(bert_runs["after"].to_dict())
    with pytest.raises(ValueError, match="include_losses"):
        no_losses.plot(tmp_path / "x")


def _report(forget_acc: float, test_acc: float, mia_acc: float) -> UnlearningReport:
    r = MIAResult(mia_acc, 0.01, mia_acc, 100)
    return UnlearningReport("single_label", 100, 100, forget_acc, test_acc, 0.5, 0.6, r, r)


def test_compare_verdicts_and_tolerances():
    original, retrained = _report(0.99, 0.90, 0.70), _report(0.89, 0.90, 0.51)
    good, bad = _report(0.90, 0.89, 0.52), _report(0.60, 0.80, 0.60)
    result = compare(original=original, unlearned=good, retrained=retrained, bad=bad)
    outcomes = {(v.model, v.criterion): v.outcome for v in result.verdicts}
    assert outcomes[("unlearned", "mia_loss")] == outcomes[("unlearned", "forget_accuracy")] == "pass"
    assert outcomes[("unlearned", "test_accuracy")] == "pass"
    assert outcomes[("bad", "mia_loss")] == outcomes[("bad", "test_accuracy")] == "fail"
    # The original is the "do nothing" baseline: it states whether it separates, and is never compared with itself.
    assert outcomes[("original", "mia_loss")] == "separates" and ("original", "test_accuracy") not in outcomes
    assert all(v.model != v.reference for v in result.verdicts)
    assert "retrained" not in result.gaps and result.gaps["unlearned"]["mia_loss"] == pytest.approx(0.01)
    md = result.to_markdown()
    assert "| criterion | original | unlearned | retrained | bad |" in md and "FAIL" in md and "PASS" in md
    json.dumps(result.to_dict())
    loose = compare({"original": original, "bad": bad}, tolerances={"mia": 0.2, "test_accuracy_drop": 0.2})
    loose_outcomes = {(v.model, v.criterion): v.outcome for v in loose.verdicts}
    assert loose_outcomes[("bad", "test_accuracy")] == "pass"  # vs the original, within 0.2
    assert loose_outcomes[("bad", "mia_loss")] == "not measurable"  # the original itself is within 0.2 of chance
    with pytest.raises(ValueError, match="Unknown tolerance"):
        compare(original=original, tolerances={"mia_acc": 0.1})
    with pytest.raises(ValueError, match="given twice"):
        compare({"original": good}, original=original)


def test_compare_inconclusive_and_not_measurable_are_never_fail():
    retrained = _report(0.50, 0.90, 0.52)
    noisy = UnlearningReport("single_label", 20, 20, 0.5, 0.9, 0.5, 0.6, MIAResult(0.70, 0.08, 0.7, 20),
                             MIAResult(0.70, 0.08, 0.7, 20))
    separating = compare(original=_report(0.99, 0.90, 0.75), retrained=retrained, noisy=noisy)
    assert separating.outcomes("noisy")["mia_loss"] == "inconclusive"  # std 0.08 > tol 0.03, even though far off
    assert "inconclusive" in separating.to_markdown() and "FAIL" not in separating.to_markdown().split("mia")[0]
    # Doing nothing lands within noise of retraining: the setting measures nothing on that criterion.
    flat = compare(original=_report(0.52, 0.90, 0.53), retrained=retrained, unlearned=_report(0.51, 0.9, 0.52))
    assert flat.outcomes("original")["mia_loss"] == "not measurable"
    assert flat.outcomes("unlearned")["mia_loss"] == flat.outcomes("unlearned")["forget_accuracy"] == "not measurable"
    assert not any(v.passed is False for v in flat.verdicts if v.outcome != "fail")


# ----------------------------------------------------------------------------- callback
class _Recorder(TrainerCallback):
    def __init__(self) -> None:
        self.logs: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs or {}))


@pytest.mark.parametrize("how", ["attach", "init"])
def test_audit_callback_logs_in_a_real_trainer_run(tmp_path, how):
    forget, test = cls_data(24, 1, secret=True), cls_data(24, 2)
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=4,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        logging_steps=100,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )
    recorder = _Recorder()
    callback = AuditCallback(forget, test, every_n_steps=2, max_samples=20, batch_size=16)
    trainer = Trainer(
        model=tiny_bert(),
        args=args,
        train_dataset=forget.remove_columns(["text", "id"]),
        callbacks=[callback] if how == "init" else None,
    )
    trainer.add_callback(recorder)
    if how == "attach":
        callback.attach(trainer)
        assert trainer.callback_handler.callbacks[0] is callback
    trainer.train()
    logged = [e for e in trainer.state.log_history if "audit/mia_loss" in e]
    assert [e["step"] for e in logged] == [2, 4]
    for entry in logged:
        assert {"audit/test_accuracy", "audit/forget_accuracy", "audit/seconds", "audit/mia_loss_auc"} <= set(entry)
        assert 0.0 <= entry["audit/mia_loss"] <= 1.0 and entry["audit/seconds"] > 0
    assert sum("audit/mia_loss" in logs for logs in recorder.logs) == 2  # later callbacks see the keys too
    assert [h["step"] for h in callback.history] == [0, 2, 4]
    assert callback.history[-1]["mia_loss"] == logged[-1]["audit/mia_loss"]
    path = tmp_path / "history.png"
    from hf_unlearn.audit.plots import plot_history

    assert plot_history(trainer.state.log_history, path).stat().st_size > 1000
    with pytest.raises(ValueError, match="every_n_steps"):
        AuditCallback(forget, test, every_n_steps=0)


# ----------------------------------------------------------------------------- privacy
def test_no_forget_text_or_ids_in_any_output(bert_runs, tmp_path):
    before, after = bert_runs["before"], bert_runs["after"]
    after.to_json(tmp_path / "report.json", include_losses=True)
    (tmp_path / "report.md").write_text(after.to_markdown())
    after.plot(tmp_path / "plots", before=before, history=[{"step": 1, "mia_loss": 0.6}])
    comparison = compare(original=before, unlearned=after)
    (tmp_path / "comparison.md").write_text(comparison.to_markdown())
    (tmp_path / "comparison.json").write_text(json.dumps(comparison.to_dict()))
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 6
    for path in files:
        blob = path.read_bytes()
        assert SECRET_TEXT.encode() not in blob and SECRET_ID.encode() not in blob, path
    keys = set(after.to_dict(include_losses=True))
    assert not keys & {"labels", "label", "ids", "id", "text", "input_ids"}


# ----------------------------------------------------------------------------- the attack registry
def test_a_new_attack_is_one_registered_function(bert_runs):
    """Registered once, an attack runs in audit_model and is listed by the report table, its JSON and the card."""
    from hf_unlearn.audit import ATTACKS, Attack, register_attack
    from hf_unlearn.hub.card import _eval_results

    def gap(f, t, *, seed, task):
        return {"loss_gap": float(np.mean(t["loss"]) - np.mean(f["loss"]))}

    register_attack(Attack("loss_gap", gap, lambda r: [("mean loss gap", None, None, r["loss_gap"], "")],
                           lambda r: [("loss_gap", "Mean loss gap (test − forget)", r["loss_gap"])]))
    try:
        report = audit_model(bert_runs["model"], forget=bert_runs["forget"], test=bert_runs["test"])
        value = report.attacks["loss_gap"]["loss_gap"]
        assert f"| mean loss gap | – | – | {value:.4f} |" in report.to_markdown()
        names = [r.metric_name for r in _eval_results(report, "text-classification", None)]
        assert "Mean loss gap (test − forget)" in names and "MIA accuracy (loss)" in names
    finally:
        ATTACKS.pop("loss_gap")
    assert value == pytest.approx(report.test_loss - report.forget_loss, abs=1e-6)
    assert report.to_dict()["attacks"] == {"loss_gap": {"loss_gap": value}}
    assert UnlearningReport.from_dict(report.to_dict()).attacks == report.attacks
    assert "attacks" not in bert_runs["after"].to_dict()  # the built-in attacks keep their fields
    assert list(ATTACKS) == ["mia_loss", "mia_entropy", "mia_threshold", "lm_attacks", "ref_attack", "tofu"]
