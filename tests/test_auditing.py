"""fl_dp_lab.auditing: Clopper-Pearson bounds and the membership game's epsilon lower bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

from fl_dp_lab.auditing import (
    audit_scores,
    best_threshold,
    clopper_pearson,
    epsilon_lower_bound,
    membership_counts,
)
from fl_dp_lab.auditing.canaries import audit_gradient_sum, noisy_clipped_sum
from fl_dp_lab.mechanisms import randomized_response


def _reference_upper(k: int, n: int, alpha: float) -> float:
    """Clopper-Pearson's definition, solved directly: P[Bin(n, p) <= k] = alpha / 2."""
    if k == n:
        return 1.0
    return optimize.brentq(lambda p: stats.binom.cdf(k, n, p) - alpha / 2, 1e-15, 1 - 1e-15)


def _reference_lower(k: int, n: int, alpha: float) -> float:
    """P[Bin(n, p) >= k] = alpha / 2."""
    if k == 0:
        return 0.0
    return optimize.brentq(lambda p: stats.binom.sf(k - 1, n, p) - alpha / 2, 1e-15, 1 - 1e-15)


def _reference_epsilon(tp, fp, tn, fn, delta, confidence):
    alpha = 1 - confidence
    fpr = _reference_upper(fp, fp + tn, alpha)
    fnr = _reference_upper(fn, fn + tp, alpha)
    terms = [0.0]
    for numerator, denominator in ((1 - delta - fpr, fnr), (1 - delta - fnr, fpr)):
        if numerator > 0:
            terms.append(math.log(numerator / denominator))
    return max(terms)


@pytest.mark.parametrize(
    ("k", "n", "confidence"), [(0, 10, 0.95), (3, 10, 0.95), (10, 10, 0.9), (17, 400, 0.99)]
)
def test_clopper_pearson_matches_the_binomial_definition(k, n, confidence):
    low, high = clopper_pearson(k, n, confidence=confidence)
    alpha = 1 - confidence
    assert low == pytest.approx(_reference_lower(k, n, alpha), rel=1e-8, abs=1e-12)
    assert high == pytest.approx(_reference_upper(k, n, alpha), rel=1e-8, abs=1e-12)
    assert low <= k / n <= high


def test_clopper_pearson_upper_end_covers_the_true_rate():
    # Seed 0; 4,000 binomial draws at p = 0.05, n = 60. The upper end is a one-sided
    # 97.5 % bound, so it must sit above p in >= 97.5 % of draws (CP is conservative);
    # the Wald interval p_hat + 1.96 sqrt(p_hat (1 - p_hat) / n) covers only ~ 80 % here.
    rng = np.random.default_rng(0)
    draws = rng.binomial(60, 0.05, size=4000)
    highs = np.array([clopper_pearson(int(k), 60)[1] for k in np.unique(draws)])
    covered = np.mean(highs[np.searchsorted(np.unique(draws), draws)] >= 0.05)
    wald = draws / 60 + 1.96 * np.sqrt(draws / 60 * (1 - draws / 60) / 60)
    assert covered >= 0.975
    assert np.mean(wald >= 0.05) < 0.9


def test_zero_errors_match_the_closed_form():
    # No errors in n trials of each kind: FPR_hi = FNR_hi = u = 1 - (alpha / 2)^(1 / n),
    # so eps_lo = log((1 - delta - u) / u).
    for n, delta, confidence in [(1000, 1e-5, 0.95), (200, 1e-3, 0.9), (5000, 1e-6, 0.99)]:
        u = 1 - ((1 - confidence) / 2) ** (1 / n)
        expected = math.log((1 - delta - u) / u)
        got = epsilon_lower_bound(
            true_positives=n,
            false_positives=0,
            true_negatives=n,
            false_negatives=0,
            delta=delta,
            confidence=confidence,
        )
        assert got == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    "counts",
    [
        (900, 20, 980, 100),  # strong on false positives: the second term wins
        (300, 400, 600, 700),  # weak: certifies nothing
        (990, 60, 940, 10),  # strong on false negatives: the first term wins
        (50, 0, 3, 0),  # unbalanced worlds
    ],
)
def test_bound_matches_an_independent_computation_on_known_counts(counts):
    tp, fp, tn, fn = counts
    got = epsilon_lower_bound(
        true_positives=tp, false_positives=fp, true_negatives=tn, false_negatives=fn, delta=1e-5
    )
    assert got == pytest.approx(_reference_epsilon(tp, fp, tn, fn, 1e-5, 0.95), rel=1e-8, abs=1e-12)


def test_known_counts_give_the_expected_numbers():
    # Hand check at TP = 900, FN = 100, FP = 20, TN = 980:
    # FPR_hi = 0.03072, FNR_hi = 0.12029, eps_lo = log((1 - 1e-5 - 0.12029) / 0.03072) = 3.3547.
    got = epsilon_lower_bound(
        true_positives=900, false_positives=20, true_negatives=980, false_negatives=100, delta=1e-5
    )
    assert got == pytest.approx(3.3547, abs=2e-4)
    weak = epsilon_lower_bound(
        true_positives=300, false_positives=400, true_negatives=600, false_negatives=700, delta=1e-5
    )
    assert weak == 0.0


