"""fl_dp_lab.attacks: exact reconstruction, DLG, ROC/AUC and membership inference."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from torch import nn

from fl_dp_lab import attacks
from fl_dp_lab.attacks import (
    _membership,
    auc,
    gradient_inversion,
    gradients_from_update,
    match_reconstructions,
    membership_inference_scores,
    psnr,
    reconstruct_from_linear_gradient,
    reconstruct_from_noisy_linear_gradient,
    roc_curve,
    tpr_at_fpr,
)
from fl_dp_lab.data import load_digits
from fl_dp_lab.models import MLP, LogisticRegression
from fl_dp_lab.plots.attacks import plot_image_rows, plot_inversion, plot_psnr_by_batch
from fl_dp_lab.training import train

CE = nn.functional.cross_entropy


def _gradients(model, x, y):
    loss = CE(model(x), y)
    names = [name for name, _ in model.named_parameters()]
    return dict(zip(names, torch.autograd.grad(loss, list(model.parameters())), strict=True))


@pytest.fixture(scope="module")
def digits():
    x, y, x_test, y_test = load_digits()
    return torch.tensor(x), torch.tensor(y), torch.tensor(x_test), torch.tensor(y_test)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_first_layer_gradient_gives_the_image_back_exactly(digits, seed):
    # Prepare: one example's gradient through a whole MLP, read at its first layer
    x, y, _, _ = digits
    model = MLP(64, 32, 10, generator=torch.Generator().manual_seed(seed))
    grads = _gradients(model, x[seed : seed + 1], y[seed : seed + 1])
    # Execute
    image = reconstruct_from_linear_gradient(grads["fc1.weight"], grads["fc1.bias"])
    # Assert
    torch.testing.assert_close(image, x[seed].flatten(), atol=1e-5, rtol=0)


def test_any_single_row_ratio_agrees_with_the_least_squares_answer(digits):
    x, y, _, _ = digits
    model = LogisticRegression(64, 10, generator=torch.Generator().manual_seed(0))
    grads = _gradients(model, x[:1], y[:1])
    row = int(grads["linear.bias"].abs().argmax())
    by_ratio = grads["linear.weight"][row] / grads["linear.bias"][row]  # the textbook trick
    torch.testing.assert_close(
        reconstruct_from_linear_gradient(grads["linear.weight"], grads["linear.bias"]),
        by_ratio,
        atol=1e-5,
        rtol=0,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_one_fit_is_exact_without_noise(digits, seed):
    x, y, _, _ = digits
    model = MLP(64, 32, 10, generator=torch.Generator().manual_seed(seed))
    grads = _gradients(model, x[seed : seed + 1], y[seed : seed + 1])
    image = reconstruct_from_noisy_linear_gradient(grads["fc1.weight"], grads["fc1.bias"])
    torch.testing.assert_close(image, x[seed].flatten(), atol=1e-5, rtol=0)


def test_rank_one_fit_matches_alternating_least_squares():
    # Reference: fit M ~ g (x, 1)^T by alternating the two least-squares solves, a
    # different algorithm that converges to the same best rank-one fit (no SVD used)
    gen = torch.Generator().manual_seed(0)
    g, x = torch.randn(20, generator=gen, dtype=torch.float64), torch.rand(30, generator=gen)
    weight = torch.outer(g, x.double()) + 0.05 * torch.randn(
        20, 30, generator=gen, dtype=torch.float64
    )
    bias = g + 0.05 * torch.randn(20, generator=gen, dtype=torch.float64)
    stacked = torch.cat([weight, bias[:, None]], 1)
    y_hat = torch.ones(31, dtype=torch.float64)
    for _ in range(500):
        g_hat = stacked @ y_hat / (y_hat @ y_hat)
        y_hat = stacked.T @ g_hat / (g_hat @ g_hat)
    expected = y_hat[:-1] / y_hat[-1]
    torch.testing.assert_close(reconstruct_from_noisy_linear_gradient(weight, bias), expected)


def test_rank_one_fit_beats_one_row_and_plain_least_squares_under_noise(digits):
    # Prepare: 10 digits' first-layer gradients, each scaled to norm 1 (as clipping to C = 1
    # would), plus N(0, 0.02^2) in every entry (seed = digit); scored by MSE on [0, 1] pixels.
    # Seen over 20 seeds: mean MSE one row 0.043, plain least squares 0.012, rank-one 0.005.
    x, y, _, _ = digits
    model = MLP(64, 32, 10, generator=torch.Generator().manual_seed(0))
    errors: dict[str, list[float]] = {"row": [], "least squares": [], "rank one": []}
    for k in range(10):
        grads = _gradients(model, x[k : k + 1], y[k : k + 1])
        weight, bias = grads["fc1.weight"], grads["fc1.bias"]
        scale = torch.cat([weight.flatten(), bias]).norm()
        gen = torch.Generator().manual_seed(k)
        weight = weight / scale + 0.02 * torch.randn(weight.shape, generator=gen)
        bias = bias / scale + 0.02 * torch.randn(bias.shape, generator=gen)
        row = int(bias.abs().argmax())  # the textbook trick on its best row
        guesses = {
            "row": weight[row] / bias[row],
            "least squares": reconstruct_from_linear_gradient(weight, bias),
            "rank one": reconstruct_from_noisy_linear_gradient(weight, bias),
        }
        for name, guess in guesses.items():
            errors[name].append(float(((guess.clamp(0, 1) - x[k].flatten()) ** 2).mean()))
    mean = {name: float(np.mean(values)) for name, values in errors.items()}
    # Assert: the rank-one fit has less than half the error of either weaker attack
    assert mean["rank one"] < 0.5 * mean["least squares"] < 0.5 * mean["row"]


def test_batch_gradient_reconstructs_a_weighted_blend_not_one_image(digits):
    x, y, _, _ = digits
    model = LogisticRegression(64, 10, generator=torch.Generator().manual_seed(0))
    grads = _gradients(model, x[:4], y[:4])
    blend = reconstruct_from_linear_gradient(grads["linear.weight"], grads["linear.bias"])
    # naive reference: per-example bias gradients g_k give weights <g, g_k> / <g, g>
    per_example = torch.stack(
        [_gradients(model, x[k : k + 1], y[k : k + 1])["linear.bias"] for k in range(4)]
    )
    g = per_example.mean(0)
    weights = per_example @ g / (g @ g) / 4
    torch.testing.assert_close(blend, weights @ x[:4].flatten(1), atol=1e-5, rtol=0)
    assert min(float(((blend - x[k].flatten()) ** 2).mean()) for k in range(4)) > 1e-3


def test_dlg_recovers_a_single_image_from_a_tiny_mlp(digits):
    # Prepare: untrained 64-32-10 tanh MLP, one digit; seeds 0 (model) and 1 (dummy start)
    x, y, _, _ = digits
    model = MLP(64, 32, 10, generator=torch.Generator().manual_seed(0))
    target = _gradients(model, x[:1], y[:1])
    before = [p.detach().clone() for p in model.parameters()]
    # Execute
    result = gradient_inversion(
        model, CE, target, batch_shape=(1, 8, 8), num_classes=10, steps=300,
        generator=torch.Generator().manual_seed(1),
    )  # fmt: skip
    # Assert: MSE < 2e-3 (PSNR > 27 dB; a random start has MSE ~0.2), label found, model untouched
    assert float(((result.inputs - x[:1]) ** 2).mean()) < 2e-3
    assert int(result.labels.argmax()) == int(y[0])
    assert result.loss[-1] < 0.01 * result.loss[0]
    for p, b in zip(model.parameters(), before, strict=True):
        assert torch.equal(p, b)


def test_dlg_accepts_a_subset_of_parameters_and_known_labels(digits):
    x, y, _, _ = digits
    model = MLP(64, 32, 10, generator=torch.Generator().manual_seed(0))
    target = {k: v for k, v in _gradients(model, x[:2], y[:2]).items() if k.startswith("fc2")}
    result = gradient_inversion(
        model, CE, target, batch_shape=(2, 8, 8), num_classes=10, steps=5,
        labels=y[:2], generator=torch.Generator().manual_seed(1), optimizer="lbfgs", lr=0.1,
    )  # fmt: skip
    assert result.inputs.shape == (2, 8, 8) and len(result.loss) == 5
    torch.testing.assert_close(result.labels.argmax(1), y[:2])  # known labels come back one-hot
    assert result.loss[-1] < result.loss[0]  # L-BFGS on the fc2 gradients alone makes progress


def test_a_one_step_client_update_gives_the_gradient_back(digits):
    x, y, _, _ = digits
    model = MLP(64, 8, 10, generator=torch.Generator().manual_seed(0))
    grads = _gradients(model, x[:5], y[:5])
    update = -0.3 * torch.cat([g.reshape(-1) for g in grads.values()])  # one SGD step, lr 0.3
    recovered = gradients_from_update(model, update, lr=0.3)
    assert list(recovered) == list(grads)
    for name, grad in grads.items():
        torch.testing.assert_close(recovered[name], grad)
    with pytest.raises(ValueError, match=r"update must be a flat tensor of shape \(610,\)"):
        gradients_from_update(model, torch.zeros(3), lr=0.3)


def test_perfect_random_and_reversed_scorers():
    rng = np.random.default_rng(0)
    members = np.r_[np.ones(5000), np.zeros(5000)]
    assert auc(*roc_curve(members * 2.0, members)) == 1.0
    assert auc(*roc_curve(-members, members)) == 0.0
    random = auc(*roc_curve(rng.random(10_000), members))
    assert abs(random - 0.5) < 0.015  # std of the AUC here is ~0.006 (seed 0)
    assert auc(*roc_curve(np.zeros(10), members[4995:5005])) == 0.5  # all tied


@settings(max_examples=40, deadline=None)
@given(data=st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=40))
def test_auc_equals_the_pairwise_mann_whitney_count(data):
    scores = np.array([s for s, _ in data], dtype=float)
    labels = np.array([m for _, m in data])
    if labels.all() or not labels.any():
        return
    pos, neg = scores[labels], scores[~labels]
    expected = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    fpr, tpr = roc_curve(scores, labels)
    assert auc(fpr, tpr) == pytest.approx(expected)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def test_tpr_at_fpr_reads_the_low_false_positive_corner():
    fpr, tpr = roc_curve(np.array([5.0, 4.0, 3.0, 2.0, 1.0]), np.array([1, 1, 0, 1, 0]))
    assert tpr_at_fpr(fpr, tpr, max_fpr=0.0) == pytest.approx(2 / 3)
    assert tpr_at_fpr(fpr, tpr, max_fpr=0.5) == 1.0


def test_membership_inference_beats_guessing_on_an_overfit_model(digits):
    # Prepare: 60 members memorised by a 64-64-10 MLP (300 full-batch steps), 60 non-members
    x, y, x_test, y_test = digits
    model = MLP(64, 64, 10, generator=torch.Generator().manual_seed(0))
    train(model, x[:60], y[:60], epochs=300, batch_size=60, lr=0.5,
          generator=torch.Generator().manual_seed(1), progress=False)  # fmt: skip
    # Execute
    scores = np.r_[membership_inference_scores(model, x[:60], y[:60]),
                   membership_inference_scores(model, x_test[:60], y_test[:60])]  # fmt: skip
    members = np.r_[np.ones(60), np.zeros(60)]
    # Assert: members have lower loss, so AUC is clearly above a coin flip
    assert auc(*roc_curve(scores, members)) > 0.65
    assert model.training  # scoring restored the mode


def test_match_and_psnr():
    x_true = torch.rand(5, 3, 3, generator=torch.Generator().manual_seed(0))
    permuted = x_true[torch.tensor([3, 0, 4, 1, 2])] + 0.01
    torch.testing.assert_close(match_reconstructions(x_true, permuted), x_true + 0.01)
    torch.testing.assert_close(psnr(x_true, x_true + 0.01), torch.full((5,), 40.0))


def test_bad_inputs_raise_clear_errors(digits):
    x, y, _, _ = digits
    with pytest.raises(ValueError, match="grad_bias must be non-zero"):
        reconstruct_from_linear_gradient(torch.ones(3, 4), torch.zeros(3))
    with pytest.raises(ValueError, match=r"grad_bias must be a tensor of shape \(3,\)"):
        reconstruct_from_linear_gradient(torch.ones(3, 4), torch.ones(2))
    with pytest.raises(TypeError, match="grad_weight must be a 2-D tensor"):
        reconstruct_from_linear_gradient(torch.ones(4), torch.ones(4))
    with pytest.raises(ValueError, match=r"grad_bias must be a tensor of shape \(3,\)"):
        reconstruct_from_noisy_linear_gradient(torch.ones(3, 4), torch.ones(2))
    model = MLP(64, 8, 10, generator=torch.Generator().manual_seed(0))
    common = dict(batch_shape=(1, 8, 8), num_classes=10, steps=1, generator=torch.Generator())
    with pytest.raises(ValueError, match="target_grads keys must be parameter names"):
        gradient_inversion(model, CE, {"conv.weight": torch.zeros(1)}, **common)
    with pytest.raises(ValueError, match=r"target_grads\['fc1.bias'\] shape must be"):
        gradient_inversion(model, CE, {"fc1.bias": torch.zeros(3)}, **common)
    with pytest.raises(TypeError, match="target_grads must be a non-empty dict"):
        gradient_inversion(model, CE, {}, **common)
    with pytest.raises(ValueError, match="optimizer must be one of 'lbfgs', 'adam'"):
        gradient_inversion(model, CE, {"fc1.bias": torch.zeros(8)}, optimizer="sgd", **common)
    one_bias = {"fc1.bias": torch.zeros(8)}
    with pytest.raises(TypeError, match=r"batch_shape must be a tuple \(batch size, \*input"):
        gradient_inversion(model, CE, one_bias, **{**common, "batch_shape": (64,)})
    with pytest.raises(ValueError, match="batch_shape entries must be an integer >= 1"):
        gradient_inversion(model, CE, one_bias, **{**common, "batch_shape": (0, 8, 8)})
    with pytest.raises(ValueError, match=r"labels shape must be \(2,\)"):
        gradient_inversion(model, CE, one_bias, labels=torch.tensor([1]),
                           **{**common, "batch_shape": (2, 8, 8)})  # fmt: skip
    with pytest.raises(ValueError, match="is_member must be holding both members"):
        roc_curve(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="is_member must be an array of 0/1"):
        roc_curve(np.ones(3), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="fpr and tpr must be 1-D arrays"):
        auc(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        membership_inference_scores(lambda t: t, x[:3], y[:3])
    with pytest.raises(ValueError, match="x and y must be non-empty"):
        membership_inference_scores(model, x[:3], y[:2])
    with pytest.raises(ValueError, match="x_hat's shape must be"):
        psnr(torch.zeros(2, 3), torch.zeros(3, 3))


def test_public_api_is_unchanged_by_the_membership_split():
    # the membership attack lives in a private module; fl_dp_lab.attacks stays its public home
    for name in _membership.__all__:
        assert name in attacks.__all__ and getattr(attacks, name) is getattr(_membership, name)
    for name in attacks.__all__:
        assert getattr(attacks, name).__doc__, f"{name} has no docstring"


def test_figures_of_notebook_03_draw_what_they_are_given():
    # Prepare
    images = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    # Execute
    grid = plot_image_rows({"a": images, "b": images[:2]}, title="t", captions=["1", "2", "3"])
    inversion = plot_inversion([4.0, 2.0, 1.0], images[0], images[1], title="t")
    by_batch = plot_psnr_by_batch({1: np.array([30.0]), 8: np.array([9.0, 11.0])}, title="t")
    # Assert: 2 x 3 grid with the empty cell hidden; the loss curve is the one given
    assert len(grid.axes) == 6 and not grid.axes[5].axison
    np.testing.assert_array_equal(inversion.axes[0].lines[0].get_ydata(), [4.0, 2.0, 1.0])
    np.testing.assert_allclose(inversion.axes[2].images[0].get_array(), images[1].numpy())
    assert [t.get_text() for t in by_batch.axes[0].get_xticklabels()] == ["1", "8"]
    for fig in (grid, inversion, by_batch):
        plt.close(fig)


def _matching_loss(model, x, soft_labels, target):
    # an independent re-statement of DLG's objective, for the restarts test
    grads = torch.autograd.grad(CE(model(x), soft_labels), list(model.parameters()))
    return float(sum(((g - t) ** 2).sum() for g, t in zip(grads, target.values(), strict=True)))


def test_restarts_keep_the_start_with_the_lowest_matching_loss():
    # Prepare: untrained 64-32-10 MLP, one digit; this (model, start) pair diverges
    digits, labels, _, _ = (torch.tensor(a) for a in load_digits())
    model = MLP(64, 32, 10, generator=torch.Generator().manual_seed(1))
    x, y = digits[:1], labels[:1]
    leaked = dict(zip([n for n, _ in model.named_parameters()],
                      torch.autograd.grad(CE(model(x), y), list(model.parameters()))))  # fmt: skip
    kwargs = dict(batch_shape=(1, 8, 8), num_classes=10, steps=200)
    # Execute: two single runs drawn one after the other from one generator, and restarts=2
    shared = torch.Generator().manual_seed(2)
    first = gradient_inversion(model, CE, leaked, generator=shared, **kwargs)
    second = gradient_inversion(model, CE, leaked, generator=shared, **kwargs)
    both = gradient_inversion(
        model, CE, leaked, generator=torch.Generator().manual_seed(2), restarts=2, **kwargs
    )
    # Assert: restarts=2 returns the single run whose objective is lower, here the second
    losses = [_matching_loss(model, r.inputs, r.labels, leaked) for r in (first, second)]
    better = (first, second)[int(np.argmin(losses))]
    torch.testing.assert_close(both.inputs, better.inputs)
    assert float(psnr(x, first.inputs)) < 0 < 25 < float(psnr(x, both.inputs))
    with pytest.raises(ValueError, match="restarts must be"):
        gradient_inversion(model, CE, leaked, generator=shared, restarts=0, **kwargs)


def test_dlg_fails_on_a_trained_network():
    # Prepare: notebook 02's recipe (20 epochs, batches of 32, lr 0.5) vs the same net untrained
    digits, labels, _, _ = (torch.tensor(a) for a in load_digits())
    untrained = MLP(64, 32, 10, generator=torch.Generator().manual_seed(0))
    trained = MLP(64, 32, 10, generator=torch.Generator().manual_seed(0))
    train(trained, digits.flatten(1), labels, epochs=20, batch_size=32, lr=0.5,
          generator=torch.Generator().manual_seed(0), progress=False)  # fmt: skip
    # Execute
    scores = {}
    for name, model in (("untrained", untrained), ("trained", trained)):
        names = [n for n, _ in model.named_parameters()]
        scores[name] = []
        for i in range(3):
            x, y = digits[i : i + 1], labels[i : i + 1]
            leaked = dict(
                zip(names, torch.autograd.grad(CE(model(x), y), list(model.parameters())))
            )
            out = gradient_inversion(model, CE, leaked, batch_shape=(1, 8, 8), num_classes=10,
                                     steps=200, restarts=2,
                                     generator=torch.Generator().manual_seed(i))  # fmt: skip
            scores[name].append(float(psnr(x, out.inputs)))
    # Assert: > 25 dB untrained (hard to tell apart), < 10 dB trained (no better than noise)
    assert np.median(scores["untrained"]) > 25 and np.median(scores["trained"]) < 10, scores


def test_bootstrap_auc_interval_matches_scipy_bootstrap():
    # Prepare: overlapping normal scores, 200 members shifted by 0.3
    rng = np.random.default_rng(0)
    members, others = rng.normal(0.3, 1.0, 200), rng.normal(0.0, 1.0, 200)

    def mann_whitney(m, n, axis=-1):
        return (m[..., :, None] > n[..., None, :]).mean((-2, -1)) + 0.5 * (
            m[..., :, None] == n[..., None, :]
        ).mean((-2, -1))

    # Execute: ours, and scipy's percentile bootstrap (independent resampling of each group)
    ours = _membership.bootstrap_auc_interval(members, others, rng=np.random.default_rng(1))
    reference = stats.bootstrap((members, others), mann_whitney, paired=False, vectorized=True,
                                n_resamples=2000, method="percentile", batch=200,
                                random_state=np.random.default_rng(2))  # fmt: skip
    # Assert: two Monte Carlo estimates of the same quantiles agree to about 0.01;
    # the interval holds the point AUC and has the width of 2 x 1.96 standard errors
    low, high = reference.confidence_interval
    np.testing.assert_allclose(ours, (low, high), atol=0.012)
    point = auc(*roc_curve(np.r_[members, others], np.r_[np.ones(200), np.zeros(200)]))
    assert ours[0] < point < ours[1] and 0.08 < ours[1] - ours[0] < 0.14


def test_bootstrap_auc_interval_extremes_ties_and_validation():
    rng = np.random.default_rng(0)
    assert attacks.bootstrap_auc_interval(np.arange(5.0) + 10, np.arange(5.0), rng=rng) == (
        1.0,
        1.0,
    )
    # every score tied: every resample's AUC is exactly one half (ties count 1/2)
    assert attacks.bootstrap_auc_interval(np.ones(4), np.ones(6), rng=rng) == (0.5, 0.5)
    with pytest.raises(ValueError, match="member_scores must be"):
        attacks.bootstrap_auc_interval(np.ones(1), np.ones(6), rng=rng)
    with pytest.raises(TypeError, match="rng must be"):
        attacks.bootstrap_auc_interval(np.ones(3), np.ones(3), rng=0)
    with pytest.raises(ValueError, match="confidence must be"):
        attacks.bootstrap_auc_interval(np.ones(3), np.ones(3), rng=rng, confidence=1.0)
