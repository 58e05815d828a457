"""Smoke tests: the GoEmotions benchmark's --quick pipeline and the main job on a tiny subset (files well-formed)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("HF_UNLEARN_DATA_DIR", REPO.parent / "shared" / "data")) / "goemotions"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"GoEmotions not found at {DATA}")


def _bench(out, *extra):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "goemotions.py"), "--data_dir", str(DATA),
                             "--quick", "--out", str(out), *extra], capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads((out / "goemotions.json").read_text())


@pytest.mark.slow
def test_goemotions_benchmark_quick_and_reproducible(tmp_path):
    data = _bench(tmp_path / "a", "--workers", "1")
    meta, rows = data["provenance"], data["records"]
    keys = {"method", "forget", "seed", "wall_time_s", "retrain_ratio", "forget_acc", "retain_acc", "test_acc",
            "mia_loss", "mia_entropy", "gap_mia_loss", "gap_closed_forget_acc", "gap_closed_mia_loss",
            "ref_attack_auc", "ref_attack_tpr_at_1pct_fpr"}
    assert {r["method"] for r in rows} >= {"original", "retrain", "nabla_tau", "finetune", "gradient_ascent",
                                            "grad_diff", "npo", "random_labels"}
    assert all(keys <= set(r) for r in rows if r["method"] not in ("original", "retrain"))
    assert all(0.0 <= r["mia_loss"] <= 1.0 and 0.0 <= r["ref_attack_auc"] <= 1.0 for r in rows)
    # ∇τ's record says how close its forget loss came to τ on the way: the lowest τ − in-step forget loss
    nt = next(r for r in rows if r["method"] == "nabla_tau")
    assert isinstance(nt["forget_gap_min"], float) and nt["forget_gap_min"] < nt["tau"]
    every_run = (tmp_path / "a" / "goemotions.md").read_text().split("## Every run")[1]
    assert "| forget_loss | tau | forget_gap_min |" in every_run and f"| {nt['forget_gap_min']:.3f} |" in every_run
    assert all(set(r["verdicts"].values()) <= {"pass", "fail", "inconclusive", "not measurable", "separates"}
               for r in rows if r["method"] != "retrain")
    # Provenance in the JSON: the code's commit, the full command, seeds, threads and versions.
    assert len(meta["commit"]) == 40 and isinstance(meta["dirty"], bool) and "--quick" in meta["command"]
    assert meta["seeds"] == [0] and meta["torch_threads"] >= 1 and "torch" in meta["versions"]
    md = (tmp_path / "a" / "goemotions.md").read_text()
    assert md.startswith("# GoEmotions unlearning benchmark") and "Machine:" in md and "Code: commit" in md
    assert "Original (do nothing) − retrained" in md and "± " not in md.split("## Every run")[0].split("|")[0]
    retrained_fit = next(r["retain_acc"] for r in rows if r["method"] == "retrain" and r["forget"] == "15%")
    assert "| retrained training accuracy |" in md
    assert f"| 15% | 1 | {rows[0]['retain_acc']:.3f} | {retrained_fit:.3f} |" in md
    # The run's time by phase, and how many models it trained itself (all of them: the cache started empty).
    n = meta["training_phase"]["models"]
    assert meta["training_phase"]["trained_now"] == n and meta["wall_seconds_total"] >= meta["splits_phase_wall_s"]
    assert f"training {n} of {n} models in" in md and "(none from a cache)" in md
    # The null reference is retrained on the same retain rows as the split's retrained model (another seed).
    (models,) = (tmp_path / "a" / "work" / "models").iterdir()
    # Each run's folders are named by the dataset too: a second dataset written to the same --out never shares them.
    assert {p.name for p in (tmp_path / "a" / "work").iterdir()} == {"models", "goemotions-15%-0"}
    digests = {p.name: json.loads((p / "hf_unlearn_recipe.json").read_text())["rows"] for p in models.iterdir()}
    assert digests["retrain-15%-0-null"] == digests["retrain-15%-0"] != digests["original"]
    # Every retrained model (null included) trains for the original's optimizer steps, on fewer rows.
    recipes = {p.name: json.loads((p / "hf_unlearn_recipe.json").read_text())["recipe"] for p in models.iterdir()}
    original_steps = math.ceil(recipes["original"]["epochs"] * math.ceil(160 / recipes["original"]["batch_size"]))
    assert "max_steps" not in recipes["original"]
    assert {r["max_steps"] for name, r in recipes.items() if name != "original"} == {original_steps}

    # Another split list, in two worker processes: the same original weights, and the same figures on the split
    # both runs share.
    other = _bench(tmp_path / "b", "--fractions", "0.3", "0.15", "--methods", "nabla_tau", "--workers", "2")
    assert other["provenance"]["original_sha256"] == meta["original_sha256"]
    shared = {(r["method"], r["forget"]): r for r in other["records"] if r["forget"] == "15%"}
    drop = {"wall_time_s", "cpu_time_s", "retrain_ratio", "wall_ratio"}  # times vary; every figure must not
    for r in rows:
        if (r["method"], r["forget"]) in shared:
            a = {k: v for k, v in r.items() if k not in drop}
            b = {k: v for k, v in shared[(r["method"], r["forget"])].items() if k not in drop}
            assert a == b, r["method"]
    assert {m for m, _ in shared} == {"original", "retrain", "nabla_tau"}


@pytest.mark.slow
def test_main_job_on_a_tiny_subset(tmp_path):
    out = tmp_path / "job"
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "unlearn_bert.py"), "--data_dir", str(DATA), "--train_rows", "120",
         "--val_rows", "40", "--test_rows", "60", "--original_epochs", "1", "--max_length", "32",
         "--output_dir", str(out), "--retrain"], capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| criterion | original | unlearned | retrained |" in result.stdout
    audit = json.loads((out / "audit.json").read_text())
    assert audit["report"]["n_forget"] == 18 and audit["method"] == "nabla_tau"
    for name in ("model.safetensors", "README.md", "loss_histograms.png", "_original/config.json"):
        assert (out / name).is_file(), name


@pytest.mark.slow
def test_vit_class_removal_benchmark_quick(tmp_path):
    """The class-removal benchmark on scikit-learn digits (no data files): per-seed records written by the script,
    the retrained model never predicts the class it never saw, and the points are the accuracies' difference."""
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "vit_class_removal.py"), "--quick", "--out",
                             str(tmp_path)], capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads((tmp_path / "vit_class_removal.json").read_text())
    (row,) = data["records"]
    assert row["retrained_forget_class_acc"] == 0.0 and row["original_forget_class_acc"] > 0.5
    assert row["unlearned_remaining_vs_retrained_points"] == pytest.approx(
        100 * (row["unlearned_remaining_acc"] - row["retrained_remaining_acc"]))
    assert "--quick" in data["provenance"]["command"]
    assert "remaining classes vs retrained" in (tmp_path / "vit_class_removal.md").read_text()


