"""`UnlearningTrainer` (`trainer`) and what it is made of: its arguments and run plan (`arguments`), the callbacks,
the one-shot methods (`one_shot`), the frozen reference under DeepSpeed (`deepspeed_reference`), PEFT adapters
(`peft`), checkpoints and the atomic save (`checkpoints`, `persistence`, `fingerprint`), audit/card/push
(`reporting`)."""
