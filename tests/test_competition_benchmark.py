"""The second text dataset as a spec entry (banking77) and the competition-score benchmark's --quick pipeline."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf_unlearn.pipeline.data import load_raw, select
from hf_unlearn.pipeline.job import JobArguments

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("HF_UNLEARN_DATA_DIR", REPO.parent / "shared" / "data")) / "goemotions"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _banking_folder(tmp_path):
    intents = ["card_arrival", "lost_or_stolen_card", "top_up_failed"]
    rows = [f"query number {i} about {intents[i % 3].replace('_', ' ')},{intents[i % 3]}" for i in range(90)]
    (tmp_path / "train.csv").write_text("text,category\n" + "\n".join(rows) + "\n")
    (tmp_path / "test.csv").write_text("text,category\n" + "\n".join(rows[:30]) + "\n")
    return tmp_path


def test_banking77_spec_reads_local_files_and_holds_dev_rows_out_of_train(tmp_path):
    job = JobArguments(dataset="banking77", data_dir=str(_banking_folder(tmp_path)), train_rows=40, val_rows=20,
                       test_rows=12)
    raw = load_raw(job, None, 0)
    assert (len(raw.train), len(raw.validation), len(raw.test)) == (40, 20, 12)
    assert raw.train.features["label"].names == ["card_arrival", "lost_or_stolen_card", "top_up_failed"]
    assert not set(raw.train["text"]) & set(raw.validation["text"])  # dev rows come out of the training file
    forget, retain = select(JobArguments(dataset="banking77", forget_fraction=0.25), raw, 0)
    assert (len(forget), len(retain)) == (10, 30)


def test_banking77_without_files_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="Pass the folder that holds them"):
        load_raw(JobArguments(dataset="banking77", data_dir=str(tmp_path)), None, 0)


@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_dir(), reason=f"GoEmotions not found at {DATA}")
def test_competition_benchmark_quick(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "competition.py"), "--n_models", "3",
                             "--quick", "--data_dir", str(DATA), "--methods", "nabla_tau", "gradient_ascent",
                             "--workers", "1", "--out", str(tmp_path)], capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads((tmp_path / "competition_goemotions.json").read_text())
    rows = {r["method"]: r for r in data["records"]}
    assert set(rows) == {"retrain", "original", "nabla_tau", "gradient_ascent"}
    assert all(0 <= r["forgetting_quality_F"] <= 1 and r["n_models"] == 3 for r in rows.values())
    # doing nothing: N copies of one model against N retrained ones: a constant group, ε capped, F = 0
    assert rows["original"]["forgetting_quality_F"] == 0 and rows["original"]["competition_score"] == 0
    r = rows["nabla_tau"]
    assert r["competition_score"] == pytest.approx(r["forgetting_quality_F"] * r["retain_ratio"] * r["test_ratio"])
    assert data["provenance"]["models_done"] == data["provenance"]["models_total"] == 1 + 6 + 6
    assert "| retrain |" in (tmp_path / "competition_goemotions.md").read_text()


def test_frontier_points_are_paired_ratios_and_the_png_is_written(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import frontier

    def rec(method, seed, test, retain, closed=None, cpu=None):
        return {"method": method, "forget": "15%", "seed": seed, "test_acc": test, "retain_acc": retain,
                "gap_closed_forget_acc": closed, "retrain_ratio": cpu}

    rows = [rec("original", 0, 0.5, 1.0), rec("retrain", 0, 0.4, 0.8), rec("nabla_tau", 0, 0.4, 0.8, 0.7, 0.1),
            rec("original", 1, 0.5, 1.0), rec("retrain", 1, 0.5, 1.0), rec("nabla_tau", 1, 0.5, 0.5, 0.9, 0.1)]
    pts = {p["method"]: p for p in frontier.points(rows)}
    assert pts["original"]["test"][0] == pytest.approx((0.5 / 0.4 + 1) / 2) and pts["original"]["y"] == (0, 0)
    assert pts["nabla_tau"]["retain"][0] == pytest.approx(0.75) and pts["nabla_tau"]["y"][0] == pytest.approx(0.8)
    assert pts["retrain"]["test"] == (1, 0) and pts["nabla_tau"]["cpu"] == pytest.approx(0.1)
    (tmp_path / "goemotions.json").write_text(json.dumps({"provenance": {}, "records": rows}))
    frontier.main(["--results", str(tmp_path)])
    assert (tmp_path / "frontier.png").read_bytes()[:4] == b"\x89PNG"


def test_competition_report_only_rewrites_the_markdown_byte_for_byte_and_trains_nothing(tmp_path):
    """``--report_only`` (a goemotions.py flag it forwards) once ran a whole competition: now it only renders."""
    for name in ("competition_goemotions.json", "competition_banking77.json"):
        (tmp_path / name).write_bytes((REPO / "benchmarks" / "results" / name).read_bytes())
    for dataset in ("goemotions", "banking77"):
        done = subprocess.run([sys.executable, "benchmarks/competition.py", "--report_only", "--dataset", dataset,
                               "--out", str(tmp_path)], cwd=REPO, env=ENV, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        expected = (REPO / "benchmarks" / "results" / f"competition_{dataset}.md").read_bytes()
        assert (tmp_path / f"competition_{dataset}.md").read_bytes() == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"competition_{d}.{e}" for d in ("goemotions", "banking77") for e in ("json", "md"))  # no work/ folder
    missing = subprocess.run([sys.executable, "benchmarks/competition.py", "--report_only", "--out",
                              str(tmp_path / "empty")], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert missing.returncode != 0 and "run competition.py without it first" in missing.stderr


def test_attack_frontier_pairs_with_the_retrained_model_and_marks_the_target_region(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import frontier

    def rec(method, seed, retain, test, rmia, closed=None):
        return {"method": method, "forget": "15%", "seed": seed, "retain_acc": retain, "test_acc": test,
                "ref_attack_auc": rmia, "gap_closed_forget_acc": closed}

    rows = [rec("retrain", 0, 0.9, 0.4, 0.50), rec("retrain", 1, 0.8, 0.5, None),  # the null: seed 0 only
            rec("nabla_tau", 0, 0.9, 0.4, 0.52, 1.0), rec("nabla_tau", 1, 0.8, 0.5, 0.54, 0.9),
            rec("scrub", 0, 0.8, 0.4, 0.70, 0.4), rec("scrub", 1, 0.7, 0.5, 0.70, 0.4)]
    (tmp_path / "goemotions.json").write_text(json.dumps({"provenance": {"commit": "abcdef0"}, "records": rows}))
    pts = frontier.attack_points(tmp_path, ["goemotions.json:nabla_tau=∇τ, renamed"])["goemotions"]
    assert [p["method"] for p in pts] == ["∇τ, renamed"]  # only the named method, under its label
    p = pts[0]
    assert p["attack"][0] == pytest.approx(0.03) and p["retain"][0] == pytest.approx(0.0)
    assert p["commit"] == "abcdef0" and frontier.in_target(p)
    pts = {q["method"]: q for q in frontier.attack_points(tmp_path, ["goemotions.json"])["goemotions"]}
    assert set(pts) == {"∇τ default (relabel push, prior repair)", "scrub"}
    assert not frontier.in_target(pts["scrub"])
    assert pts["scrub"]["retain"][0] == pytest.approx(-0.1)
    frontier.main(["--results", str(tmp_path), "--source", "goemotions.json"])
    assert (tmp_path / "frontier_rmia.png").read_bytes()[:4] == b"\x89PNG"
    table = (tmp_path / "frontier_rmia.md").read_text()
    assert "| ∇τ default (relabel push, prior repair) | 2 | +0.030 ± " in table and "| yes |" in table


def test_scorecard_sets_the_default_beside_the_original_and_says_what_it_cannot_measure(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import scorecard

    def rec(method, seed, **kw):
        return {"method": method, "forget": "15%", "seed": seed, **kw}

    rows = []
    for s in range(3):
        rows += [rec("original", s, forget_acc=0.95, mia_loss=0.60 + s / 100, ref_attack_auc=0.85, retain_acc=0.98,
                     test_acc=0.50),
                 rec("retrain", s, forget_acc=0.40, mia_loss=0.59, ref_attack_auc=0.48 if s == 0 else None,
                     retain_acc=0.95, test_acc=0.48),
                 rec("nabla_tau", s, gap_closed_forget_acc=0.95, gap_closed_mia_loss=0.2, ref_attack_auc=0.52,
                     retain_acc=0.90, test_acc=0.475, retrain_ratio=0.08)]
    (tmp_path / "banking77.json").write_text(json.dumps({"provenance": {"commit": "abc1234"}, "records": rows}))
    (tmp_path / "competition_banking77.json").write_text(json.dumps({"records": [
        {"method": m, "competition_score": v} for m, v in (("nabla_tau", 0.07), ("npo", 0.08), ("retrain", 0.18))]}))
    scorecard.main(["--results", str(tmp_path)])
    text = (tmp_path / "scorecard.md").read_text()
    assert "## BANKING77, 15% forgotten (3 seeds; `banking77.json`, `nabla_tau`, at abc1234)" in text
    assert "| gap closed, forget accuracy ≥ 0.90 | 0.950 ± 0.000 | 0 (retrained: 1) | **met** |" in text
    # the original's loss-MIA is within 0.10 of the retrained models': that target measures nothing, never a pass
    assert "| gap closed, loss-MIA ≥ 0.90 | 0.200 ± 0.000 | 0 (retrained: 1) | not measurable (original" in text
    assert ("| RMIA AUC − the retrained models' null (0.480) ≤ 0.05 | +0.040 ± 0.000 | +0.370 ± 0.000 | **met** |"
            in text)
    assert "| retain accuracy − the retrained models' ≥ −0.03 (paired by seed) | -0.050 ± 0.000 | +0.030" in text
    assert "| test accuracy − the retrained models' ≥ −0.01 (paired by seed) | -0.005 ± 0.000 | +0.020" in text
    assert "(next: npo 0.080; retrained models' ceiling 0.180) | 0.070 | 0.000 | missed |" in text
