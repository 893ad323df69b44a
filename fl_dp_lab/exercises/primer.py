"""Exercises of the two primers: PyTorch (notebook 00a) and probability (notebook 00b).

Each check calls the learner's function on cases the learner never sees (new
shapes, seeds, scales, models), compares it with a reference computed here,
and names the usual slip when it recognises one.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import special, stats

from fl_dp_lab.exercises._core import (
    as_array,
    as_number,
    feedback,
    graded,
    hints,
    is_unanswered,
    report_unanswered,
)

__all__ = [
    "check_laplace_sampler",
    "check_pairwise_sq_distances",
    "check_renyi_monte_carlo",
    "check_train_step",
]

#: Draws per hidden case of the Laplace sampler. The Kolmogorov-Smirnov distance of a
#: right sampler stays below 0.0135 with probability 1 - 1e-6 (DKW: sqrt(ln(2e6) / 2n));
#: the usual slips sit >= 0.047 from Laplace, so the 0.02 threshold separates both ways.
_SAMPLES = 40_000
_KS_THRESHOLD = 0.02

hints(
    "Exercise 00a.1",
    idea="no loop is needed: if the rows of a and the rows of b lie along different axes, one "
    "subtraction forms every (row of a, row of b) difference at once.",
    step="give a an axis of length 1 after its rows and b one before its rows: shapes "
    "(n, 1, d) and (1, m, d) broadcast to (n, m, d). Square, then sum over the feature axis.",
    solution="def pairwise(a, b): return ((a[:, None, :] - b[None, :, :]) ** 2).sum(dim=-1)",
)
hints(
    "Exercise 00a.2",
    idea="a training step turns the batch's loss into gradients and lets the optimizer move "
    "the parameters; PyTorch keeps gradients between steps until they are cleared.",
    step="clear the gradients the optimizer holds, compute the mean cross-entropy of model(x) "
    "against y, backpropagate it, let the optimizer step, and return that loss.",
    solution="def train_step(model, optimizer, x, y): optimizer.zero_grad(); loss = "
    "torch.nn.functional.cross_entropy(model(x), y); loss.backward(); optimizer.step(); "
    "return loss.item()",
)
hints(
    "Exercise 00b.1",
    idea="build the draw from simpler ones the generator gives you: a distribution symmetric "
    "about 0 is its right half with a random sign.",
    step="the right half of Laplace(0, b) is an exponential of mean b, which is -b times the log "
    "of a uniform draw in (0, 1]; draw n uniforms and n random signs, all with "
    "generator=generator.",
    solution="def sample_laplace(n, scale, generator): u = torch.rand(n, generator=generator); "
    "sign = 2 * torch.randint(0, 2, (n,), generator=generator) - 1; "
    "return sign * scale * -torch.log1p(-u)",
)
hints(
    "Exercise 00b.2",
    idea="a Rényi divergence averages a power of the likelihood ratio P / Q and takes the log "
    "after; your samples come from P, so one factor of P / Q is already in the sampling.",
    step="E_Q[(P / Q)^a] = E_P[(P / Q)^(a - 1)]: average the exponential of (a - 1) times the "
    "log-ratios, take the log and divide by a - 1; work in log space (torch.logsumexp minus "
    "log n) so that large log-ratios do not overflow.",
    solution="def renyi(log_ratios, order): n = log_ratios.numel(); return "
    "((torch.logsumexp((order - 1) * log_ratios, dim=0) - math.log(n)) / (order - 1)).item()",
)


@graded("Exercise 00a.1")
def check_pairwise_sq_distances(pairwise: Any) -> bool:
    """Exercise 00a.1: ``pairwise(a, b)``, the squared distances between the rows of two matrices.

    Called on hidden float64 tensors ``a`` of shape (n, d) and ``b`` of shape
    (m, d), with n, m and d all different, and compared with a loop over
    pairs to 1e-9 relative; the entry (i, j) belongs to row i of ``a`` and
    row j of ``b``. Square roots (distances instead of their squares) and the
    transposed result get their own hints.
    """
    import torch

    name = "Exercise 00a.1"
    if is_unanswered(pairwise):
        return report_unanswered(name)
    _require_function("pairwise", pairwise, "pairwise(a, b)")
    generator = torch.Generator().manual_seed(2701)
    for n, m, d in ((5, 3, 4), (2, 7, 1), (6, 6, 3)):
        a = torch.randn(n, d, generator=generator, dtype=torch.float64)
        b = torch.randn(m, d, generator=generator, dtype=torch.float64)
        expected = np.array(
            [[float(((a[i] - b[j]) ** 2).sum()) for j in range(m)] for i in range(n)]
        )
        got = as_array("pairwise(a, b)", pairwise(a.clone(), b.clone()))
        if got.shape == (m, n) and n != m:
            return _wrong(
                name,
                "the result is transposed: entry (i, j) pairs row i of a "
                "with row j of b, so its shape is (len(a), len(b)).",
            )
        got = as_array("pairwise(a, b)", got, (n, m), "one entry per (row of a, row of b) pair")
        if np.allclose(got**2, expected, rtol=1e-9, atol=1e-12) and not np.allclose(
            got, expected, rtol=1e-9, atol=1e-12
        ):
            return _wrong(name, "these are the distances; the exercise asks for their squares.")
        if not np.allclose(got, expected, rtol=1e-9, atol=1e-12):
            return _wrong(
                name,
                "some entries are off: entry (i, j) sums the squared differences of row i of a "
                "and row j of b, and a difference that broadcasts forms all of them at once.",
            )
    return feedback(
        name,
        True,
        success="one broadcast replaced a double loop over all n * m pairs, and runs as "
        "one vectorised operation instead of n * m small ones.",
    )


@graded("Exercise 00a.2")
def check_train_step(train_step: Any) -> bool:
    """Exercise 00a.2: ``train_step(model, optimizer, x, y)``, one step of mini-batch training.

    Run for a few steps on hidden models, optimizers and batches, next to a
    reference step; the parameters after every step and the returned loss (the
    batch's mean cross-entropy before the update) must match to 1e-6. A step
    that leaves the parameters unchanged, one whose gradients pile up from
    step to step, and a returned loss measured after the update get their own
    hints.
    """
    import torch

    name = "Exercise 00a.2"
    if is_unanswered(train_step):
        return report_unanswered(name)
    _require_function("train_step", train_step, "train_step(model, optimizer, x, y)")
    generator = torch.Generator().manual_seed(2702)
    for d_in, classes, lr, momentum in ((6, 3, 0.5, 0.0), (4, 5, 0.1, 0.9)):
        model = torch.nn.Sequential(
            torch.nn.Linear(d_in, 8), torch.nn.Tanh(), torch.nn.Linear(8, classes)
        )
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
        reference = copy.deepcopy(model)
        start = [p.detach().clone() for p in model.parameters()]
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
        ref_optimizer = torch.optim.SGD(reference.parameters(), lr=lr, momentum=momentum)
        for step in range(3):
            x = torch.randn(10, d_in, generator=generator)
            y = torch.randint(0, classes, (10,), generator=generator)
            ref_optimizer.zero_grad()
            ref_loss = torch.nn.functional.cross_entropy(reference(x), y)
            ref_loss.backward()
            ref_optimizer.step()
            returned = train_step(model, optimizer, x, y)
            if returned is None:
                return _wrong(name, "train_step returned nothing: end it with `return loss`.")
            loss = as_number("train_step(...)'s return value", _detach(returned))
            params = [p.detach() for p in model.parameters()]
            if all(torch.equal(p, s) for p, s in zip(params, start, strict=True)):
                return _wrong(
                    name,
                    "the parameters did not move: computing gradients is not "
                    "enough, the optimizer must apply them.",
                )
            if not all(
                torch.allclose(p, r.detach(), rtol=1e-6, atol=1e-6)
                for p, r in zip(params, reference.parameters(), strict=True)
            ):
                if step > 0:  # the first step matched
                    return _wrong(
                        name,
                        "the first step is right but later ones drift: "
                        "backward() adds to .grad, it does not overwrite it. What "
                        "must happen to the old gradients before each backward()?",
                    )
                return _wrong(
                    name, "the parameters after the first step differ from a reference step."
                )
            if not math.isclose(loss, ref_loss.item(), rel_tol=1e-6, abs_tol=1e-6):
                return _wrong(
                    name,
                    "the parameters are right but the returned loss is not: "
                    "return the loss you backpropagated, measured before the step.",
                )
    return feedback(
        name,
        True,
        success="zero, forward, backward, step: every training loop in the course, private "
        "or federated, is these four lines with something added between backward and step.",
    )


@graded("Exercise 00b.1")
def check_laplace_sampler(sample_laplace: Any) -> bool:
    """Exercise 00b.1: ``sample_laplace(n, scale, generator)``, n Laplace(0, scale) draws.

    Called on hidden sizes, scales and seeds. The draws must have shape (n,),
    come only from ``generator`` (the same seed gives the same draws, another
    seed other draws), and pass a Kolmogorov-Smirnov comparison with the
    Laplace distribution (threshold and error rates in the module). Gaussian
    draws, a one-sided exponential, and a scale mistaken for the standard
    deviation or for its inverse get their own hints.
    """
    import torch

    name = "Exercise 00b.1"
    if is_unanswered(sample_laplace):
        return report_unanswered(name)
    _require_function("sample_laplace", sample_laplace, "sample_laplace(n, scale, generator)")
    for seed, scale in ((27001, 0.5), (27002, 3.0)):
        draws = _draws(sample_laplace, _SAMPLES, scale, torch.Generator().manual_seed(seed))
        if draws is None:
            return _wrong(
                name,
                f"sample_laplace({_SAMPLES}, ...) must return {_SAMPLES} numbers, one per draw.",
            )
        again = _draws(sample_laplace, _SAMPLES, scale, torch.Generator().manual_seed(seed))
        other = _draws(sample_laplace, _SAMPLES, scale, torch.Generator().manual_seed(seed + 100))
        if again is None or other is None or not np.array_equal(draws, again):
            return _wrong(
                name,
                "two generators with the same seed gave different draws: "
                "draw every random number from the generator you were given.",
            )
        if np.array_equal(draws, other):
            return _wrong(name, "two different seeds gave the same draws: use the generator.")
        distance = _ks(draws, stats.laplace(scale=scale).cdf)
        if distance >= _KS_THRESHOLD:
            return _wrong(name, _laplace_slip(draws, scale))
    return feedback(
        name,
        True,
        success="Laplace noise from a seeded generator: the Laplace mechanism of notebook 04, "
        "reproducible draw for draw.",
    )


@graded("Exercise 00b.2")
def check_renyi_monte_carlo(renyi: Any) -> bool:
    """Exercise 00b.2: ``renyi(log_ratios, order)``, a Monte Carlo Rényi divergence D_order(P || Q).

    ``log_ratios`` holds samples of log P(x) / Q(x) with x drawn from P (not
    from Q). Checked on hidden samples and orders above and below 1 against
    the exact same-sample estimate, to 1e-6 relative; one hidden case has
    log-ratios large enough that a naive exponential overflows float64. The
    KL estimate, a missing prefactor, and an exponent written for samples
    from Q get their own hints.
    """
    import torch

    name = "Exercise 00b.2"
    if is_unanswered(renyi):
        return report_unanswered(name)
    _require_function("renyi", renyi, "renyi(log_ratios, order)")
    generator = torch.Generator().manual_seed(2703)
    cases = [(0.8, 2.0), (1.5, 3.5), (0.6, 0.5), (400.0, 3.0)]  # the last one overflows exp
    for mu, order in cases:  # log-ratios of two shifted Gaussians: N(mu, 2 mu)
        samples = mu + math.sqrt(2 * mu) * torch.randn(
            5_000, generator=generator, dtype=torch.float64
        )
        returned = renyi(samples.clone(), order)
        if returned is None:
            return _wrong(name, "renyi returned nothing: end it with `return`.")
        got = as_number("renyi(log_ratios, order)", _detach(returned))
        expected = _renyi_estimate(samples.numpy(), order)
        if math.isclose(got, expected, rel_tol=1e-6):
            continue
        if not math.isfinite(got):
            return _wrong(
                name,
                "one hidden case has large log-ratios, where exp(...) "
                "overflows: take the log of a mean of exponentials without "
                "forming the exponentials (torch.logsumexp, then subtract log n).",
            )
        return _wrong(name, _renyi_slip(got, samples.numpy(), order))
    return feedback(
        name,
        True,
        success="log-mean-exp of (order - 1) times the privacy loss: this is the Rényi DP "
        "that notebook 05a's accountant composes, and the estimate tracks the closed form.",
    )


def _renyi_estimate(log_ratios: np.ndarray, order: float) -> float:
    """The reference estimate on the learner's own samples, computed in log space."""
    n = len(log_ratios)
    return float((special.logsumexp((order - 1.0) * log_ratios) - math.log(n)) / (order - 1.0))


def _renyi_slip(got: float, log_ratios: np.ndarray, order: float) -> str:
    n = len(log_ratios)
    kl = float(np.mean(log_ratios))
    q_exponent = float((special.logsumexp(order * log_ratios) - math.log(n)) / (order - 1.0))
    no_prefactor = (order - 1.0) * _renyi_estimate(log_ratios, order)
    if math.isclose(got, kl, rel_tol=1e-6):
        return (
            "that is the KL divergence, the mean of the log-ratios. Rényi averages the "
            "ratios raised to a power first and takes the log after."
        )
    if math.isclose(got, q_exponent, rel_tol=1e-6):
        return (
            "the power a belongs to samples from Q; your samples come from P, and one "
            "factor of P / Q is already in the sampling."
        )
    if math.isclose(got, no_prefactor, rel_tol=1e-6):
        return "the log of the mean still needs the prefactor in front of it."
    return (
        "average (P / Q) raised to a power over the samples, take the log, scale it; "
        "which power is right when x comes from P rather than from Q?"
    )


def _laplace_slip(draws: np.ndarray, scale: float) -> str:
    alternatives = (
        (
            stats.expon(scale=scale).cdf,
            "every draw is >= 0: a Laplace variable is an exponential "
            "with a random sign (or the difference of two exponentials).",
        ),
        (
            stats.norm(scale=math.sqrt(2) * scale).cdf,
            "these look Gaussian; the Laplace density "
            "falls like exp(-|x| / b), not exp(-x^2 / 2 sigma^2).",
        ),
        (
            stats.norm(scale=scale).cdf,
            "these look Gaussian; the Laplace density falls like "
            "exp(-|x| / b), not exp(-x^2 / 2 sigma^2).",
        ),
        (
            stats.laplace(scale=scale / math.sqrt(2)).cdf,
            "the spread is off by sqrt(2): the scale "
            "b is not the standard deviation (that is sqrt(2) b).",
        ),
        (
            stats.laplace(scale=1.0 / scale).cdf,
            "the spread is inverted: b is a scale (it multiplies the draws), not a rate.",
        ),
    )
    for cdf, hint in alternatives:
        if _ks(draws, cdf) < _KS_THRESHOLD:
            return hint
    return "these do not look like Laplace(0, b) draws."


def _ks(draws: np.ndarray, cdf: Callable[[np.ndarray], np.ndarray]) -> float:
    """Kolmogorov-Smirnov distance between the draws' empirical CDF and ``cdf``."""
    x = np.sort(draws)
    n = len(x)
    f = cdf(x)
    return float(max(np.max(np.arange(1, n + 1) / n - f), np.max(f - np.arange(n) / n)))


def _draws(sample: Callable[..., Any], n: int, scale: float, generator: Any) -> np.ndarray | None:
    draws = as_array("sample_laplace(n, scale, generator)", sample(n, scale, generator))
    if draws.shape != (n,) or not np.all(np.isfinite(draws)):
        return None
    return draws


def _detach(value: Any) -> Any:
    return value.detach() if hasattr(value, "detach") else value


def _require_function(name: str, value: Any, signature: str) -> None:
    if not callable(value):
        raise TypeError(f"{name} must be a function {signature}, got {value!r}")


def _wrong(name: str, hint: str) -> bool:
    return feedback(name, False, success="", hint=hint)