def test_benchmark_folder_names_never_name_the_removed_class():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from goemotions import on_disk

    assert on_disk("retrain-class:gratitude-0") == "retrain-class-0" and on_disk("class:grief-3") == "class-3"
    assert on_disk("retrain-15%-0-null") == "retrain-15%-0-null"


def test_variant_values_are_typed_even_where_yaml_reads_a_number_as_text():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from goemotions import parse_variant

    label, overrides = parse_variant("lr:learning_rate=3e-4,alpha=0.25,forget_push=ascent,min_forget_epochs=6")
    assert label == "lr" and overrides == {"learning_rate": 3e-4, "alpha": 0.25, "forget_push": "ascent",
                                           "min_forget_epochs": 6}
    assert isinstance(overrides["learning_rate"], float) and isinstance(overrides["min_forget_epochs"], int)


def test_benchmark_runs_every_seed_only_on_the_seeded_fractions():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from goemotions import parse_args, splits_of, trainings

    plain = parse_args(["--seeds", "0", "1", "2", "--fractions", "0.15", "0.3", "--forget_class", "grief"])
    assert [(n, s) for n, _, s in splits_of(plain)] == [("15%", 0), ("15%", 1), ("15%", 2), ("30%", 0),
                                                        ("class:grief", 0)]
    seeded = parse_args(["--seeds", "0", "1", "--fractions", "0.3", "--seeded_fractions", "0.3", "--forget_class", ""])
    assert [(n, s) for n, _, s in splits_of(seeded)] == [("30%", 0), ("30%", 1)]
    # one retrained model per split, and the null reference for the first seed of each seeded fraction only
    assert [t[0] for t in trainings(seeded)] == ["original", "retrain-30%-0", "retrain-30%-0-null", "retrain-30%-1"]
    assert [t[0] for t in trainings(plain)] == ["original", "retrain-15%-0", "retrain-15%-0-null", "retrain-15%-1",
                                                "retrain-15%-2", "retrain-30%-0", "retrain-class:grief-0"]


