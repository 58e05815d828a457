"""What the examples did on their own and the job pipeline now does for every job: a forget selector on the command
line replaces the config's, class removal's settings, the built-in byte tokenizer with a causal LM built from a
config, TOFU's source chain (down to the bundled sample) and its answer variants for the audit, the recipe's warmup,
the retrained reference's step budget."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hf_unlearn.pipeline.cache import recipe_key
from hf_unlearn.pipeline.class_removal import apply_class_removal
from hf_unlearn.pipeline.config import load_job
from hf_unlearn.pipeline.data import load_raw, load_tofu_for, select, selector_of, tofu_audit_rows
from hf_unlearn.pipeline.job import JobArguments
from hf_unlearn.pipeline.models import load_processor, new_base_model
from hf_unlearn.pipeline.recipes import FinetuneRecipe
from hf_unlearn.trainer.plan import automatic_forget_epochs

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY_LLAMA = {
    "model_type": "llama",
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "max_position_embeddings": 64,
}


def test_a_selector_on_the_command_line_replaces_the_configs(tmp_path):
    job, _ = load_job(CONFIGS / "mnist_vit.yaml", ["--forget_classes", "3", "--output_dir", str(tmp_path)])
    assert job.forget_fraction is None and job.forget_classes == ["3"]  # the config says forget_fraction: 0.15
    job, _ = load_job(
        CONFIGS / "mnist_vit.yaml", ["--forget_classes", "3", "--forget_fraction", "0.1", "--output_dir", str(tmp_path)]
    )
    with pytest.raises(ValueError, match="Choose one forget selector"):
        selector_of(job)


def test_class_removal_settings_apply_unless_the_run_sets_them(tmp_path):
    argv = ["--forget_classes", "3", "--output_dir", str(tmp_path), "--use_cpu", "true"]
    job, args = load_job(CONFIGS / "mnist_vit.yaml", argv)
    source = apply_class_removal(job, args, n_forget=300, n_retain=1700, num_labels=10)
    assert source == "2 × log(num_labels)" and args.tau == pytest.approx(2 * math.log(10))
    assert args.learning_rate == pytest.approx(3e-4)  # not the image default 1e-3
    automatic = automatic_forget_epochs(300, 1700, args.per_device_train_batch_size)
    assert args.forget_epochs == automatic_forget_epochs(300, 1700, args.per_device_train_batch_size, 2.0) > automatic
    job, args = load_job(
        CONFIGS / "mnist_vit.yaml", [*argv, "--tau", "1.5", "--learning_rate", "1e-3", "--forget_epochs", "1"]
    )
    assert apply_class_removal(job, args, 300, 1700, 10) == "tau (set)"
    assert (args.tau, args.learning_rate, args.forget_epochs) == (1.5, 1e-3, 1)


def test_byte_tokenizer_sizes_a_causal_lm_built_from_a_config():
    job = JobArguments(dataset="tofu", model_config=TINY_LLAMA, tokenizer="bytes")
    tokenizer = load_processor(job, "causal_lm")
    model = new_base_model(job, "causal_lm", 0, None, seed=0, processor=tokenizer)
    assert model.config.vocab_size == len(tokenizer) == 259 and model.config.pad_token_id == tokenizer.pad_token_id
    with pytest.raises(ValueError, match="set tokenizer .*bytes"):
        load_processor(JobArguments(dataset="tofu", model_config=TINY_LLAMA), "causal_lm")


def test_tofu_offline_without_local_files_uses_the_bundled_sample(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_UNLEARN_DATA_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    forget, retain, source = load_tofu_for(JobArguments(dataset="tofu"))
    assert (len(forget), len(retain)) == (40, 80) and "TOFU sample bundled with hf-unlearn" in source
    with pytest.raises(FileNotFoundError, match="forget10 only"):
        load_tofu_for(JobArguments(dataset="tofu", forget_split="forget05"))


def test_tofu_audit_rows_are_the_forget_rows_with_their_answer_variants(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_UNLEARN_DATA_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    job = JobArguments(dataset="tofu", forget_rows=8, train_rows=20, val_rows=10, test_rows=10)
    forget, retain = select(job, load_raw(job, None, seed=3), seed=3)
    rows, qa = tofu_audit_rows(job, forget, retain)
    assert rows["question"] == forget["question"] and rows["answer"] == forget["answer"]
    assert {"paraphrased_answer", "perturbed_answer"} <= set(rows.column_names) and qa.column_names == [
        "question",
        "answer",
    ]


def test_the_recipes_warmup_and_weight_decay_are_part_of_the_cache_key():
    job = JobArguments()
    keys = [
        recipe_key(job, "single_label", FinetuneRecipe(warmup=w, weight_decay=d), ("train_rows",))
        for w, d in ((0.0, 0.01), (0.1, 0.01), (0.0, 0.0))
    ]
    assert keys[0] != keys[1] and keys[0] != keys[2]


def test_a_recipe_fixed_to_the_originals_steps_trains_that_many_steps_on_fewer_rows(tmp_path):
    """The retrained reference's budget: the optimizer steps the original took on all rows, not its epochs."""
    from helpers import tiny_bert, token_dataset
    from transformers import default_data_collator

    from hf_unlearn.pipeline.recipes import finetune

    recipe = FinetuneRecipe(epochs=2, batch_size=4, learning_rate=1e-3)
    assert recipe.steps_on(16) == 8 and recipe.steps_on(10) == 6 and recipe.steps_on(16, processes=2) == 4
    steps = recipe.with_steps_of(16)
    assert steps.max_steps == 8 and steps.steps_on(10) == 8 and steps.epochs == recipe.epochs
    assert recipe.for_retrain("steps", 16) == steps and recipe.for_retrain("epochs", 16) == recipe
    with pytest.raises(ValueError, match="retrain_budget='weeks' is not one of"):
        recipe.for_retrain("weeks", 16)
    for how, expected in ((recipe, 6), (steps, 8)):
        out = tmp_path / str(expected)
        finetune(tiny_bert(), token_dataset(10, 0), how, output_dir=str(out), data_collator=default_data_collator,
                 save_strategy="steps", save_steps=10_000)  # saves once, at the last step
        assert [p.name for p in out.glob("checkpoint-*")] == [f"checkpoint-{expected}"]
    # a recipe without max_steps keys a cache as it did before the field existed
    job = JobArguments(dataset="goemotions")
    assert "max_steps" not in recipe_key(job, "single_label", recipe, ())["recipe"]
    assert recipe_key(job, "single_label", steps, ())["recipe"]["max_steps"] == 8
