"""Reliability round 3 (issue 31), through the real `hf-unlearn` console script: no job destroys another's work,
every record describes one run and survives a SIGKILL, resume works from the CLI, nothing pushed confirms a guessed
forget set, no code from a model folder runs, and every bad flag is one line before any write."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_cli import tiny_job  # noqa: F401  (the fixture: tiny BERT, CSVs, a YAML job)

from hf_unlearn.hub.push import push_ignore_patterns
from hf_unlearn.pipeline.job import classes_text
from hf_unlearn.salt import SALT_NAME, digest_matches, read_salt
from hf_unlearn.trainer.checkpoints import STATE_NAME
from hf_unlearn.trainer.persistence import LOCK_NAME, STAGING_NAME

HERE = Path(__file__).parent
REPO = HERE.parent
SCRIPT = Path(sys.executable).parent / "hf-unlearn"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)]), "OMP_NUM_THREADS": "1",
       "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
LABELS = ["joy", "anger", "fear"]


def _command() -> list[str]:
    return [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "hf_unlearn.cli"]


def hf(*argv, input: str | None = None, **kw) -> subprocess.CompletedProcess:
    """The `hf-unlearn` console script (with this tree first on the path)."""
    return subprocess.run([*_command(), *map(str, argv)], env=ENV, capture_output=True, text=True, input=input,
                          **kw)


def crash(mode: str, *argv) -> subprocess.CompletedProcess:
    """The CLI with a SIGKILL injected (`crash_cli.py`)."""
    result = subprocess.run([sys.executable, str(HERE / "crash_cli.py"), mode, *map(str, argv)], env=ENV,
                            capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    return result


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one-line error of a refused command (exit 1, no traceback)."""
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("hf-unlearn "), line
    return line


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_console_script_runs_this_tree():
    if not SCRIPT.is_file():
        pytest.skip("no hf-unlearn console script beside this Python (the tests use python -m hf_unlearn.cli)")
    python = SCRIPT.read_text().splitlines()[0].removeprefix("#!").strip()
    where = subprocess.run([python, "-c", "import hf_unlearn.cli.main as c; print(c.__file__)"], env=ENV,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).resolve().is_relative_to(REPO.resolve()), where


# ------------------------------------------------------------------------ one job never destroys another's
@pytest.fixture(scope="module")
def first_run(tiny_job, tmp_path_factory):  # noqa: F811
    """Job A (forget the class joy, seed 42) in a fresh folder; while it holds the folder (held before it loads its
    data until job B has finished), job B (seed 7) runs into the same folder."""
    root = tmp_path_factory.mktemp("guard")
    out, flag = root / "o", root / "go"
    a = subprocess.Popen([sys.executable, str(HERE / "crash_cli.py"), f"hold:{flag}", "run", str(tiny_job / "job.yaml"),
                          "--output_dir", str(out), "--forget_classes", "joy"], env=ENV, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / LOCK_NAME).exists() and a.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    b = hf("run", tiny_job / "job.yaml", "--output_dir", out, "--forget_classes", "joy", "--seed", "7")
    flag.touch()
    _, a_err = a.communicate()
    assert a.returncode == 0, a_err[-3000:]
    return out, b


@pytest.mark.slow
def test_a_concurrent_second_run_is_refused_and_trains_nothing(first_run):
    out, second = first_run
    assert "is in use by another run" in error_line(second)
    description = json.loads((out / "job.json").read_text())
    recipe = json.loads((out / "_original" / "hf_unlearn_recipe.json").read_text())
    assert description["seed"] == 42 and recipe["recipe"]["seed"] == 42  # _original is job A's, as job.json says