def test_variants_are_compared_with_the_default_paired_by_seed():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from summary import paired_table

    def row(method, seed, acc, gap):
        return {"method": method, "forget": "15%", "seed": seed, "test_acc": acc, "gap_closed_forget_acc": gap,
                "gap_closed_mia_loss": gap}

    # the variant is 0.1 better on gap closed and 0.02 worse on test accuracy on every seed, whatever the seed's level
    rows = [row("nabla_tau", s, 0.4 + s / 10, 0.5 + s / 10) for s in range(3)]
    rows += [row("nabla_tau_x", s, 0.38 + s / 10, 0.6 + s / 10) for s in range(3)]
    rows += [row("gradient_ascent", s, 0.1, 1.2) for s in range(3)]
    table = "\n".join(paired_table(rows, "15%"))
    assert "| nabla_tau_x | 3 | 0.100 ± 0.000 | 0.100 ± 0.000 | -0.020 ± 0.000 |" in table
    assert "gradient_ascent" not in table  # baselines are not ∇τ variants
    assert paired_table(rows[:1] + rows[3:4], "15%") == []  # one seed: no pairing to speak of


def test_under_fit_retrained_references_are_named():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from summary import underfit_references

    rows = [{"method": "retrain", "forget": "15%", "seed": s, "retain_acc": acc} for s, acc in enumerate((0.98, 0.653))]
    rows.append({"method": "original", "forget": "15%", "seed": 1, "retain_acc": 0.5})  # only references count
    assert underfit_references(rows) == ["15% seed 1 (0.653)"]
    assert underfit_references(rows[:1]) == []


def test_results_table_shows_where_the_forget_loss_ended_beside_tau():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from summary import CI_KEYS, ci_table

    def row(method, seed, loss, tau=None):
        return {"method": method, "forget": "15%", "seed": seed, "forget_loss": loss, "tau": tau}

    rows = [row("retrain", s, 3.0 + s / 10) for s in range(2)] + [row("nabla_tau", s, 1.8, 2.8) for s in range(2)]
    table = ci_table(rows, "15%")

    def split(line):
        return [c.strip() for c in line.split("|")[1:-1]]

    at = {k: split(table[0]).index(k) for k in ("forget_loss", "tau")}
    cells = {split(line)[0]: split(line) for line in table[2:]}
    assert set(at) <= set(CI_KEYS)
    assert cells["nabla_tau"][at["forget_loss"]] == "1.800 ± 0.000" and cells["nabla_tau"][at["tau"]] == "2.800 ± 0.000"
    assert cells["retrain"][at["tau"]] == ""  # no τ for a model that never ran ∇τ


def test_targets_compare_with_every_baseline_and_with_those_that_keep_utility():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from summary import targets

    def row(method, seed, forget_acc, mia, test_acc, **gaps):
        return {"method": method, "forget": "15%", "seed": seed, "forget_acc": forget_acc, "mia_loss": mia,
                "test_acc": test_acc, "retrain_ratio": 0.09, **gaps}

    rows = []
    for s in range(3):
        rows += [row("original", s, 0.98, 0.72, 0.43), row("retrain", s, 0.39, 0.46, 0.38),
                 row("nabla_tau", s, 0.55, 0.55, 0.43, gap_closed_forget_acc=0.74, gap_closed_mia_loss=0.74),
                 # overshoots the forget accuracy and loses 15 test points: ahead on gap closed, but not usable
                 row("gradient_ascent", s, 0.31, 0.52, 0.23, gap_closed_forget_acc=1.14, gap_closed_mia_loss=0.73),
                 row("ssd", s, 0.62, 0.55, 0.44, gap_closed_forget_acc=0.62, gap_closed_mia_loss=0.67)]
    text = "\n".join(targets(rows))
    assert "| mean gap closed (0.740) ahead of every baseline (best: gradient_ascent 0.935) | -0.195 | no |" in text
    assert ("ahead of every baseline that keeps test accuracy ≥ the retrained model's − 1 point (1 of 2; best: ssd "
            "0.645) | +0.095 | yes |") in text


