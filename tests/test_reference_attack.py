"""The per-example reference-model attack (RMIA): stronger than the population loss attack on a model that saw
the forget rows, near chance on one that did not, and a pure function of its inputs."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from hf_unlearn.audit import audit_model, reference_losses, rmia
from tests.helpers import overfit, tiny_bert


def _rows(n: int, seed: int, noisy: float = 0.25) -> datasets.Dataset:
    """Rows whose label follows a rule (easy, learnable by any model) except a ``noisy`` fraction (random labels:
    only a model that saw the row can get it right). The per-row difficulty is what a reference model calibrates."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 60, (n, 8), generator=g)
    labels = ids[:, 0] % 3
    flip = torch.rand(n, generator=g) < noisy
    labels[flip] = torch.randint(0, 3, (int(flip.sum()),), generator=g)
    return datasets.Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": [[1] * 8] * n,
                                       "labels": labels.tolist()})


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("rmia"))
    forget, retain, test, population = _rows(48, 1), _rows(96, 2), _rows(96, 3), _rows(96, 4)
    train = datasets.concatenate_datasets([forget, retain])
    target = overfit(tiny_bert(seed=0), train, epochs=15, out=out)
    reference = overfit(tiny_bert(seed=1), retain, epochs=15, out=out)  # never saw forget
    unseen = overfit(tiny_bert(seed=2), retain, epochs=15, out=out)  # never saw forget either; not a reference
    return dict(forget=forget, test=test, population=population, target=target, reference=reference, unseen=unseen)


def test_rmia_separates_members_more_strongly_than_the_population_loss_attack(models):
    m = models
    report = audit_model(m["target"], forget=m["forget"], test=m["test"], population=m["population"],
                         references=[m["reference"]])
    r = report.ref_attack
    assert r.n_members == 48 and r.n_nonmembers == 96 and r.n_population == 96 and r.n_reference_models == 1
    y = np.r_[np.ones(r.n_members), np.zeros(r.n_nonmembers)]
    loss_auc = roc_auc_score(y, -np.r_[report.forget_losses, report.test_losses])  # same rows, population attack
    assert r.auc > loss_auc + 0.05, (r.auc, loss_auc)
    assert r.auc > 0.5 + 4 * r.null_auc_std
    assert 0 <= r.tpr_at_0_1pct_fpr <= r.tpr_at_1pct_fpr <= 1
    assert "RMIA" in report.to_markdown() and report.to_dict()["ref_attack"]["auc"] == r.auc


def test_rmia_is_near_chance_on_a_model_that_never_saw_the_rows(models):
    m = models
    refs = [reference_losses(m["reference"], forget=m["forget"], test=m["test"], population=m["population"])]
    report = audit_model(m["unseen"], forget=m["forget"], test=m["test"], population=m["population"],
                         references=refs)
    assert abs(report.ref_attack.auc - 0.5) <= 3 * report.ref_attack.null_auc_std, report.ref_attack


def test_rmia_is_a_pure_function_of_losses_and_checks_its_inputs():
    rng = np.random.default_rng(0)
    target = {k: rng.exponential(size=n) for k, n in (("forget", 30), ("test", 40), ("population", 50))}
    ref = {k: v + rng.normal(scale=0.1, size=len(v)) for k, v in target.items()}
    a, b = rmia(target, [ref]), rmia(dict(target), [dict(ref)])
    assert a == b
    # A target identical to its reference with a = 1 gives ratio 1 everywhere: no signal at all.
    assert rmia(target, [target], offline_a=1.0).auc == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least one reference"):
        rmia(target, [])
    with pytest.raises(ValueError, match="same rows"):
        rmia(target, [{**ref, "test": ref["test"][:-1]}])
    with pytest.raises(ValueError, match="population"):
        audit_model(torch.nn.Linear(1, 1), forget=[{}] * 10, test=[{}] * 10, references=[ref])


def test_the_audit_is_a_pure_function_of_model_rows_and_seed(models):
    m = models

    def run():
        r = audit_model(m["target"], forget=m["forget"], test=m["test"], population=m["population"],
                        references=[m["reference"]], seed=3)
        return r.to_dict()

    first = run()
    torch.manual_seed(12345), np.random.seed(99)  # noqa: B018 - whatever ran before must not matter
    torch.rand(1000)
    assert run() == first
