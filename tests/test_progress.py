"""Fine-tuning without a progress bar is not silent: StepProgress prints step k/N lines (first, last, every N s)."""

from test_causal_lm import qa_rows, tiny_llama

from hf_unlearn.data.collators import CausalLMCollator
from hf_unlearn.pipeline.recipes import FinetuneRecipe, finetune


def test_finetune_prints_progress_lines_without_a_progress_bar(tmp_path, capsys):
    recipe = FinetuneRecipe(epochs=3, learning_rate=1e-3, batch_size=4)
    finetune(tiny_llama(), qa_rows(8, 0), recipe, output_dir=str(tmp_path), disable_tqdm=True,
             data_collator=CausalLMCollator(pad_token_id=0))
    lines = [line.strip() for line in capsys.readouterr().out.splitlines() if "fine-tuning: step" in line]
    assert lines[0].startswith("fine-tuning: step 1/6,") and lines[-1].startswith("fine-tuning: step 6/6,")
    assert all("s elapsed" in line and "s left" in line for line in lines)
    finetune(tiny_llama(), qa_rows(8, 0), recipe, output_dir=str(tmp_path), disable_tqdm=False,
             data_collator=CausalLMCollator(pad_token_id=0))
    assert "fine-tuning: step" not in capsys.readouterr().out  # the progress bar shows it instead
