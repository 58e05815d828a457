"""`git_commit`: a benchmark's results files name the commit and whether the code had uncommitted changes."""

import subprocess

from hf_unlearn.provenance import git_commit


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
