"""Method hyperparameters are owned by their methods: each declares its knobs and defaults, ``method_kwargs`` sets
them, the flat arguments (npo_beta, scrub_*, ssd_*) stay as aliases, and a new method is one registration."""

import pytest
from helpers import tiny_bert, token_dataset
from transformers import HfArgumentParser, default_data_collator

from hf_unlearn import UnlearningArguments, UnlearningTrainer
from hf_unlearn.methods import METHODS, Method, register
from hf_unlearn.methods.base import mean
from hf_unlearn.pipeline.config import load_job


def _args(tmp_path, **kw):
    return UnlearningArguments(str(tmp_path / "out"), report_to=[], **kw)


def _trained(tmp_path, method, method_kwargs, max_steps):
    """A tiny BERT unlearned for ``max_steps`` steps (8 forget + 40 retain rows)."""
    train = token_dataset(48, 0)
    args = _args(tmp_path, method=method, method_kwargs=method_kwargs, per_device_train_batch_size=8,
                 max_steps=max_steps, disable_tqdm=True, seed=0)
    trainer = UnlearningTrainer(model=tiny_bert(), args=args, forget_dataset=train.select(range(8)),
                                retain_dataset=train.select(range(8, 48)), data_collator=default_data_collator)
    trainer.train()
    return trainer


def test_defaults_are_the_methods_own(tmp_path):
    assert _args(tmp_path, method="npo").method_hparams() == {"npo_beta": 0.1, "retain_weight": 1.0}
    assert _args(tmp_path, method="scrub").method_hparams() == {
        "retain_weight": 1.0, "scrub_kl_weight": 0.5, "scrub_temperature": 4.0, "scrub_msteps": None}
    assert _args(tmp_path, method="ssd").method_hparams() == {"ssd_alpha": None, "ssd_lambda": 1.0}  # α automatic
    # nabla_tau: α and τ are arguments of the run; its one knob is what the gate pushes towards
    assert _args(tmp_path).method_hparams() == {"tau_target": "mean", "forget_push": "ascent",
                                                "update_from_layer": None}
    assert _args(tmp_path, tau_target="quantiles").method_hparams()["tau_target"] == "quantiles"
    with pytest.raises(ValueError, match="tau_target='median'; choose one of mean, quantiles"):
        _args(tmp_path, method_kwargs={"tau_target": "median"})


def test_flat_arguments_are_aliases_of_method_kwargs(tmp_path):
    flat = _args(tmp_path, method="npo", npo_beta=0.2, retain_weight=0.5).method_hparams()
    kwargs = _args(tmp_path, method="npo", method_kwargs={"npo_beta": 0.2, "retain_weight": 0.5}).method_hparams()
    both = _args(tmp_path, method="npo", npo_beta=0.2, method_kwargs={"npo_beta": 0.2}).method_hparams()
    assert flat == kwargs == {"npo_beta": 0.2, "retain_weight": 0.5} and both["npo_beta"] == 0.2
    (parsed,) = HfArgumentParser(UnlearningArguments).parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--method", "scrub", "--method_kwargs", '{"scrub_msteps": 2}'])
    assert parsed.method_hparams()["scrub_msteps"] == 2
    config = tmp_path / "job.yaml"
    config.write_text(f"method: npo\nmethod_kwargs:\n  npo_beta: 0.2\noutput_dir: {tmp_path / 'job'}\n")
    assert load_job(config, [])[1].method_hparams()["npo_beta"] == 0.2  # a dict in a YAML config
    with pytest.raises(ValueError, match="npo_beta is 0.3 but method_kwargs gives 0.2; set it one way"):
        _args(tmp_path, method="npo", npo_beta=0.3, method_kwargs={"npo_beta": 0.2})
    with pytest.raises(ValueError, match=r"not hyperparameters of 'npo'; it reads: npo_beta, retain_weight"):
        _args(tmp_path, method="npo", method_kwargs={"ssd_alpha": 3})
    with pytest.raises(ValueError, match="npo_beta=0 must be > 0"):
        _args(tmp_path, method="npo", method_kwargs={"npo_beta": 0})
    with pytest.raises(ValueError, match="ssd_alpha=-1.0 must be > 0"):
        _args(tmp_path, method="ssd", ssd_alpha=-1.0)
    with pytest.raises(ValueError, match="not a JSON object"):
        _args(tmp_path, method="npo", method_kwargs="npo_beta=0.2")


def test_a_new_method_is_one_registration(tmp_path):
    seen = []

    def objective(x):
        seen.append(dict(x.hparams))
        return -x.hparams["gamma"] * mean(x.forget_losses) + mean(x.retain_losses)

    def check(hp):
        if hp["gamma"] <= 0:
            raise ValueError(f"gamma={hp['gamma']} must be > 0.")

    register(Method("scaled_ascent", objective, hparams=("gamma",), defaults={"gamma": 2.0}, check=check))
    try:
        with pytest.raises(ValueError, match="gamma=-1 must be > 0"):
            _args(tmp_path, method="scaled_ascent", method_kwargs={"gamma": -1})
        trainer = _trained(tmp_path, "scaled_ascent", {"gamma": 0.5}, max_steps=2)
        assert seen and all(hp == {"gamma": 0.5} for hp in seen)
        assert trainer.job["arguments"]["gamma"] == 0.5  # part of the job's identity (resume checks)
        assert _args(tmp_path, method="scaled_ascent").method_hparams() == {"gamma": 2.0}
    finally:
        METHODS.pop("scaled_ascent")


def test_the_card_lists_the_methods_hyperparameters(tmp_path):
    """The card's argument table reads the resolved hyperparameters (SCRUB's default max phase, None, included)."""
    from hf_unlearn.hub.card import build_model_card

    card = str(build_model_card(_trained(tmp_path, "scrub", {"scrub_temperature": 2.0}, max_steps=1)))
    assert "| scrub_temperature | 2 |" in card and "| scrub_kl_weight | 0.5 |" in card
    assert "| scrub_msteps | None |" in card
