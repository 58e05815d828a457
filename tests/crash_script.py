"""Run a tiny unlearning job for the crash/resume tests: `python crash_script.py OUT full|crash|resume`.

`crash` SIGKILLs its own process right after the checkpoint at step 4 is saved (no clean-up, no atexit).
Writes the final weights to OUT/final.safetensors.
"""

import os
import signal
import sys

import torch
from helpers import tiny_bert, token_dataset
from safetensors.torch import save_file
from transformers import TrainerCallback, default_data_collator

from hf_unlearn import UnlearningArguments, UnlearningTrainer


class KillAfterSave(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if state.global_step == 4:
            os.kill(os.getpid(), signal.SIGKILL)


def main(out: str, mode: str) -> None:
    torch.set_num_threads(1)
    train = token_dataset(48, 0)
    args = UnlearningArguments(out, per_device_train_batch_size=8, forget_epochs=4, tau_refresh_epochs=1,
                               save_strategy="steps", save_steps=2, report_to=[], disable_tqdm=True, seed=3)
    trainer = UnlearningTrainer(model=tiny_bert(), args=args, forget_dataset=train.select(range(16)),
                                retain_dataset=train.select(range(16, 48)), validation_dataset=token_dataset(24, 1),
                                data_collator=default_data_collator,
                                callbacks=[KillAfterSave()] if mode == "crash" else None)
    trainer.train(resume_from_checkpoint=True if mode == "resume" else None)
    weights = {k: v.contiguous() for k, v in trainer.model.state_dict().items()}
    save_file(weights, os.path.join(out, "final.safetensors"))
    with open(os.path.join(out, "tau.txt"), "w") as f:
        f.write(repr([h["tau"] for h in trainer.tau_history]))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
