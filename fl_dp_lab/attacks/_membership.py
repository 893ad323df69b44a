"""Membership inference: was this example in the training set? (notebook 03, section 3).

The loss-threshold attack of Yeom et al. (2018): a model that memorised its
training set has a lower loss on those examples than on fresh ones, so guess
"member" when the loss is below a threshold. ``roc_curve`` sweeps the
threshold, ``auc`` and ``tpr_at_fpr`` summarise the curve, and
``bootstrap_auc_interval`` says how far the AUC measured on a few hundred
examples can be trusted. Re-exported by
``fl_dp_lab.attacks``, the public home of every attack of notebook 03.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy import stats
from torch import nn

from fl_dp_lab._validate import check_int, check_real, fail

__all__ = [
    "auc",
    "bootstrap_auc_interval",
    "membership_inference_scores",
    "roc_curve",
    "tpr_at_fpr",
]


@torch.no_grad()
def membership_inference_scores(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[..., torch.Tensor] = nn.functional.cross_entropy,
) -> np.ndarray:
    """Membership scores of the loss-threshold attack: minus the per-example loss.

    Yeom et al. (2018, Sec. 3.2, "Adversary 2") guess that (x, y) was in the
    training set when its loss is below a threshold; a higher score here
    means "more likely a member". Feed the scores of members and non-members
    to ``roc_curve``.

    Args:
        model: the trained model (put in eval mode for scoring).
        x, y: examples and integer labels.
        loss_fn: a loss accepting ``reduction="none"``.

    Returns:
        float64 array ``(n,)`` of scores.

    >>> model = nn.Linear(2, 2)
    >>> _ = [nn.init.zeros_(p) for p in model.parameters()]  # logits 0: loss log 2 for all
    >>> membership_inference_scores(model, torch.zeros(2, 2), torch.tensor([0, 1])).round(4)
    array([-0.6931, -0.6931])
    """
    if not isinstance(model, nn.Module):
        fail("model", "a torch.nn.Module", model, TypeError)
    if len(x) != len(y) or len(x) == 0:
        fail("x and y", "non-empty with the same length", (len(x), len(y)))
    was_training = model.training
    model.eval()
    losses = loss_fn(model(x), y, reduction="none")
    model.train(was_training)
    return -losses.double().numpy()


def roc_curve(scores: np.ndarray, is_member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC of a score-threshold test: false and true positive rates at every threshold.

    Thresholds sweep from +inf (nobody is called a member: (0, 0)) down
    through every distinct score to -inf ((1, 1)). Tied scores move together,
    so ties draw a diagonal segment, as they should.

    Args:
        scores: 1-D array, higher = more likely positive.
        is_member: 1-D array of 0/1 (or bool) ground truth, both classes present.

    Returns:
        ``(fpr, tpr)``, non-decreasing arrays from 0 to 1.

    >>> fpr, tpr = roc_curve(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 0, 1, 0]))
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    scores, positive = _check_scores(scores, is_member)
    order = np.argsort(-scores, kind="stable")
    scores, positive = scores[order], positive[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tp = np.cumsum(positive)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    tpr = np.r_[0.0, tp / positive.sum()]
    fpr = np.r_[0.0, fp / (~positive).sum()]
    return fpr, tpr


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under the ROC curve by the trapezoid rule.

    Equals P(score of a random member > score of a random non-member) + half
    the probability of a tie (the Mann-Whitney statistic): 1 for a perfect
    attack, 0.5 for guessing.

    >>> auc(np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0]))
    1.0
    """
    fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    if fpr.shape != tpr.shape or fpr.ndim != 1 or fpr.size < 2 or np.any(np.diff(fpr) < 0):
        fail("fpr and tpr", "1-D arrays of the same length >= 2 with fpr sorted", fpr.shape)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, *, max_fpr: float) -> float:
    """The best true positive rate reachable with false positive rate <= ``max_fpr``.

    Carlini et al. (2022, "Membership inference attacks from first
    principles", Sec. III) argue this low-FPR corner, not the AUC, is what
    matters: an attack that is sure about a few people is already a breach.

    >>> tpr_at_fpr(np.array([0.0, 0.1, 1.0]), np.array([0.0, 0.6, 1.0]), max_fpr=0.1)
    0.6
    """
    max_fpr = check_real("max_fpr", max_fpr, low=0.0, high=1.0)
    fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    return float(tpr[fpr <= max_fpr].max())


def bootstrap_auc_interval(
    member_scores: np.ndarray,
    nonmember_scores: np.ndarray,
    *,
    rng: np.random.Generator,
    resamples: int = 2000,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval for the AUC of a membership attack.

    Draws ``resamples`` times, with replacement, as many members and as many
    non-members as were given (each group on its own: the design fixed both
    counts), computes each resample's AUC and returns the (1 - confidence)/2
    and (1 + confidence)/2 quantiles of those AUCs (Efron & Tibshirani,
    1993, "An Introduction to the Bootstrap", Ch. 13). Each AUC is the
    Mann-Whitney statistic from midranks, so ties count one half, as in
    ``auc(*roc_curve(...))``. An interval that contains 0.5 means the
    attack cannot be told from guessing at this sample size.

    Args:
        member_scores, nonmember_scores: 1-D arrays of finite scores, higher =
            more likely a member, at least 2 each.
        rng: NumPy generator for the resampling.
        resamples: number of bootstrap resamples, >= 100.
        confidence: coverage of the interval, in (0, 1).

    Returns:
        ``(low, high)``.

    >>> low, high = bootstrap_auc_interval(
    ...     np.array([3.0, 2.0, 1.5, 0.5]), np.array([2.5, 1.0, 0.0, -1.0]),
    ...     rng=np.random.default_rng(0))
    >>> bool(0.2 < low < 0.75 < high <= 1.0)
    True
    """
    members = np.asarray(member_scores, dtype=np.float64)
    others = np.asarray(nonmember_scores, dtype=np.float64)
    for name, values in (("member_scores", members), ("nonmember_scores", others)):
        if values.ndim != 1 or values.size < 2 or not np.all(np.isfinite(values)):
            fail(name, "a 1-D array of at least 2 finite scores", values.shape)
    if not isinstance(rng, np.random.Generator):
        fail("rng", "a numpy.random.Generator", rng, TypeError)
    resamples = check_int("resamples", resamples, minimum=100)
    confidence = check_real(
        "confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True
    )
    m, n = members.size, others.size
    drawn = np.concatenate(
        [
            members[rng.integers(0, m, size=(resamples, m))],
            others[rng.integers(0, n, size=(resamples, n))],
        ],
        axis=1,
    )
    ranks = stats.rankdata(drawn, axis=1)  # midranks: a tie counts one half
    aucs = (ranks[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(aucs, [tail, 1.0 - tail])
    return float(low), float(high)


def _check_scores(scores: np.ndarray, is_member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(is_member)
    if scores.ndim != 1 or labels.shape != scores.shape or not np.all(np.isfinite(scores)):
        fail("scores and is_member", "1-D arrays of the same length, finite scores", scores.shape)
    if not np.all((labels == 0) | (labels == 1)):
        fail("is_member", "an array of 0/1 or booleans", labels.dtype)
    positive = labels.astype(bool)
    if positive.all() or not positive.any():
        fail("is_member", "holding both members (1) and non-members (0)", int(positive.sum()))
    return scores, positive
