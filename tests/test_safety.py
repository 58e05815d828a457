"""Safe loading: no pickle-based loads, no remote code unless asked, safetensors for saved weights."""

import re
from pathlib import Path

from helpers import tiny_bert, token_dataset
from transformers import default_data_collator

from hf_unlearn import UnlearningArguments, UnlearningTrainer

PACKAGE = Path(__file__).resolve().parents[1] / "hf_unlearn"


def test_no_unsafe_loading_in_the_package():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, f"{path.name}: {call}"
        assert "pickle.load" not in text, path.name
        assert "trust_remote_code=True" not in text, path.name


def test_weights_are_saved_as_safetensors(tmp_path):
    data = token_dataset(32, 0)
    args = UnlearningArguments(str(tmp_path), per_device_train_batch_size=8, report_to=[], forget_epochs=1)
    trainer = UnlearningTrainer(model=tiny_bert(), args=args, forget_dataset=data.select(range(8)),
                                retain_dataset=data.select(range(8, 32)), validation_dataset=token_dataset(16, 1),
                                data_collator=default_data_collator)
    trainer.train()
    trainer.save_model()
    assert (tmp_path / "model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin")) or [p.name for p in tmp_path.glob("*.bin")] == ["training_args.bin"]