@settings(max_examples=60, deadline=None)
@given(
    tp=st.integers(0, 300),
    fn=st.integers(0, 300),
    fp=st.integers(0, 300),
    tn=st.integers(0, 300),
    extra=st.integers(1, 50),
)
def test_bound_is_symmetric_and_more_errors_never_certify_more(tp, fn, fp, tn, extra):
    if tp + fn == 0 or fp + tn == 0:
        return
    eps = epsilon_lower_bound(
        true_positives=tp, false_positives=fp, true_negatives=tn, false_negatives=fn, delta=1e-5
    )
    swapped = epsilon_lower_bound(
        true_positives=tn, false_positives=fn, true_negatives=tp, false_negatives=fp, delta=1e-5
    )
    worse = epsilon_lower_bound(
        true_positives=tp,
        false_positives=fp + extra,
        true_negatives=tn,
        false_negatives=fn,
        delta=1e-5,
    )
    ceiling = epsilon_lower_bound(
        true_positives=tp + fn,
        false_positives=0,
        true_negatives=fp + tn,
        false_negatives=0,
        delta=1e-5,
    )
    assert 0.0 <= eps < math.inf
    assert eps == pytest.approx(swapped, abs=1e-12)
    assert worse <= eps + 1e-12
    assert eps <= ceiling + 1e-12


def test_randomized_response_is_audited_tightly_and_never_over():
    # Randomized response at eps = 1 is exactly 1-DP: the attack "guess in when the report
    # is 1" has FPR = FNR = 1 / (1 + e). Seed 0, 20,000 trials a world: the bound lands
    # within 0.2 of the true eps, and below it.
    rng = np.random.default_rng(0)
    n = 20_000
    reports_in = randomized_response(np.ones(n, dtype=int), epsilon=1.0, rng=rng)
    reports_out = randomized_response(np.zeros(n, dtype=int), epsilon=1.0, rng=rng)
    counts = membership_counts(reports_in, reports_out, threshold=0.5)
    eps = epsilon_lower_bound(**counts._asdict(), delta=1e-5)
    assert 0.8 <= eps <= 1.0


def test_membership_counts_match_a_loop():
    rng = np.random.default_rng(1)
    scores_in, scores_out = rng.normal(1, 1, 57), rng.normal(0, 1, 43)
    counts = membership_counts(scores_in, scores_out, threshold=0.3)
    tp = sum(1 for s in scores_in if s > 0.3)
    fp = sum(1 for s in scores_out if s > 0.3)
    assert tuple(counts) == (tp, fp, 43 - fp, 57 - tp)
    everyone_in = membership_counts(scores_in, scores_out, threshold=-math.inf)
    assert tuple(everyone_in) == (57, 43, 0, 0)


def test_best_threshold_matches_brute_force():
    rng = np.random.default_rng(2)
    scores_in, scores_out = rng.normal(3, 1, 300), rng.normal(0, 1, 300)
    threshold = best_threshold(scores_in, scores_out, delta=1e-5)
    by_threshold = {
        t: epsilon_lower_bound(
            **membership_counts(scores_in, scores_out, threshold=t)._asdict(), delta=1e-5
        )
        for t in np.r_[scores_in, scores_out]
    }
    by_threshold[-math.inf] = epsilon_lower_bound(
        **membership_counts(scores_in, scores_out, threshold=-math.inf)._asdict(), delta=1e-5
    )
    best = max(by_threshold.values())
    chosen = epsilon_lower_bound(
        **membership_counts(scores_in, scores_out, threshold=threshold)._asdict(), delta=1e-5
    )
    assert best > 1.0
    assert chosen == pytest.approx(best, abs=1e-12)


def test_best_threshold_sits_halfway_between_separated_worlds():
    # Every threshold in [max(out), min(in)) separates these worlds perfectly; the midpoint
    # leaves fresh trials the widest margin on both sides (an edge of either world would not).
    threshold = best_threshold([10.0, 12.0, 11.0], [0.0, 2.0, 1.0], delta=1e-5)
    assert threshold == 6.0
    assert best_threshold([1.0, 1e308], [-1e308, 0.0], delta=1e-5) == 0.5  # no overflow


def test_audit_scores_counts_only_the_held_out_half():
    # Prepare: 400 scores a world, well separated (a mean shift of 4 standard deviations)
    rng = np.random.default_rng(3)
    scores_in, scores_out = rng.normal(4, 1, 400), rng.normal(0, 1, 401)
    # Execute
    result = audit_scores(scores_in, scores_out, delta=1e-5)
    # Assert: the threshold comes from the first halves, the counts from the second halves
    assert result.threshold == best_threshold(scores_in[:200], scores_out[:200], delta=1e-5)
    held_out = membership_counts(scores_in[200:], scores_out[200:], threshold=result.threshold)
    assert result.counts == held_out
    assert sum(result.counts) == 200 + 201
    assert result.epsilon == epsilon_lower_bound(**held_out._asdict(), delta=1e-5)
    assert 2.0 < result.epsilon < 6.0


