"""Provenance: the recorded command never carries the forget selector's values (class names, ids file), and a
results file names the commit and whether the code had uncommitted changes."""

import subprocess

from hf_unlearn.pipeline.job import SELECTOR_FLAGS
from hf_unlearn.provenance import git_commit, provenance


def test_job_provenance_redacts_the_forget_selector():
    argv = ["unlearn_bert.py", "--forget_classes", "joy", "anger", "--seed", "3", "--forget_ids=ids_of_alice.txt",
            "--output_dir", "out"]
    command = provenance(argv, seeds=[3], hide=SELECTOR_FLAGS)["command"]
    assert "joy" not in command and "anger" not in command and "alice" not in command
    assert "--forget_classes '<redacted>'" in command and "'--forget_ids=<redacted>'" in command
    assert "--seed 3" in command and "--output_dir out" in command  # everything else stays
    assert "joy" in provenance(argv)["command"]  # the benchmark's own commands are recorded whole


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_rewritten_results_are_not_code_changes(tmp_path):
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "pkg").mkdir()
    code, result = tmp_path / "pkg" / "code.py", tmp_path / "benchmarks" / "results" / "table.md"
    code.write_text("x = 1\n")
    result.write_text("| a |\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    assert git_commit(tmp_path / "pkg")["dirty"] is False
    result.write_text("| b |\n")  # an earlier run of a chain rewrote a results file
    assert git_commit(tmp_path / "pkg")["dirty"] is False
    code.write_text("x = 2\n")
    assert git_commit(tmp_path / "pkg")["dirty"] is True