@pytest.mark.slow
def test_a_second_job_is_refused_before_any_write(first_run, tiny_job):  # noqa: F811
    out, _ = first_run
    before = files(out)
    line = error_line(hf("run", tiny_job / "job.yaml", "--output_dir", out, "--forget_classes", "joy", "--seed", "7"))
    assert "already holds a model saved by another job" in line and "seed" in line and "--overwrite_output_dir" in line
    assert files(out) == before  # the cached original (weights and recipe) included
    rerun = hf("run", tiny_job / "job.yaml", "--output_dir", out, "--forget_classes", "joy")  # the same job: allowed
    assert rerun.returncode == 0, rerun.stderr[-3000:]


@pytest.mark.slow
def test_pushed_records_cannot_confirm_a_guessed_forget_class(first_run):
    out, _ = first_run
    names = json.loads((out / "config.json").read_text())["id2label"].values()
    assert sorted(names) == sorted(LABELS)
    recorded = json.loads((out / "job.json").read_text())
    audit = json.loads((out / "audit.json").read_text())
    assert audit["job"]["job"]["forget_classes"] == recorded["job"]["forget_classes"]
    guesses = [list(c) for n in range(1, 4) for c in itertools.combinations(LABELS, n)]
    for guess in guesses:  # without the salt (not pushed) no guess can be confirmed or ruled out
        assert digest_matches(recorded["job"]["forget_classes"], classes_text(guess), None) is None
        assert digest_matches(recorded["forget_digest"], classes_text(guess), None) is None
    salt = read_salt(out)  # the run's own folder can check a config
    assert [g for g in guesses if digest_matches(recorded["job"]["forget_classes"], classes_text(g), salt)] == [["joy"]]
    pushed = [p for p in out.rglob("*") if p.is_file() and not any(
        p.relative_to(out).match(pattern.rstrip("/")) or str(p.relative_to(out)).startswith(pattern.rstrip("/*"))
        for pattern in push_ignore_patterns())]
    assert SALT_NAME not in {p.name for p in pushed} and "job.json" in {p.name for p in pushed}
    for path in pushed:
        if path.suffix in (".json", ".md"):
            text = path.read_text()
            assert read_salt(out) not in text and "secretrow" not in text


# --------------------------------------------------------------- records: atomic, and one run per folder
@pytest.mark.slow
@pytest.mark.parametrize("moved", [0, 3])
def test_a_save_killed_inside_publish_is_finished_by_the_next_command(first_run, tiny_job, tmp_path, moved):  # noqa: F811
    """Issue 31, case 2 and the SIGKILL-inside-publish() window: an --overwrite_output_dir rerun is killed after its
    audit, while its files are moved into place (before the first move, or after 3). Until the next command no
    config.json is there (nothing loads a mix of two runs); the next command finishes the save: every record then
    describes the new run."""
    out = tmp_path / "o"
    shutil.copytree(first_run[0], out)
    crash(f"publish-{moved}", "run", tiny_job / "job.yaml", "--output_dir", out, "--forget_classes", "joy", "--seed",
          "7", "--overwrite_output_dir")
    assert (out / STAGING_NAME).is_dir() and not (out / "config.json").exists()
    audited = hf("audit", "--model", out, "--config", tiny_job / "job.yaml", "--forget_classes", "joy", "--seed", "7",
                 "--out", tmp_path / "a.json")
    assert audited.returncode == 0, audited.stderr[-3000:]
    assert not (out / STAGING_NAME).exists() and (out / "config.json").is_file()
    assert json.loads((out / "job.json").read_text())["seed"] == 7
    assert json.loads((out / "audit.json").read_text())["job"]["seed"] == 7
    assert json.loads((out / "_unlearning_job.json").read_text())["arguments"]["seed"] == 7
    assert "| seed | 7 |" in (out / "README.md").read_text()


@pytest.mark.slow
def test_an_audit_report_rewrite_killed_midway_keeps_the_old_report(first_run, tiny_job, tmp_path):  # noqa: F811
    report = tmp_path / "f.json"
    argv = ("audit", "--model", first_run[0], "--config", tiny_job / "job.yaml", "--forget_classes", "joy",
            "--out", report)
    assert hf(*argv).returncode == 0
    before = report.read_bytes()
    crash("record-write", *argv)
    assert report.read_bytes() == before and json.loads(before)["report"]


