"""Provenance: the recorded command never carries the forget selector's values (class names, ids file)."""

from hf_unlearn.pipeline.job import SELECTOR_FLAGS
from hf_unlearn.provenance import provenance


def test_job_provenance_redacts_the_forget_selector():
    argv = ["unlearn_bert.py", "--forget_classes", "joy", "anger", "--seed", "3", "--forget_ids=ids_of_alice.txt",
            "--output_dir", "out"]
    command = provenance(argv, seeds=[3], hide=SELECTOR_FLAGS)["command"]
    assert "joy" not in command and "anger" not in command and "alice" not in command
    assert "--forget_classes '<redacted>'" in command and "'--forget_ids=<redacted>'" in command
    assert "--seed 3" in command and "--output_dir out" in command  # everything else stays
    assert "joy" in provenance(argv)["command"]  # the benchmark's own commands are recorded whole
