"""The job pipeline (`hf_unlearn.pipeline`): the card carries the audit and its metadata, `audit --model DIR` audits the
forget set the run used (and refuses a contradicting config), one model resolver with "not found" for local paths,
class selectors with advice that fits, scratch outputs under outputs/ and never pushed."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
from pathlib import Path

import pytest
from test_cli import call, one_line_error, tiny_job  # noqa: F401  (the fixture: tiny BERT, CSVs, a YAML job)

from hf_unlearn.hub.push import push_ignore_patterns
from hf_unlearn.pipeline.job import QUICK, JobArguments
from hf_unlearn.pipeline.models import resolve

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tiny_job, tmp_path_factory) -> Path:  # noqa: F811
    """One CLI run of the tiny job with a 20 % forget set (the config says 25 %), card metadata on the command line."""
    from hf_unlearn.cli.main import main

    out = tmp_path_factory.mktemp("jobs") / "run"
    code = main(["run", str(tiny_job / "job.yaml"), "--forget_fraction", "0.2", "--output_dir", str(out),
                 "--base_model", "org/base-model", "--license", "apache-2.0", "--hub_dataset", "org/data"])
    assert code == 0
    return out


@pytest.mark.slow
def test_card_is_written_after_the_audit_with_its_metadata(run_dir):
    card = (run_dir / "README.md").read_text()
    assert "No audit was recorded" not in card and "## Audit" in card and "MIA accuracy (loss)" in card
    assert "base_model: org/base-model" in card and "license: apache-2.0" in card and "datasets:" in card
    audit = json.loads((run_dir / "audit.json").read_text())
    assert {"report", "comparison", "method", "tau_history", "timings", "job"} <= set(audit)


@pytest.mark.slow
def test_job_description_holds_selector_and_seed_never_ids_or_text(run_dir):
    description = json.loads((run_dir / "job.json").read_text())
    assert description["selector"] == {"forget_fraction": 0.2} and description["seed"] == 42
    assert description["rows"]["forget"] == 12 and description["forget_digest"]
    text = (run_dir / "job.json").read_text()
    assert "secretrow" not in text and "train-" not in text


@pytest.mark.slow
def test_audit_measures_the_forget_set_the_run_used(run_dir, tmp_path, capsys):
    out = tmp_path / "audit.json"
    code, table, err = call(["audit", "--model", str(run_dir), "--original", str(run_dir / "_original"), "--out",
                             str(out)], capsys)
    assert code == 0, err
    assert table.startswith("**Unlearning comparison**")
    audit = json.loads(out.read_text())
    assert audit["report"]["n_forget"] == 12  # the run's 20 %, not the config's 25 % (15 rows)
    ran = json.loads((run_dir / "audit.json").read_text())
    assert audit["comparison"]["models"] == ran["comparison"]["models"]  # the same rows, the same numbers
    assert {"report", "comparison", "method", "job"} <= set(audit)


@pytest.mark.slow
def test_audit_refuses_a_config_that_contradicts_the_run(run_dir, tiny_job, tmp_path, capsys):  # noqa: F811
    line = one_line_error(*call(["audit", "--model", str(run_dir), "--config", str(tiny_job / "job.yaml"), "--out",
                                 str(tmp_path / "a.json")], capsys)[::2])
    assert "forget_fraction (0.25 in the config, 0.2 in the run)" in line and "Drop --config" in line
    assert not (tmp_path / "a.json").exists()


def test_missing_local_model_is_not_found_never_a_hub_error(tmp_path, capsys):
    for spec in (str(tmp_path / "nope"), "./nope/model", "outputs/nope/model"):
        with pytest.raises(FileNotFoundError, match="not found"):
            resolve(spec)
    line = one_line_error(*call(["audit", "--model", str(tmp_path / "nope")], capsys)[::2])
    assert "not found" in line and "--model" in line
    with pytest.raises(FileNotFoundError, match="'org/name' not found.*offline mode is on"):
        resolve("org/name")  # a Hub id neither cached nor reachable (offline): one line, before any work (issue 30)


def test_split_class_absent_from_the_sample_gives_advice_that_fits(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HF_UNLEARN_DATA_DIR", raising=False)  # the bundled GoEmotions sample (offline)
    config = str(REPO / "configs" / "goemotions_minilm.yaml")
    line = one_line_error(*call(["split", "--config", config, "--classes", "grief", "--train_rows", "40", "--out",
                                 str(tmp_path / "r")], capsys)[::2])
    assert "grief" in line and "no row" in line and "train_rows" in line and "fraction" not in line
    code, _, err = call(["split", "--config", config, "--classes", "gratitude", "--out", str(tmp_path / "ok")],
                        capsys)  # the README's command
    assert code == 0, err
    assert (tmp_path / "ok" / "forget_ids.txt").read_text().split()


def test_one_place_for_the_main_jobs_defaults():
    """The demo reads configs/goemotions_minilm.yaml; its values are not repeated in the example."""
    source = (REPO / "examples" / "unlearn_bert.py").read_text()
    assert "goemotions_minilm.yaml" in source and len(source.splitlines()) <= 60
    for key in ("train_rows", "val_rows", "test_rows", "original_epochs", "original_lr"):
        assert f"{key}:" in (REPO / "configs" / "goemotions_minilm.yaml").read_text()
        assert not re.search(rf"{key}\s*[=:]", source), key
    assert set(QUICK) <= {f for f in JobArguments.__dataclass_fields__}


def test_examples_write_scratch_under_outputs_never_pushed():
    configs = ("goemotions_minilm", "mnist_vit", "tofu_smollm2", "tofu_tiny")  # the examples' defaults
    defaults = [re.search(r"output_dir: (\S+)", (REPO / "configs" / f"{c}.yaml").read_text()).group(1) for c in configs]
    for folder in defaults:
        assert folder.startswith("outputs/"), folder
        ignored = subprocess.run(["git", "check-ignore", "-q", f"{folder}/model.safetensors"], cwd=REPO)
        assert ignored.returncode == 0, folder
    caches = re.findall(r'output_dir, "(_\w+)"', (REPO / "hf_unlearn" / "pipeline" / "run.py").read_text())
    assert sorted(caches) == ["_original", "_retrain"]
    for name in ("_retrain/model.safetensors", "_original/model.safetensors"):
        assert any(fnmatch.fnmatch(name, p) for p in push_ignore_patterns()), name


@pytest.mark.slow
def test_class_selector_is_recorded_as_a_digest_and_audited_with_the_config(tiny_job, tmp_path, capsys):  # noqa: F811
    from hf_unlearn.cli.main import main

    config = tmp_path / "job.yaml"
    config.write_text((tiny_job / "job.yaml").read_text().replace("  forget_fraction: 0.25\n",
                                                                  "  forget_classes: [joy]\n"))
    out = tmp_path / "run"
    assert main(["run", str(config), "--output_dir", str(out)]) == 0
    capsys.readouterr()  # the run's log
    text = (out / "job.json").read_text()
    assert "joy" not in text and "sha256:" in text  # no label of the forget set
    line = one_line_error(*call(["audit", "--model", str(out), "--out", str(tmp_path / "a.json")], capsys)[::2])
    assert "digest" in line and "--forget_classes" in line
    line = one_line_error(*call(["audit", "--model", str(out), "--config", str(config), "--forget_classes", "anger",
                                 "--out", str(tmp_path / "a.json")], capsys)[::2])
    assert "forget_classes" in line and "anger" not in line.split("contradicts")[0]
    code, _, err = call(["audit", "--model", str(out), "--config", str(config), "--out", str(tmp_path / "b.json")],
                        capsys)
    assert code == 0, err
    ran = json.loads((out / "audit.json").read_text())
    assert json.loads((tmp_path / "b.json").read_text())["comparison"]["models"]["unlearned"] == \
        ran["comparison"]["models"]["unlearned"]


@pytest.mark.slow
def test_cached_original_and_retrained_reused_only_for_their_recipe_and_rows(tiny_job, tmp_path):  # noqa: F811
    from hf_unlearn.pipeline.cache import RECIPE_FILE
    from hf_unlearn.pipeline.config import load_job
    from hf_unlearn.pipeline.run import run_job

    out = tmp_path / "run"
    said: list[str] = []
    argv = ["--output_dir", str(out), "--retrain", "true", "--overwrite_output_dir", "true"]
    first = run_job(*load_job(tiny_job / "job.yaml", argv), say=said.append)
    assert (out / "_original" / RECIPE_FILE).is_file() and (out / "_retrain" / RECIPE_FILE).is_file()
    first_said = list(said)
    said.clear()
    again = run_job(*load_job(tiny_job / "job.yaml", argv), say=said.append)
    assert any("Loading the original model" in s for s in said)
    assert any("Loading the model retrained" in s for s in said)
    assert again == first  # the same models, the same audit
    # the retrained model trains for the original's optimizer steps by default, for its epochs on request
    original = json.loads((out / "_original" / RECIPE_FILE).read_text())["recipe"]
    retrained = json.loads((out / "_retrain" / RECIPE_FILE).read_text())["recipe"]
    assert "max_steps" not in original and retrained == {**original, "max_steps": retrained["max_steps"]}
    assert any(f"{retrained['max_steps']} steps, as the original" in s for s in first_said)
    said.clear()
    run_job(*load_job(tiny_job / "job.yaml", [*argv, "--retrain_budget", "epochs"]), say=said.append)
    assert any("Loading the original model" in s for s in said)
    assert any("Retraining from the base model" in s and "1 epochs" in s for s in said)
    assert "max_steps" not in json.loads((out / "_retrain" / RECIPE_FILE).read_text())["recipe"]
    said.clear()
    run_job(*load_job(tiny_job / "job.yaml", [*argv, "--original_epochs", "2"]), say=said.append)
    assert any("Training the original model" in s and "another recipe" in s for s in said)
    assert any("Retraining from the base model" in s for s in said)