# ------------------------------------------------------------------------------------- resume from the CLI
@pytest.mark.slow
def test_resume_from_checkpoint_true_resumes_through_the_job_pipeline(tiny_job, tmp_path):  # noqa: F811
    argv = ("run", tiny_job / "job.yaml", "--max_steps", "4", "--save_strategy", "steps", "--save_steps", "2")
    full = hf(*argv, "--output_dir", tmp_path / "full")
    assert full.returncode == 0, full.stderr[-3000:]
    out = tmp_path / "run"
    crash("checkpoint-2", *argv, "--output_dir", out)
    assert not (out / "config.json").exists() and (out / "checkpoint-2" / STATE_NAME).is_file()
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "checkpoint-2").iterdir()}
    resumed = hf(*argv, "--output_dir", out, "--resume_from_checkpoint", "true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in (out / "checkpoint-2").iterdir()} == stamps  # not redone
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


# --------------------------------------------------------------------------- no code from a model folder
def _model_copy(tiny_job, folder: Path) -> dict:  # noqa: F811
    shutil.copytree(tiny_job / "model", folder)
    return json.loads((folder / "config.json").read_text())


def test_a_model_folder_with_its_own_code_never_runs_it(tiny_job, tmp_path):  # noqa: F811
    folder, marker = tmp_path / "remote", tmp_path / "code_ran"
    config = _model_copy(tiny_job, folder)
    config.update(model_type="hfu_remote", auto_map={
        "AutoConfig": "configuration_remote.RemoteConfig",
        "AutoModelForSequenceClassification": "modeling_remote.RemoteModel"})
    (folder / "config.json").write_text(json.dumps(config))
    for name in ("configuration_remote.py", "modeling_remote.py"):
        (folder / name).write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n")
    result = hf("run", tiny_job / "job.yaml", "--original_model", folder, "--output_dir", tmp_path / "o",
                input="y\ny\ny\n")  # a terminal user answering transformers' "[y/N]"
    line = error_line(result)
    assert "needs its own Python code" in line and str(folder) in line
    assert not marker.exists() and "[y/N]" not in result.stdout + result.stderr
    assert not (tmp_path / "o").exists()


def test_a_pickle_only_model_is_one_line(tiny_job, tmp_path):  # noqa: F811
    import argparse

    folder = tmp_path / "pickled"
    _model_copy(tiny_job, folder)
    weights = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save({**weights, "extra": argparse.Namespace(code="not a tensor")}, folder / "pytorch_model.bin")
    line = error_line(hf("run", tiny_job / "job.yaml", "--original_model", folder, "--output_dir", tmp_path / "o"))
    assert "weights are a pickle" in line and str(folder) in line
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------- bad flags: one line, before any write
@pytest.mark.parametrize("flags, message", [
    (["--forget_fraction", "0"], "forget_fraction=0.0 must be in (0, 1)"),
    (["--max_length", "0"], "max_length=0 must be ≥ 1"),
    (["--test_rows", "-5"], "test_rows=-5 must be ≥ 0"),
    (["--weight_decay", "nan"], "weight_decay=nan is not a finite number"),
    (["--max_grad_norm", "nan"], "max_grad_norm=nan is not a finite number"),
    (["--adam_beta1", "nan"], "adam_beta1=nan is not a finite number"),
    (["--adam_epsilon", "nan"], "adam_epsilon=nan is not a finite number"),
    (["--ssd_alpha", "nan"], "ssd_alpha=nan is not a finite number"),
    (["--ssd_lambda", "nan"], "ssd_lambda=nan is not a finite number"),
    (["--forget_epochs", "nan"], "--forget_epochs"),
    (["--seed", "-1"], "seed=-1 must be in [0, 2**32 - 1]"),
    (["--output_dir", ""], "output_dir is empty"),
    (["--output_dir", "{tmp}/a_file"], "is a file, not a folder"),
    (["--output_dir", "{tmp}/a_file/sub"], "cannot be made"),
    (["--resume_from_checkpoint", "{tmp}/nope"], "no such checkpoint folder"),
])
def test_bad_flags_are_one_line_before_any_write(tiny_job, tmp_path, flags, message):  # noqa: F811
    (tmp_path / "a_file").write_text("not a folder")
    flags = [f.format(tmp=tmp_path) for f in flags]
    out = [] if "--output_dir" in flags else ["--output_dir", tmp_path / "o"]
    assert message in error_line(hf("run", tiny_job / "job.yaml", *out, *flags))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_dir_is_one_line_before_any_work(tiny_job, tmp_path):  # noqa: F811
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o555)
    assert "is not writable" in error_line(hf("run", tiny_job / "job.yaml", "--output_dir", locked / "o"))


