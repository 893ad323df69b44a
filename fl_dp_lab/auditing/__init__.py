"""Auditing differential privacy: an empirical epsilon lower bound from a membership game.

The membership game (notebook 10). An auditor fixes two neighbouring
datasets: D, and D' = D plus one planted record, the *canary*. Each trial
runs the mechanism M on one of them and the auditor, seeing only the output,
guesses "canary in" (positive) or "canary out" (negative). Over many trials
the guesses fill a confusion table: true/false positives and negatives.

Why the table bounds epsilon. For an (epsilon, delta)-DP mechanism, every
test of D against D' has false positive rate FPR and false negative rate FNR
with

    FPR + e^eps * FNR >= 1 - delta   and   FNR + e^eps * FPR >= 1 - delta

(Kairouz, Oh & Viswanath, 2015, Thm. 2.1; Wasserman & Zhou, 2010), so the
rates of *any* attack certify

    eps >= max(log((1 - delta - FPR) / FNR), log((1 - delta - FNR) / FPR)).

Measured rates are only estimates, so each is replaced by an upper
confidence bound (Clopper & Pearson, 1934) before it enters the formula:
the reported epsilon is then a lower bound on the mechanism's true epsilon
with probability at least ``confidence`` (Jagielski, Ullman & Oprea, 2020;
Nasr et al., 2021). A lower bound *above* the epsilon an
accountant claims proves the code (or its analysis) wrong; a bound below it
proves nothing: the attack may simply be weak.

This module is the statistics of the game, for any mechanism that produces
a score per trial; ``fl_dp_lab.auditing.canaries`` plays it against DP-SGD's
privatised gradient sum (and against two planted bugs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy import stats

from fl_dp_lab._validate import check_int, check_real, fail

__all__ = [
    "AuditResult",
    "MembershipCounts",
    "audit_scores",
    "best_threshold",
    "clopper_pearson",
    "epsilon_lower_bound",
    "membership_counts",
]


#: The largest count of trials (and of each cell of a confusion table) the bounds take:
#: scipy's Beta quantiles need counts that fit a C long, and no audit runs 10^15 trials.
MAX_TRIALS = 10**15


class MembershipCounts(NamedTuple):
    """The confusion table of a membership game ("positive" = the canary was in)."""

    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int


@dataclass(frozen=True)
class AuditResult:
    """One audit: the certified epsilon and how it was obtained.

    Attributes:
        epsilon: the empirical lower bound (>= 0), valid with probability >= ``confidence``.
        threshold: the score above which the attack guesses "canary in".
        counts: the confusion table on the held-out trials the bound is computed from.
        delta: the delta the bound is stated at.
        confidence: the confidence level of the Clopper-Pearson intervals.
    """

    epsilon: float
    threshold: float
    counts: MembershipCounts
    delta: float
    confidence: float


def clopper_pearson(
    successes: int, trials: int, *, confidence: float = 0.95
) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided confidence interval for a binomial proportion.

    For k successes in n trials and alpha = 1 - confidence,

        low  = Beta quantile at alpha / 2     of Beta(k, n - k + 1)   (0 when k = 0)
        high = Beta quantile at 1 - alpha / 2 of Beta(k + 1, n - k)   (1 when k = n)

    ``high`` is the p at which P[Binomial(n, p) <= k] = alpha / 2, so each end
    alone is a one-sided bound at level 1 - alpha / 2; the interval covers the
    true p with probability >= ``confidence`` for every p (Clopper & Pearson,
    1934). It never collapses: 0 errors in n trials still gives high = 1 -
    (alpha / 2)^(1 / n) > 0.

    Args:
        successes: k, an integer in [0, trials].
        trials: n >= 1.
        confidence: in (0, 1).

    Returns:
        ``(low, high)`` with 0 <= low <= k / n <= high <= 1.

    >>> low, high = clopper_pearson(0, 10)
    >>> low, round(high, 4), round(1 - 0.025 ** (1 / 10), 4)
    (0.0, 0.3085, 0.3085)
    """
    trials = check_int("trials", trials, minimum=1, maximum=MAX_TRIALS)
    successes = check_int("successes", successes, minimum=0, maximum=trials)
    alpha = 1.0 - _check_confidence(confidence)
    low = 0.0 if successes == 0 else stats.beta.ppf(alpha / 2, successes, trials - successes + 1)
    return float(low), float(_upper_bound(successes, trials, alpha))


