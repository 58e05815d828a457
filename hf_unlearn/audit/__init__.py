"""Audit how well a model has forgotten its forget set: per-sample statistics, membership-inference attacks,
``evaluate`` metrics, reports (JSON / Markdown / PNG), side-by-side comparison and a Trainer callback.

Membership convention everywhere: forget samples are members (positive class), test samples non-members;
0.5 MIA accuracy / AUC means the forget set is indistinguishable from unseen data.
"""

from ._batching import model_outputs
from .attacks import (
    MIN_SAMPLES_PER_CLASS,
    MIAResult,
    ReferenceAttackResult,
    ThresholdResult,
    lm_attacks,
    mia,
    rmia,
    threshold_attack,
)
from .callback import AuditCallback
from .compare import DEFAULT_TOLERANCES, Comparison, Verdict, compare
from .competition import (
    CompetitionScore,
    competition_score,
    example_epsilons,
    example_scores,
    forgetting_quality,
    logit_confidence,
    model_confidences,
)
from .metrics import MIAMetric, ThresholdAttackMetric, UnlearningAuditMetric
from .registry import ATTACKS, Attack, register_attack
from .report import UnlearningReport, audit_model, reference_losses
from .stats import sample_stats
from .tofu import TofuData, tofu_markdown, tofu_metrics, truth_ratios

__all__ = [
    "ATTACKS",
    "DEFAULT_TOLERANCES",
    "MIN_SAMPLES_PER_CLASS",
    "Attack",
    "AuditCallback",
    "CompetitionScore",
    "Comparison",
    "MIAMetric",
    "MIAResult",
    "ReferenceAttackResult",
    "ThresholdAttackMetric",
    "ThresholdResult",
    "TofuData",
    "UnlearningAuditMetric",
    "UnlearningReport",
    "Verdict",
    "audit_model",
    "compare",
    "competition_score",
    "example_epsilons",
    "example_scores",
    "forgetting_quality",
    "lm_attacks",
    "logit_confidence",
    "mia",
    "model_confidences",
    "model_outputs",
    "reference_losses",
    "register_attack",
    "rmia",
    "sample_stats",
    "threshold_attack",
    "tofu_markdown",
    "tofu_metrics",
    "truth_ratios",
]