def test_a_latin1_data_file_is_named(tiny_job, tmp_path):  # noqa: F811
    for name in ("validation.csv", "test.csv"):
        shutil.copy(tiny_job / name, tmp_path / name)
    (tmp_path / "train.csv").write_bytes((tiny_job / "train.csv").read_bytes().replace(b"secretrow", b"caf\xe9", 1))
    line = error_line(hf("run", tiny_job / "job.yaml", "--dataset", tmp_path, "--output_dir", tmp_path / "o"))
    assert f"'{tmp_path / 'train.csv'}' is not UTF-8 text" in line and not (tmp_path / "o").exists()


def test_a_bom_in_a_forget_ids_file_is_not_part_of_the_first_id(tiny_job, tmp_path):  # noqa: F811
    ids = tmp_path / "ids.txt"
    ids.write_text("\ufefftrain-3\ntrain-5\n", encoding="utf-8")
    result = hf("split", "--config", tiny_job / "job.yaml", "--ids", ids, "--out", tmp_path / "s.json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(json.loads((tmp_path / "s.json").read_text())["forget"]) == ["train-3", "train-5"]


def test_a_bom_in_labels_txt_is_not_part_of_the_first_label(tmp_path):
    from hf_unlearn.data import bundled_sample_dir, label_names, load_goemotions

    folder = tmp_path / "goemotions"
    shutil.copytree(bundled_sample_dir("goemotions"), folder)
    labels = folder / "labels.txt"
    labels.write_bytes(b"\xef\xbb\xbf" + labels.read_bytes())
    names = label_names(load_goemotions(folder)["train"], "labels")
    assert names[0] == "admiration" and all(not n.startswith("\ufeff") for n in names)


# ------------------------------------------------------------------------------------------- audit errors
def test_audit_of_a_missing_folder_says_not_found(tmp_path):
    line = error_line(hf("audit", "--model", "no_such_run", cwd=tmp_path))
    assert "'no_such_run' not found: no such folder" in line  # the one resolver's line (issue 30)


@pytest.mark.parametrize("kind", ["labels", "task"])
def test_audit_of_a_model_made_for_other_data_is_one_line(tiny_job, tmp_path, kind):  # noqa: F811
    from transformers import BertConfig, BertForSequenceClassification, LlamaConfig, LlamaForCausalLM

    folder = tmp_path / "other"
    if kind == "labels":
        model = BertForSequenceClassification(BertConfig(vocab_size=35, hidden_size=16, num_hidden_layers=1,
                                                         num_attention_heads=2, intermediate_size=32, num_labels=5))
    else:
        model = LlamaForCausalLM(LlamaConfig(vocab_size=35, hidden_size=16, intermediate_size=32,
                                             num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2))
    model.save_pretrained(folder)
    for name in (tiny_job / "model").iterdir():  # the job's tokenizer
        if name.name not in ("config.json", "model.safetensors"):
            shutil.copy(name, folder)
    line = error_line(hf("audit", "--model", folder, "--config", tiny_job / "job.yaml", "--out", tmp_path / "a.json"))
    assert "was not made for this job's data" in line
    assert ("5 labels, not the data's 3" if kind == "labels" else "LlamaForCausalLM") in line
