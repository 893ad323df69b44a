"""fl_dp_lab.auditing.canaries: the canary audit passes DP-SGD's noisy clipped sum and catches planted bugs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fl_dp_lab.accounting import epsilon as accountant_epsilon
from fl_dp_lab.auditing.canaries import (
    audit_gradient_sum,
    buggy_sum_noise_not_scaled,
    buggy_sum_without_clipping,
    canary_scores,
    dirac_canary,
    noisy_clipped_sum,
)
from fl_dp_lab.mechanisms import gaussian_epsilon

DELTA = 1e-5


def _batch(seed: int = 0, size: int = 16) -> dict[str, torch.Tensor]:
    """Per-sample gradients of a 10 x 8 linear layer, norms between about 2 and 8."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(size, 10, 8, generator=generator)
    bias = torch.randn(size, 10, generator=generator)
    scale = torch.linspace(0.25, 1.0, size)
    return {"weight": weight * scale.view(-1, 1, 1), "bias": bias * scale.view(-1, 1)}


def _naive_clipped_sum(
    grads: dict[str, torch.Tensor], max_grad_norm: float
) -> dict[str, torch.Tensor]:
    """Clip every example by a Python loop over the batch, then sum."""
    size = next(iter(grads.values())).shape[0]
    total = {name: torch.zeros_like(g[0]) for name, g in grads.items()}
    for i in range(size):
        norm = math.sqrt(sum(float(g[i].pow(2).sum()) for g in grads.values()))
        factor = min(1.0, max_grad_norm / norm) if norm > 0 else 1.0
        for name, g in grads.items():
            total[name] += g[i] * factor
    return total


def test_noisy_clipped_sum_is_the_clipped_sum_plus_noise_of_std_sigma_c():
    # Prepare
    grads = _batch()
    big = {"weight": torch.zeros(2, 100, 100)}  # 10,000 coordinates to measure the noise std
    # Execute
    exact = noisy_clipped_sum(
        grads, max_grad_norm=1.5, noise_multiplier=0.0, generator=torch.Generator().manual_seed(0)
    )
    noisy = noisy_clipped_sum(
        big, max_grad_norm=3.0, noise_multiplier=2.0, generator=torch.Generator().manual_seed(0)
    )
    # Assert: sigma = 0 gives the loop's clipped sum; the noise std is sigma * C = 6
    # (10,000 draws: the sample std is within 3 % of 6 with overwhelming probability).
    for name, value in _naive_clipped_sum(grads, 1.5).items():
        assert torch.allclose(exact[name], value, atol=1e-5)
    assert float(noisy["weight"].std()) == pytest.approx(6.0, rel=0.03)


def test_the_planted_bugs_do_what_their_names_say():
    grads = _batch()
    zero_noise = {"noise_multiplier": 0.0, "generator": torch.Generator().manual_seed(0)}
    unclipped = buggy_sum_without_clipping(grads, max_grad_norm=1.5, **zero_noise)
    for name, g in grads.items():
        assert torch.allclose(unclipped[name], g.sum(0), atol=1e-5)
    # At C = 1 "noise not scaled by C" is the correct code, draw for draw: C = 1 hides it.
    same_seed = {"noise_multiplier": 1.3, "max_grad_norm": 1.0}
    correct = noisy_clipped_sum(grads, generator=torch.Generator().manual_seed(5), **same_seed)
    buggy = buggy_sum_noise_not_scaled(
        grads, generator=torch.Generator().manual_seed(5), **same_seed
    )
    for name in grads:
        assert torch.equal(correct[name], buggy[name])


@pytest.mark.parametrize(
    ("mechanism", "shift", "std"),
    [
        (noisy_clipped_sum, 4.0, 8.0),  # canary clipped to C = 4; noise sigma * C = 8
        (buggy_sum_without_clipping, 16.0, 8.0),  # the whole canary norm 4C gets through
        (buggy_sum_noise_not_scaled, 4.0, 2.0),  # noise std sigma = 2 instead of 8
    ],
)
def test_canary_scores_follow_the_closed_form(mechanism, shift, std):
    # Scores are N(m + shift, std^2) with the canary and N(m, std^2) without it.
    # Seed 1, 1,500 trials a world: the mean difference has standard error std * sqrt(2 / 1500)
    # (we allow 4 of them); each sample std is within 8 % of std.
    grads = _batch()
    scores_in, scores_out = canary_scores(
        mechanism,
        grads,
        dirac_canary(grads, norm=16.0),
        trials=1500,
        max_grad_norm=4.0,
        noise_multiplier=2.0,
        generator=torch.Generator().manual_seed(1),
    )
    standard_error = std * math.sqrt(2 / 1500)
    assert abs((scores_in.mean() - scores_out.mean()) - shift) < 4 * standard_error
    assert scores_in.std() == pytest.approx(std, rel=0.08)
    assert scores_out.std() == pytest.approx(std, rel=0.08)