def test_audit_of_a_mechanism_that_leaks_nothing_rarely_certifies_anything():
    # Scores with and without the canary have the same distribution: the true eps is 0,
    # so a positive bound is a false alarm, allowed with probability <= 5 % per audit.
    # Seed 4, 60 audits of 300 trials a world: at most 6 false alarms (expected <= 3).
    rng = np.random.default_rng(4)
    alarms = sum(
        audit_scores(rng.normal(size=300), rng.normal(size=300), delta=1e-5).epsilon > 0
        for _ in range(60)
    )
    assert alarms <= 6


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"true_positives": -1}, ValueError, "true_positives must be an integer >= 0, got -1"),
        ({"false_negatives": -3}, ValueError, "false_negatives must be an integer >= 0"),
        ({"false_positives": 1.5}, TypeError, "false_positives must be an integer, got 1.5"),
        ({"delta": 0.0}, ValueError, r"delta must be in \(0, 1\), got 0.0"),
        ({"delta": 1.0}, ValueError, r"delta must be in \(0, 1\), got 1.0"),
        ({"delta": -1e-5}, ValueError, "delta must be in"),
        ({"confidence": 1.0}, ValueError, r"confidence must be in \(0, 1\), got 1.0"),
        ({"confidence": 0}, ValueError, r"confidence must be in \(0, 1\)"),
        ({"confidence": 95}, ValueError, r"confidence must be in \(0, 1\)"),
        (
            {"true_positives": 0, "false_negatives": 0},
            ValueError,
            r"true_positives \+ false_negatives must be > 0",
        ),
        (
            {"false_positives": 0, "true_negatives": 0},
            ValueError,
            r"false_positives \+ true_negatives must be > 0",
        ),
    ],
)
def test_bad_input_gives_clear_errors(changes, error, message):
    arguments = {
        "true_positives": 10,
        "false_positives": 1,
        "true_negatives": 9,
        "false_negatives": 0,
        "delta": 1e-5,
        "confidence": 0.95,
    }
    with pytest.raises(error, match=message):
        epsilon_lower_bound(**{**arguments, **changes})


def test_bad_scores_and_intervals_give_clear_errors():
    with pytest.raises(ValueError, match="scores_in must be a 1-D array of at least 1 finite"):
        membership_counts([], [1.0], threshold=0.0)
    with pytest.raises(ValueError, match="scores_out must be a 1-D array"):
        best_threshold([1.0], [[1.0, 2.0]], delta=1e-5)
    with pytest.raises(ValueError, match="scores_in must be a 1-D array of at least 2"):
        audit_scores([1.0], [1.0, 2.0], delta=1e-5)
    with pytest.raises(ValueError, match="finite"):
        audit_scores([1.0, np.nan], [1.0, 2.0], delta=1e-5)
    with pytest.raises(TypeError, match="scores_in must be a 1-D array of numbers"):
        membership_counts(["a", "b"], [1.0], threshold=0.0)
    with pytest.raises(ValueError, match="successes must be an integer <= 10, got 11"):
        clopper_pearson(11, 10)
    with pytest.raises(ValueError, match="trials must be an integer >= 1, got 0"):
        clopper_pearson(0, 0)
    with pytest.raises(ValueError, match="threshold must be a finite number|threshold must be"):
        membership_counts([1.0], [0.0], threshold=float("nan"))


@pytest.mark.parametrize(("dtype", "canary_norm"), [(torch.float32, 1e20), (torch.float64, 1e160)])
def test_a_canary_that_overflows_in_clipping_is_refused_not_audited_as_epsilon_zero(
    dtype, canary_norm
):
    # Prepare: the canary's squared norm overflows the dtype, so clipping scaled it to
    # nothing and the audit certified epsilon = 0 with no warning
    grads = {"w": torch.zeros(4, 3, dtype=dtype)}
    canary = {"w": torch.zeros(1, 3, dtype=dtype)}
    canary["w"][0, 0] = canary_norm
    kwargs = dict(
        trials=50,
        max_grad_norm=1.0,
        noise_multiplier=1.0,
        delta=1e-5,
        generator=torch.Generator().manual_seed(0),
    )
    # Execute / Assert: refused by name before any trial, with the dtype's limit
    with pytest.raises(ValueError, match=r"canary must be of norm below 1\.\d+e\+(19|154)"):
        audit_gradient_sum(noisy_clipped_sum, grads, canary, **kwargs)
    # just inside the limit the canary is clipped to C and still found (epsilon > 0)
    canary["w"][0, 0] = 1e19 if dtype == torch.float32 else 1e150
    kwargs["trials"] = 400
    assert audit_gradient_sum(noisy_clipped_sum, grads, canary, **kwargs).epsilon > 0.0