def epsilon_lower_bound(
    *,
    true_positives: int,
    false_positives: int,
    true_negatives: int,
    false_negatives: int,
    delta: float,
    confidence: float = 0.95,
) -> float:
    """The epsilon a membership game's confusion table certifies, with Clopper-Pearson bounds.

    With FPR_hi and FNR_hi the upper ends of the two-sided Clopper-Pearson
    intervals (``clopper_pearson``) of FP / (FP + TN) and FN / (FN + TP),

        eps_lo = max(log((1 - delta - FPR_hi) / FNR_hi),
                     log((1 - delta - FNR_hi) / FPR_hi), 0),

    the hypothesis-testing bound of (epsilon, delta)-DP (Kairouz et al., 2015,
    Thm. 2.1) evaluated at rates no smaller than the true ones. Each upper end
    holds with probability >= 1 - alpha / 2, so both hold together with
    probability >= 1 - alpha = ``confidence`` (union bound), and then the true
    epsilon is >= eps_lo (Jagielski et al., 2020; Nasr et al., 2021). A term
    whose numerator is <= 0 certifies nothing and counts as 0.

    Args:
        true_positives: canary in, guessed in; >= 0.
        false_positives: canary out, guessed in; >= 0.
        true_negatives: canary out, guessed out; >= 0.
        false_negatives: canary in, guessed out; >= 0.
        delta: the delta of the claimed guarantee, in (0, 1).
        confidence: level of the Clopper-Pearson intervals, in (0, 1).

    Returns:
        The lower bound eps_lo >= 0 (finite: Clopper-Pearson never reports a rate of 0).

    Raises:
        ValueError: a negative count, no trial with (or without) the canary,
            delta or confidence outside (0, 1).
        TypeError: a count that is not an integer.

    A perfect attack on 1,000 trials of each kind: FPR_hi = FNR_hi = 1 - 0.025^(1/1000).

    >>> round(epsilon_lower_bound(true_positives=1000, false_positives=0, true_negatives=1000,
    ...                           false_negatives=0, delta=1e-5), 3)
    5.601
    """
    tp, fp, tn, fn = (
        check_int(name, value, minimum=0, maximum=MAX_TRIALS)
        for name, value in (
            ("true_positives", true_positives),
            ("false_positives", false_positives),
            ("true_negatives", true_negatives),
            ("false_negatives", false_negatives),
        )
    )
    if tp + fn == 0:
        fail("true_positives + false_negatives", "> 0 (trials with the canary in)", tp + fn)
    if fp + tn == 0:
        fail("false_positives + true_negatives", "> 0 (trials with the canary out)", fp + tn)
    delta = _check_delta(delta)
    alpha = 1.0 - _check_confidence(confidence)
    return float(_epsilon_bounds(np.array([tp]), np.array([fp]), tn + fp, tp + fn, delta, alpha)[0])


def membership_counts(scores_in: Any, scores_out: Any, *, threshold: float) -> MembershipCounts:
    """Confusion table of the attack "guess canary in when score > threshold".

    Args:
        scores_in: 1-D scores of trials with the canary in, at least one.
        scores_out: 1-D scores of trials with the canary out, at least one.
        threshold: a real number (``-inf`` guesses "in" every time).

    Returns:
        The ``MembershipCounts``.

    >>> membership_counts([2.0, 3.0, 0.5], [0.0, 1.5], threshold=1.0)
    MembershipCounts(true_positives=2, false_positives=1, true_negatives=1, false_negatives=1)
    """
    scores_in, scores_out = _check_scores(scores_in, scores_out, minimum=1)
    threshold = check_real("threshold", threshold, allow_inf=True)
    tp = int(np.sum(scores_in > threshold))
    fp = int(np.sum(scores_out > threshold))
    return MembershipCounts(tp, fp, scores_out.size - fp, scores_in.size - tp)


def best_threshold(
    scores_in: Any, scores_out: Any, *, delta: float, confidence: float = 0.95
) -> float:
    """The threshold whose confusion table certifies the largest epsilon on these trials.

    Tries "score > t" for t = -inf, every midpoint between two consecutive
    distinct observed scores, and the largest score (every guess "out"), and
    keeps the t that maximises ``epsilon_lower_bound``, breaking ties (for
    example when too few trials certify nothing anywhere) by the larger
    TPR - FPR. These candidates give every confusion table a threshold can
    give on these trials; a midpoint, rather than an observed score, leaves
    a margin on both sides for fresh trials (when the two worlds separate,
    t lands halfway between them, not on the edge of one). The bound at the
    chosen t is a maximum over many tests and so is biased upwards on these
    same trials: score the threshold on fresh trials (``audit_scores`` does).

    Args:
        scores_in, scores_out: 1-D scores with the canary in / out, at least one each.
        delta: in (0, 1).
        confidence: in (0, 1).

    Returns:
        The threshold.

    >>> best_threshold([2.0, 3.0, 4.0], [0.0, 1.0, 1.5], delta=1e-5)  # halfway from 1.5 to 2
    1.75
    """
    scores_in, scores_out = _check_scores(scores_in, scores_out, minimum=1)
    delta = _check_delta(delta)
    alpha = 1.0 - _check_confidence(confidence)
    distinct = np.unique(np.r_[scores_in, scores_out])
    candidates = np.r_[-np.inf, distinct[:-1] / 2 + distinct[1:] / 2, distinct[-1]]
    tp = scores_in.size - np.searchsorted(np.sort(scores_in), candidates, side="right")
    fp = scores_out.size - np.searchsorted(np.sort(scores_out), candidates, side="right")
    bounds = _epsilon_bounds(tp, fp, scores_out.size, scores_in.size, delta, alpha)
    youden = tp / scores_in.size - fp / scores_out.size
    return float(candidates[np.lexsort((youden, bounds))[-1]])