@pytest.mark.parametrize("sigma", [1.0, 2.0, 4.0, 8.0])
def test_the_claim_audited_is_the_accountants_one_step_epsilon(sigma):
    # The audits compare with the Gaussian mechanism's exact epsilon; for one step at sample
    # rate 1 that is what the PLD accountant reports (and notebook 10 uses the accountant).
    claimed = accountant_epsilon(noise_multiplier=sigma, sample_rate=1.0, steps=1, delta=DELTA)
    assert claimed == pytest.approx(gaussian_epsilon(sigma=sigma, delta=DELTA), rel=1e-3)


@pytest.mark.parametrize(
    ("mechanism", "caught"),
    [
        (noisy_clipped_sum, False),
        (buggy_sum_without_clipping, True),
        (buggy_sum_noise_not_scaled, True),
    ],
)
def test_audit_passes_correct_code_and_catches_each_planted_bug(mechanism, caught):
    # Prepare: one step at sigma = 2 is (1.99, 1e-5)-DP. C = 4 and a canary of norm 4C,
    # so both bugs act like sigma = 0.5, i.e. epsilon ~ 10 at this delta.
    grads = _batch()
    claimed = gaussian_epsilon(sigma=2.0, delta=DELTA)
    # Execute: seed 2, 1,500 trials a world (750 held out: the audit cannot certify more than ~5.3)
    result = audit_gradient_sum(
        mechanism,
        grads,
        dirac_canary(grads, norm=16.0),
        trials=1500,
        max_grad_norm=4.0,
        noise_multiplier=2.0,
        delta=DELTA,
        generator=torch.Generator().manual_seed(2),
    )
    # Assert: a bug must beat the claim; over seeds 0-11 the bugs' bound was 3.1 +- 0.3
    # (lowest 2.7), about four standard deviations above 1.99. The correct code must stay
    # below the claim (guaranteed with probability >= 95 %; seeds 0-11 gave 0.4 +- 0.3).
    assert claimed == pytest.approx(1.99, abs=0.01)
    if caught:
        assert result.epsilon > claimed
    else:
        assert result.epsilon <= claimed


def test_the_audit_has_power_on_correct_code_at_low_noise():
    # At sigma = 1 the claim is 4.38; an audit that never certifies anything would pass any
    # code. Seed 3, 1,500 trials a world: the bound on the correct code is ~1.8 (> 0.8).
    grads = _batch()
    result = audit_gradient_sum(
        noisy_clipped_sum,
        grads,
        dirac_canary(grads, norm=4.0),
        trials=1500,
        max_grad_norm=4.0,
        noise_multiplier=1.0,
        delta=DELTA,
        generator=torch.Generator().manual_seed(3),
    )
    assert 0.8 < result.epsilon <= gaussian_epsilon(sigma=1.0, delta=DELTA)


def test_a_weak_attack_misses_the_bug_the_projection_catches():
    # The norm of the whole output hardly moves when one coordinate shifts by 16 against
    # noise of std 8 on 90 coordinates: the bound collapses although the code is broken.
    grads = _batch()
    common = {
        "trials": 600,
        "max_grad_norm": 4.0,
        "noise_multiplier": 2.0,
        "delta": DELTA,
    }
    canary = dirac_canary(grads, norm=16.0)
    weak = audit_gradient_sum(
        buggy_sum_without_clipping,
        grads,
        canary,
        statistic="norm",
        generator=torch.Generator().manual_seed(4),
        **common,
    )
    strong = audit_gradient_sum(
        buggy_sum_without_clipping,
        grads,
        canary,
        generator=torch.Generator().manual_seed(4),
        **common,
    )
    assert weak.epsilon < gaussian_epsilon(sigma=2.0, delta=DELTA) < strong.epsilon


def test_dirac_canary_has_the_batch_shapes_and_its_norm():
    grads = _batch(size=3)
    canary = dirac_canary(grads, norm=2.5)
    assert {name: c.shape for name, c in canary.items()} == {
        "weight": (1, 10, 8),
        "bias": (1, 10),
    }
    total = math.sqrt(sum(float(c.pow(2).sum()) for c in canary.values()))
    assert total == pytest.approx(2.5)
    assert int(sum((c != 0).sum() for c in canary.values())) == 1


