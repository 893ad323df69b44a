"""fl_dp_lab.numdiff against closed-form derivatives and torch autograd."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fl_dp_lab.models import MLP
from fl_dp_lab.numdiff import (
    GradientCheck,
    central_difference,
    complex_step,
    default_step,
    fitted_order,
    forward_difference,
    gradient_check,
    jacobian,
    normwise_relative_error,
    richardson,
)

# (f, f', x): smooth functions with non-zero higher derivatives at x, so the
# leading error term of every method is present and the fitted slope is its order.
FUNCTIONS = {
    "sin": (np.sin, np.cos, 0.7),
    "exp": (np.exp, np.exp, 0.3),
    "runge": (lambda t: 1 / (1 + t * t), lambda t: -2 * t / (1 + t * t) ** 2, 0.4),
    "log": (np.log, lambda t: 1 / t, 1.7),
}
# Steps where truncation dominates round-off for each method (float64).
METHODS = {
    "forward": (forward_difference, 1, np.logspace(-5, -2, 8)),
    "central": (central_difference, 2, np.logspace(-4, -1.5, 8)),
    "richardson": (richardson, 4, np.logspace(-2, -0.8, 8)),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_measured_error_order_matches_theory(name, method):
    # Prepare
    f, df, x = FUNCTIONS[name]
    difference, order, steps = METHODS[method]
    # Execute
    errors = [abs(difference(f, x, h) - df(x)) for h in steps]
    # Assert: the log-log slope is the order within 0.3
    assert fitted_order(steps, errors) == pytest.approx(order, abs=0.3)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_complex_step_is_exact_to_machine_precision(name):
    f, df, x = FUNCTIONS[name]
    for h in (1e-20, 1e-10):
        assert complex_step(f, x, h) == pytest.approx(df(x), rel=1e-13)


def test_default_steps_are_near_the_best_possible():
    # The default h is within 30x of the best error over a fine grid of steps.
    f, df, x = FUNCTIONS["sin"]
    grid = np.logspace(-12, -1, 200)
    for difference, method in ((forward_difference, "forward"), (central_difference, "central")):
        best = min(abs(difference(f, x, h) - df(x)) for h in grid)
        assert abs(difference(f, x) - df(x)) <= 30 * best, method


def test_default_step_formula():
    eps64, eps32 = np.finfo(np.float64).eps, np.finfo(np.float32).eps
    assert default_step(1.0, method="forward") == pytest.approx(eps64**0.5)
    assert default_step(0.001) == pytest.approx(eps64 ** (1 / 3))  # max(|x|, 1) = 1
    assert default_step(-50.0, method="richardson") == pytest.approx(50 * eps64**0.2)
    assert default_step(np.float32(2.0)) == pytest.approx(2 * eps32 ** (1 / 3), rel=1e-6)


def test_float32_is_differenced_in_float32_with_float32_accuracy():
    x32 = np.array([0.5, 1.0, 2.0], dtype=np.float32)
    grad = central_difference(lambda v: np.sin(v).sum(), x32)
    assert grad.dtype == np.float32
    error = np.max(np.abs(grad - np.cos(x32.astype(np.float64))))
    # eps32^(2/3) ~ 2.4e-5 is the best central difference can do in float32
    assert 1e-8 < error < 3e-4
    # a float64-sized step is hopeless in float32: round-off eps/h dominates
    bad = central_difference(lambda v: np.sin(v).sum(), x32, h=1e-6)
    assert np.max(np.abs(bad - np.cos(x32.astype(np.float64)))) > 10 * error


def test_gradient_of_an_array_function_has_the_shape_of_x():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 4))
    x = rng.normal(size=(3, 4))

    def f(v):
        return np.sum(np.tanh(a * v) ** 2)

    exact = 2 * np.tanh(a * x) * (1 - np.tanh(a * x) ** 2) * a
    for method in (forward_difference, central_difference, richardson, complex_step):
        grad = method(f, x)
        assert grad.shape == x.shape
        tol = 1e-6 if method is forward_difference else 1e-9
        np.testing.assert_allclose(grad, exact, atol=tol)


def test_jacobian_matches_torch_autograd():
    # Prepare: a float64 MLP from R^5 to R^3
    generator = torch.Generator().manual_seed(0)
    model = MLP(5, 7, 3, generator=generator).double()
    x = torch.randn(5, dtype=torch.float64, generator=generator)

    def f(v):
        return model(v.reshape(1, 5)).reshape(3)

    # Execute
    ours = jacobian(f, x)
    reference = torch.autograd.functional.jacobian(f, x)
    # Assert
    assert isinstance(ours, torch.Tensor) and ours.shape == (3, 5)
    torch.testing.assert_close(ours, reference, rtol=1e-7, atol=1e-9)


def test_jacobian_of_numpy_function_and_scalar_input():
    x = np.array([[1.0, 2.0], [3.0, -1.0]])
    jac = jacobian(lambda v: v**2, x)
    assert jac.shape == (2, 2, 2, 2)
    np.testing.assert_allclose(jac.reshape(4, 4), np.diag(2 * x.ravel()), atol=1e-8)
    np.testing.assert_allclose(jacobian(lambda t: np.array([t, t**2]), 3.0), [1.0, 6.0])


def test_gradient_check_passes_a_right_gradient_and_flags_a_planted_bug():
    # Prepare: logistic-regression loss in float64, its gradient, and a planted bug
    rng = np.random.default_rng(1)
    features, labels = rng.normal(size=(20, 4)), rng.integers(0, 2, size=20)

    def loss(w):
        z = features @ w
        return np.mean(np.logaddexp(0, z) - labels * z)

    def grad(w):
        p = 1 / (1 + np.exp(-(features @ w)))
        return features.T @ (p - labels) / len(labels)

    def grad_missing_mean(w):  # forgets to divide by n: off by a factor 20
        return grad(w) * len(labels)

    def grad_one_bad_coordinate(w):
        g = grad(w).copy()
        g[2] *= 1.01
        return g

    w = rng.normal(size=4)
    # Execute
    right = gradient_check(loss, grad, w)
    wrong = gradient_check(loss, grad_missing_mean, w)
    subtle = gradient_check(loss, grad_one_bad_coordinate, w)
    # Assert
    assert isinstance(right, GradientCheck) and right and right.max_relative_error < 1e-8
    assert right.tolerance == 1e-5  # the float64 default
    assert not wrong and wrong.max_relative_error > 0.9
    assert not subtle and subtle.worst_index == (2,)
    assert subtle.max_relative_error == pytest.approx(0.01 / 1.01, rel=1e-4)
    assert "FAILED" in repr(subtle) and "passed" in repr(right)


def test_gradient_check_on_a_torch_module_and_a_precomputed_gradient():
    generator = torch.Generator().manual_seed(2)
    model = MLP(4, 6, 3, generator=generator).double()
    x = torch.randn(5, 4, dtype=torch.float64, generator=generator)
    y = torch.tensor([0, 1, 2, 1, 0])

    def loss_of_input(inputs):
        return torch.nn.functional.cross_entropy(model(inputs), y)

    inputs = x.clone().requires_grad_(True)
    loss_of_input(inputs).backward()
    assert gradient_check(loss_of_input, inputs.grad, x)
    assert not gradient_check(loss_of_input, -inputs.grad, x)


def test_gradient_check_on_scalars():
    assert gradient_check(np.sin, np.cos, 0.4)
    assert not gradient_check(np.sin, np.sin, 0.4)
    assert gradient_check(np.exp, np.exp(2.0), 2.0).worst_index == ()


def test_gradient_check_float32_uses_a_looser_tolerance():
    x = np.array([0.3, -1.2], dtype=np.float32)
    result = gradient_check(lambda v: np.sum(v**3), lambda v: 3 * v**2, x)
    assert result.tolerance == 5e-2 and result.passed
    assert result.max_relative_error > 1e-8  # float32 round-off is visible


@settings(max_examples=40, deadline=None)
@given(
    a=st.floats(-10, 10),
    b=st.floats(-10, 10),
    x=st.floats(-100, 100),
)
def test_central_difference_is_exact_for_quadratics_up_to_round_off(a, b, x):
    # The truncation error h^2/6 f''' vanishes for a quadratic: only round-off remains.
    def f(t):
        return a * t * t + b * t

    exact = 2 * a * x + b
    scale = max(abs(a) * x * x + abs(b * x), 1.0) / default_step(x)
    assert abs(central_difference(f, x) - exact) <= 10 * np.finfo(float).eps * scale


def test_scalar_inputs_return_scalars_of_the_same_kind():
    assert type(central_difference(math.sin, 1.0)) is float
    assert type(central_difference(np.sin, np.float32(1.0))) is np.float32
    assert isinstance(central_difference(lambda t: t * t, torch.tensor(3.0)), torch.Tensor)


def test_fitted_order_on_exact_power_laws():
    h = np.logspace(-4, -1, 5)
    assert fitted_order(h, 3 * h**2) == pytest.approx(2.0)
    assert fitted_order(h, 0.5 * h**4) == pytest.approx(4.0)


@pytest.mark.parametrize("method", [forward_difference, central_difference, richardson])
def test_bad_steps_are_refused(method):
    with pytest.raises(ValueError, match="h must be > 0, got 0.0"):
        method(np.sin, 1.0, h=0.0)
    with pytest.raises(ValueError, match="h must be > 0, got -0.1"):
        method(np.sin, 1.0, h=-0.1)
    with pytest.raises(ValueError, match="h must be a finite number"):
        method(np.sin, 1.0, h=math.nan)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"x must be finite \(no nan or inf\)"):
        central_difference(np.sin, np.array([1.0, np.inf]))
    with pytest.raises(ValueError, match="x must be finite"):
        complex_step(np.sin, math.nan)
    with pytest.raises(TypeError, match="x must be a real float32 or float64"):
        central_difference(np.sin, "1.0")
    with pytest.raises(TypeError, match="x must be a real number or array"):
        central_difference(np.sin, True)
    with pytest.raises(TypeError, match="f must be a function"):
        central_difference(3.0, 1.0)
    with pytest.raises(ValueError, match="h must be > 0"):
        complex_step(np.sin, 1.0, h=0)


def test_wrong_shaped_outputs_raise_clear_errors():
    with pytest.raises(ValueError, match="f must be scalar-valued; use jacobian"):
        central_difference(lambda v: v**2, np.ones(3))
    with pytest.raises(ValueError, match=r"f\(x \+ h\) must be finite"):
        central_difference(lambda t: math.inf, 1.0)
    calls = iter(range(100))
    with pytest.raises(ValueError, match="f's output shape must be the same at every call"):
        jacobian(lambda v: np.ones(1 + next(calls) % 2), np.ones(2))
    with pytest.raises(ValueError, match="grad_f\\(x\\)'s shape must be the shape of x"):
        gradient_check(lambda v: v.sum(), np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="grad_f\\(x\\) must be finite"):
        gradient_check(lambda v: v.sum(), np.full(2, np.nan), np.ones(2))
    with pytest.raises(ValueError, match="tolerance must be > 0"):
        gradient_check(lambda v: v.sum(), np.ones(2), np.ones(2), tolerance=0.0)
    with pytest.raises(ValueError, match="method must be one of"):
        default_step(1.0, method="backward")
    with pytest.raises(ValueError, match="h and errors must be positive"):
        fitted_order([1e-3, 1e-2], [0.0, 1e-4])


def test_a_step_below_the_spacing_of_floats_is_refused():
    with pytest.raises(ValueError, match="h must be large enough that x \\+ h != x in float32"):
        central_difference(np.sin, np.float32(1.0), h=1e-9)
    with pytest.raises(ValueError, match="x \\+ h != x in float32"):
        richardson(np.sin, np.float32(1.0), h=1e-7)  # h fits, h/2 does not
    with pytest.raises(ValueError, match="x \\+ h != x in float64"):
        jacobian(np.sin, np.array([1e10]), h=1e-9)


@pytest.mark.parametrize(
    "method", [forward_difference, central_difference, richardson, complex_step]
)
def test_every_method_keeps_float32_and_reaches_float32_accuracy(method):
    # Prepare: float32 in, the exact derivative computed in float64
    x32 = np.array([0.5, 1.0, 2.0], dtype=np.float32)
    exact = np.cos(x32.astype(np.float64))
    # Execute
    grad = method(lambda v: np.sin(v).sum(), x32)
    # Assert: float32 out; error near the method's float32 floor (eps32 = 1.2e-7):
    # eps^(1/2) for forward, eps^(2/3) for central, ~eps^(4/5) for Richardson, eps for complex
    bound = {forward_difference: 3e-3, central_difference: 3e-4, richardson: 3e-4}
    assert grad.dtype == np.float32
    assert np.max(np.abs(grad - exact)) < bound.get(method, 1e-6)


def test_jacobian_and_tensors_keep_float32():
    jac = jacobian(lambda v: v**2, np.array([1.0, 3.0], dtype=np.float32))
    assert jac.dtype == np.float32
    np.testing.assert_allclose(jac, np.diag([2.0, 6.0]), atol=1e-2)
    grad = central_difference(lambda v: (v**3).sum(), torch.tensor([1.0, 2.0]))
    assert grad.dtype == torch.float32
    torch.testing.assert_close(grad, torch.tensor([3.0, 12.0]), atol=1e-2, rtol=0)


def test_gradient_check_takes_a_torch_module_as_f():
    # Prepare: a module mapping R^3 to one number; its gradient is its weight
    generator = torch.Generator().manual_seed(3)
    module = torch.nn.Linear(3, 1).double()
    with torch.no_grad():
        module.weight.copy_(torch.randn(1, 3, dtype=torch.float64, generator=generator))
    x = torch.randn(3, dtype=torch.float64, generator=generator)
    # Execute / Assert
    assert gradient_check(module, module.weight.detach().reshape(3), x)
    assert not gradient_check(module, 2 * module.weight.detach().reshape(3), x)


def test_relative_errors_match_a_naive_loop_and_the_reported_maximum():
    # Prepare: one large, one tiny and one zero coordinate
    claimed = np.array([2.0, 1e-7, 0.0, -0.5])
    result = gradient_check(lambda v: 0.0 * v.sum(), claimed, np.zeros(4))  # numeric: 0
    # Execute: the metric by hand, coordinate by coordinate
    floor = 1e-3 * 2.0
    naive = [abs(a) / max(abs(a), floor) for a in claimed]
    # Assert
    np.testing.assert_allclose(result.relative_errors, naive, rtol=1e-12)
    assert result.max_relative_error == result.relative_errors.max() == 1.0
    assert result.worst_index == (0,)


def test_complex_step_refuses_what_would_silently_give_zero():
    # f with abs drops the imaginary part: the "derivative" would be 0, not 2x
    with pytest.raises(TypeError, match=r"f\(x \+ ih\) must be complex"):
        complex_step(lambda t: np.abs(t) ** 2, 1.5)
    # i*h underflows: 1e-40 is below float32's smallest normal number (1.2e-38)
    with pytest.raises(ValueError, match=r"h must be >= 1.2e-38 .*complex64"):
        complex_step(np.sin, np.float32(1.0), h=1e-40)
    with pytest.raises(ValueError, match=r"h must be >= 2.2e-308"):
        complex_step(np.sin, 1.0, h=1e-320)
    assert complex_step(np.sin, np.float32(1.0), h=1e-30) == pytest.approx(np.cos(1.0), rel=1e-6)


def test_jacobian_refuses_bad_steps_and_complex_outputs():
    with pytest.raises(ValueError, match="h must be > 0, got 0.0"):
        jacobian(lambda v: v, np.ones(2), h=0.0)
    with pytest.raises(TypeError, match=r"f\(x\) must be real"):
        jacobian(lambda v: v + 1j, np.ones(2))
    with pytest.raises(ValueError, match="h must be > 0, got -1.0"):
        gradient_check(np.sin, np.cos, 1.0, h=-1.0)


def test_normwise_relative_error_against_its_definition_and_in_float32():
    # Prepare: the 2-norm by hand, and a float32 gradient check of sum(sin(v) * v)
    a, n = np.array([3.0, -4.0, 0.0]), np.array([3.0, -3.0, 1e-9])
    by_hand = math.sqrt(1.0 + 1e-18) / 5.0
    v = np.linspace(-2.0, 2.0, 40).astype(np.float32)

    def f(z):
        return np.sum(np.sin(z) * z)

    def grad(z, scale=1.0):
        return (np.sin(z) + z * np.cos(z)) * scale

    # Execute
    right = gradient_check(f, grad, v)
    buggy = gradient_check(f, lambda z: grad(z, 0.995), v)
    # Assert: the definition; a uniform 0.5 % bug reads 5e-3 norm-wise in float32,
    # 30x above the right gradient's round-off (1.5e-4), though both pass the per-coordinate check
    assert normwise_relative_error(a, n) == pytest.approx(by_hand, rel=1e-12)
    assert normwise_relative_error(torch.tensor(a), n) == pytest.approx(by_hand, rel=1e-12)
    assert normwise_relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert right.normwise_relative_error < 5e-4 and right.passed
    assert buggy.normwise_relative_error == pytest.approx(5e-3, rel=0.02) and buggy.passed
    with pytest.raises(ValueError, match="numeric's shape must be"):
        normwise_relative_error(a, n[:2])
    with pytest.raises(ValueError, match="analytic and numeric must be finite"):
        normwise_relative_error(a, np.array([np.nan, 0.0, 0.0]))