def audit_scores(
    scores_in: Any, scores_out: Any, *, delta: float, confidence: float = 0.95
) -> AuditResult:
    """Empirical epsilon of a membership game: pick the threshold on half, count on the other.

    The first half of each score array chooses the threshold
    (``best_threshold``); the second half, unseen by that choice, fills the
    confusion table that ``epsilon_lower_bound`` turns into epsilon. Trials
    are independent and identically distributed, so splitting by position is
    as good as a random split. Scoring on the trials that chose the threshold
    would overstate epsilon (the bound would be a maximum over many tests,
    with no confidence statement left), so the threshold never sees the
    trials it is scored on.

    Args:
        scores_in, scores_out: 1-D scores with the canary in / out, at least two each.
        delta: in (0, 1).
        confidence: in (0, 1).

    Returns:
        The ``AuditResult``.

    Four trials of each kind are far too few to certify anything:

    >>> result = audit_scores([5.0, 6.0, 7.0, 8.0], [0.0, 1.0, 0.5, 3.0], delta=1e-5)
    >>> result.threshold, tuple(result.counts), result.epsilon
    (3.0, (2, 0, 2, 0), 0.0)
    """
    scores_in, scores_out = _check_scores(scores_in, scores_out, minimum=2)
    delta = _check_delta(delta)
    confidence = _check_confidence(confidence)
    half_in, half_out = scores_in.size // 2, scores_out.size // 2
    threshold = best_threshold(
        scores_in[:half_in], scores_out[:half_out], delta=delta, confidence=confidence
    )
    counts = membership_counts(scores_in[half_in:], scores_out[half_out:], threshold=threshold)
    epsilon = epsilon_lower_bound(**counts._asdict(), delta=delta, confidence=confidence)
    return AuditResult(epsilon, threshold, counts, delta, confidence)


def _epsilon_bounds(
    tp: np.ndarray, fp: np.ndarray, negatives: int, positives: int, delta: float, alpha: float
) -> np.ndarray:
    """epsilon_lower_bound for arrays of (TP, FP) at fixed totals; inputs already checked."""
    fpr_high = _upper_bound(fp, negatives, alpha)
    fnr_high = _upper_bound(positives - tp, positives, alpha)
    with np.errstate(divide="ignore"):  # log(0) = -inf: a term that certifies nothing
        first = np.log(np.clip(1.0 - delta - fpr_high, 0.0, None)) - np.log(fnr_high)
        second = np.log(np.clip(1.0 - delta - fnr_high, 0.0, None)) - np.log(fpr_high)
    return np.maximum(np.maximum(first, second), 0.0)


def _upper_bound(errors: Any, trials: int, alpha: float) -> np.ndarray:
    """Upper end of the two-sided Clopper-Pearson interval; 1 where every trial is an error."""
    errors = np.asarray(errors)
    high = stats.beta.ppf(1.0 - alpha / 2, errors + 1, np.maximum(trials - errors, 1))
    return np.where(errors >= trials, 1.0, high)


def _check_delta(delta: Any) -> float:
    return check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)


def _check_confidence(confidence: Any) -> float:
    return check_real("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)


def _check_scores(
    scores_in: Any, scores_out: Any, *, minimum: int
) -> tuple[np.ndarray, np.ndarray]:
    checked = []
    for name, scores in (("scores_in", scores_in), ("scores_out", scores_out)):
        try:
            array = np.asarray(scores, dtype=np.float64)
        except (TypeError, ValueError):
            fail(name, "a 1-D array of numbers", scores, TypeError)
        if array.ndim != 1 or array.size < minimum or not np.all(np.isfinite(array)):
            shown = scores if array.size <= 8 else f"array of shape {array.shape}"
            fail(name, f"a 1-D array of at least {minimum} finite scores", shown)
        checked.append(array)
    return checked[0], checked[1]