def test_bad_input_gives_clear_errors():
    grads = _batch(size=4)
    canary = dirac_canary(grads, norm=1.0)
    ok = {
        "trials": 3,
        "max_grad_norm": 1.0,
        "noise_multiplier": 1.0,
        "generator": torch.Generator().manual_seed(0),
    }
    with pytest.raises(ValueError, match="norm must be > 0, got 0.0"):
        dirac_canary(grads, norm=0.0)
    with pytest.raises(TypeError, match="per_sample_grads must be a non-empty dict"):
        dirac_canary({}, norm=1.0)
    with pytest.raises(TypeError, match="mechanism must be a function"):
        canary_scores("noisy_clipped_sum", grads, canary, **ok)
    with pytest.raises(ValueError, match=r"canary\['bias'\]'s shape must be"):
        canary_scores(noisy_clipped_sum, grads, {**canary, "bias": torch.zeros(2, 10)}, **ok)
    with pytest.raises(ValueError, match="canary must be a nonzero gradient"):
        canary_scores(noisy_clipped_sum, grads, {n: 0 * c for n, c in canary.items()}, **ok)
    with pytest.raises(ValueError, match="canary must be a dict with the same names"):
        canary_scores(noisy_clipped_sum, grads, {"weight": canary["weight"]}, **ok)
    with pytest.raises(ValueError, match="trials must be an integer >= 1, got 0"):
        canary_scores(noisy_clipped_sum, grads, canary, **{**ok, "trials": 0})
    with pytest.raises(ValueError, match="noise_multiplier must be >= 0"):
        canary_scores(noisy_clipped_sum, grads, canary, **{**ok, "noise_multiplier": -1.0})
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        canary_scores(noisy_clipped_sum, grads, canary, **{**ok, "generator": 0})
    with pytest.raises(ValueError, match="statistic must be one of 'projection', 'norm'"):
        canary_scores(noisy_clipped_sum, grads, canary, statistic="loss", **ok)
    with pytest.raises(ValueError, match="trials must be an integer >= 2, got 1"):
        audit_gradient_sum(noisy_clipped_sum, grads, canary, delta=1e-5, **{**ok, "trials": 1})
    with pytest.raises(ValueError, match=r"delta must be in \(0, 1\)"):
        audit_gradient_sum(noisy_clipped_sum, grads, canary, delta=0.0, **ok)


def test_scores_are_reproducible_from_the_seed():
    grads = _batch(size=4)
    canary = dirac_canary(grads, norm=1.0)
    runs = [
        canary_scores(
            noisy_clipped_sum,
            grads,
            canary,
            trials=5,
            max_grad_norm=1.0,
            noise_multiplier=1.0,
            generator=torch.Generator().manual_seed(7),
        )
        for _ in range(2)
    ]
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])


# --- Bad input never weakens privacy -------------------------------------------------------


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_a_non_finite_gradient_or_canary_is_refused_before_any_trial(bad):
    # Prepare
    grads = _batch()
    canary = dirac_canary(grads, norm=4.0)
    broken = {name: grad.clone() for name, grad in grads.items()}
    broken["bias"][3, 0] = bad
    game = {"trials": 2, "max_grad_norm": 1.0, "noise_multiplier": 1.0}
    # Execute / Assert: by example index, for the correct mechanism and a planted bug alike
    for mechanism in (noisy_clipped_sum, buggy_sum_without_clipping):
        with pytest.raises(ValueError, match=r"example 3\) must be finite"):
            canary_scores(mechanism, broken, canary, generator=torch.Generator(), **game)
    bad_canary = {name: c.clone() for name, c in canary.items()}
    bad_canary["weight"].view(-1)[0] = bad
    with pytest.raises(ValueError, match="canary must be finite"):
        canary_scores(noisy_clipped_sum, grads, bad_canary, generator=torch.Generator(), **game)
    with pytest.raises(ValueError, match="the gradient of example 3 .* must be finite"):
        noisy_clipped_sum(broken, max_grad_norm=1.0, noise_multiplier=1.0,
                          generator=torch.Generator())  # fmt: skip


def test_integer_gradients_are_refused_by_the_audit():
    grads = {"weight": torch.ones(4, 3, dtype=torch.long)}
    with pytest.raises(TypeError, match=r"per_sample_grads\['weight'\] must be a floating-point"):
        canary_scores(noisy_clipped_sum, grads, {"weight": torch.ones(1, 3)}, trials=2,
                      max_grad_norm=1.0, noise_multiplier=1.0, generator=torch.Generator())  # fmt: skip
    with pytest.raises(TypeError, match=r"grads\['weight'\] must be a floating-point"):
        noisy_clipped_sum(grads, max_grad_norm=1.0, noise_multiplier=1.0,
                          generator=torch.Generator())  # fmt: skip


def test_a_canary_norm_beyond_the_dtype_is_refused_not_stored_as_inf():
    with pytest.raises(ValueError, match=r"norm must be at most 3.4e\+38"):
        dirac_canary(_batch(), norm=1e300)
