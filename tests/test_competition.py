"""The competition's per-example forgetting score (hf_unlearn.audit.competition)."""

import math

import numpy as np
import pytest

from hf_unlearn.audit import (
    competition_score,
    example_epsilons,
    example_scores,
    forgetting_quality,
    logit_confidence,
)


def test_identical_outputs_score_one():
    rng = np.random.default_rng(0)
    outputs = rng.normal(size=(8, 20))
    assert np.all(example_epsilons(outputs, outputs.copy()) == 0)
    assert forgetting_quality(outputs, outputs.copy()) == 1.0


def test_fully_separated_outputs_score_zero():
    rng = np.random.default_rng(0)
    unlearned, retrained = rng.normal(size=(8, 20)), rng.normal(10, 1, size=(8, 20))
    assert np.all(example_epsilons(unlearned, retrained) == 50)
    assert forgetting_quality(unlearned, retrained) == 0.0
    # the direction does not matter
    assert forgetting_quality(retrained, unlearned) == 0.0


def test_known_case_by_hand():
    # 4 models a side. Example 0: retrained [2,3,4,5], unlearned [0,1,2,3]: FPR and FNR move in steps of 1/4 and no
    # rule separates them (2 and 3 are in both), so the best rule has FPR = FNR = 1/4 (threshold 3):
    # ε = log((1 − δ − 1/4) / (1/4)) = log(3 − 4δ) ≈ 1.0986, bucket 2 of width 0.5 → 2^−2 = 0.25
    # (4 buckets below ⌈log 3⌉ = 2). Example 1: identical → ε = 0 → 1. Example 2: separated → ε capped → 0.
    unlearned = np.array([[0, 7, 0], [1, 8, 1], [2, 9, 2], [3, 6, 3]], dtype=float)
    retrained = np.array([[2, 7, 20], [3, 8, 21], [4, 9, 22], [5, 6, 23]], dtype=float)
    eps = example_epsilons(unlearned, retrained)
    assert eps[0] == pytest.approx(math.log(3 - 4e-5), abs=1e-9)
    assert eps[1] == 0 and eps[2] == 50
    assert example_scores(eps, 4).tolist() == [0.25, 1.0, 0.0]
    assert forgetting_quality(unlearned, retrained) == pytest.approx(1.25 / 3)
    result = competition_score(unlearned, retrained, retain_acc=[0.8, 0.9], test_acc=0.6, retrained_retain_acc=1.0,
                               retrained_test_acc=0.5)
    assert result.score == pytest.approx(1.25 / 3 * 0.85 * 1.2)
    assert result.n_models == 4 and result.epsilons[1] == 0


def test_buckets_follow_the_number_of_models():
    # ⌈log(N − 1)⌉: 8 models → 2 → 4 buckets; 512 → 7 → 14 buckets
    assert example_scores([0.0, 0.49, 0.5, 1.2, 1.99, 2.0], 8).tolist() == [1, 1, 0.5, 0.25, 0.125, 0]
    assert example_scores([6.9], 512).tolist() == [0.5 ** 13]


def test_more_overlap_scores_higher():
    # finite samples of one distribution do not score 1 (the best of many rules fits the sampling noise: the
    # setting's ceiling, measured by scoring retrained models against other retrained ones), but less overlap scores
    # lower
    rng = np.random.default_rng(1)
    retrained = rng.normal(size=(16, 30))
    same = forgetting_quality(rng.normal(size=(16, 30)), retrained)
    shifted = forgetting_quality(rng.normal(1.5, 1, size=(16, 30)), retrained)
    assert 1 > same > 2 * shifted > 0


def test_logit_confidence():
    logits = np.array([[0.0, 0.0], [2.0, 0.0], [1000.0, 0.0]])
    conf = logit_confidence(logits, [0, 0, 0])
    assert conf[0] == pytest.approx(0) and conf[1] == pytest.approx(2) and conf[2] == pytest.approx(1000)


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match="at least 3"):
        forgetting_quality(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="same forget examples"):
        forgetting_quality(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"\[models, examples\]"):
        forgetting_quality(np.zeros(4), np.zeros(4))