def test_tofu_benchmark_keeps_each_seed_and_summarises_models_run_on_several():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from tofu_smollm2 import over_seeds, run_key

    assert run_key(argparse_ns(split="dev", seed=0)) == "dev" and run_key(argparse_ns(split="dev", seed=2)) == \
        "dev_seed2"

    def run(fq, utility):
        return {"forget_quality": fq, "model_utility": utility, "forget_rouge_l": 0.2, "forget_answer_prob": 0.1}

    results = {"runs": {"dev": {"a": run(0.01, 0.8), "b": run(0.5, 0.9)},
                        "dev_seed1": {"a": run(0.03, 0.9)}, "dev_seed2": {"a": run(0.02, 0.85)}},
               "config": {"dev": {"seed": 0}, "dev_seed1": {"seed": 1}, "dev_seed2": {"seed": 2}}}
    lines = over_seeds(results)
    row = next(line for line in lines if line.startswith("| a |"))
    # mean 0.02, t(0.975, 2) × sd 0.01 / √3 = 0.0248; the seeds listed with their forget quality
    assert row.startswith("| a | 3 | 0.02 ± 0.025 | 0.85 ± 0.12 |") and row.endswith("| 0: 0.01, 1: 0.03, 2: 0.02 |")
    assert not any(line.startswith("| b |") for line in lines)  # one seed: not summarised


def argparse_ns(**kw):
    import argparse

    return argparse.Namespace(**kw)


@pytest.mark.slow
def test_class_balance_reports_the_prior_repair_beside_original_and_retrained(tmp_path):
    out = tmp_path / "balance"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "class_balance.py"), "--data_dir", str(DATA),
                             "--quick", "--fraction", "0.15", "--seeds", "0", "--cache_dir", str(tmp_path / "cache"),
                             "--out", str(out)], capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    records = {r["model"]: r for r in json.loads((out / "class_balance.json").read_text())["records"]}
    default = "∇τ default (repair to the retain shares, α₀ 0.6)"
    original_prior = "∇τ + repair to the original's prior, α₀ 0.6"
    assert list(records) == ["original (do nothing)", "retrained", "∇τ relabel push, no repair", default,
                             original_prior]
    assert records["original (do nothing)"]["tv_from_original"] == 0  # the reference itself
    assert records[default]["prior_shift"] > 0 and records[original_prior]["prior_shift"] > 0  # the bias moved
    assert records["∇τ relabel push, no repair"]["prior_shift"] is None
    assert all(0 <= r["accuracy"] <= 1 and 0 <= r["majority_share"] <= 1 for r in records.values())
    assert f"| {default} |" in (out / "class_balance.md").read_text()


def test_retain_damage_groups_are_fixed_by_the_original_alone():
    sys.path.insert(0, str(REPO / "benchmarks"))
    import numpy as np
    import retain_damage

    assert retain_damage.quartiles(np.arange(8.0)).tolist() == [1, 1, 2, 2, 3, 3, 4, 4]
    # classes of 1, 2 and 5 rows: the two rarest hold 3 of 8 rows (≤ half), adding the third would pass half
    labels = np.array([0, 1, 1, 2, 2, 2, 2, 2])
    assert retain_damage.rare_classes(labels).tolist() == [True, True, True] + [False] * 5
    hidden = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.1]] * 2)
    # two forget rows: a retain row's nearness is its highest similarity to either (quartiles taken after the max)
    groups = retain_damage.groups(np.eye(3)[labels] * 5.0, labels, hidden, np.array([[1.0, 0.0], [-1.0, 0.0]]))
    near = {k: v for k, v in groups.items() if k.startswith("near forget")}
    assert near["near forget, quartile 1"].tolist() == [False, True, False, False] * 2  # orthogonal: farthest
    assert near["near forget, quartile 4"].tolist() == [True, False, False, False] * 2  # the forget row itself
    assert sum(v.sum() for v in near.values()) == len(labels) and groups["all retain rows"].all()


@pytest.mark.slow
def test_retain_damage_reports_lost_rows_beside_the_retrained_model(tmp_path):
    out = tmp_path / "damage"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "retain_damage.py"), "--data_dir", str(DATA),
                             "--quick", "--seeds", "0", "--cache_dir", str(tmp_path / "cache"), "--out", str(out)],
                            capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    records = json.loads((out / "retain_damage.json").read_text())["records"]
    overall = next(r for r in records if r["group"] == "all retain rows")
    assert overall["rows"] > 0 and all(0 <= overall[m] <= 1 for m in ("retrained", "∇τ default",
                                                                       "∇τ + KL retain term"))
    quartered = [r["rows"] for r in records if r["group"].startswith("near forget")]
    assert sum(quartered) == overall["rows"]  # the quartiles split the rows the original fits
    assert "| all retain rows |" in (out / "retain_damage.md").read_text()
