"""Notebook 06's exercise checks: right, typical wrong, unanswered, malformed."""

from __future__ import annotations

import pytest
import torch

from fl_dp_lab.dpsgd import add_noise, clip_per_sample, per_sample_gradients
from fl_dp_lab.exercises import (
    check_clip_factors,
    check_clip_function,
    check_dp_sgd_step,
    check_opacus_sample_rate,
)


def test_clip_factors_right_and_the_usual_slips(capsys):
    assert check_clip_factors([1.0, 0.5, 0.25]) is True
    assert "✓" in capsys.readouterr().out
    opacus_style = (1.0 / (torch.tensor([0.5, 2.0, 4.0]) + 1e-6)).clamp(max=1.0)
    assert check_clip_factors(opacus_style) is True
    assert check_clip_factors([2.0, 0.5, 0.25]) is False  # C / ||g|| without the min
    assert "*up*" in capsys.readouterr().out.split("✓")[-1]
    assert check_clip_factors([0.5, 2.0, 4.0]) is False  # ||g|| / C
    assert "upside down" in capsys.readouterr().out
    assert check_clip_factors([1.0, 0.5, 0.5]) is False
    assert "Hint" in capsys.readouterr().out
    assert check_clip_factors(...) is False
    assert "not answered yet" in capsys.readouterr().out
    assert check_clip_factors([1.0, 0.5]) is False  # a wrong shape is a wrong answer
    assert "shape (2,), but it must have shape (3,)" in capsys.readouterr().out
    with pytest.raises(TypeError, match="array of numbers"):
        check_clip_factors(["a", "b", "c"])


def test_clip_function_right_and_the_usual_slips(capsys):
    def right(g, c):
        return clip_per_sample({"g": g[None]}, max_grad_norm=c)["g"][0]

    assert check_clip_function(right) is True
    assert "✓" in capsys.readouterr().out
    assert check_clip_function(lambda g, c: g * c / g.norm()) is False  # 0/0 on the zero vector
    assert "NaN" in capsys.readouterr().out
    assert check_clip_function(lambda g, c: g * c / (g.norm() + 1e-6)) is False  # no min
    assert "stretched" in capsys.readouterr().out
    assert check_clip_function(lambda g, c: g) is False  # no clipping at all
    assert "Hint" in capsys.readouterr().out
    assert check_clip_function(lambda g, c: torch.clamp(g, -c, c)) is False  # per coordinate
    assert "every coordinate" in capsys.readouterr().out
    assert check_clip_function(lambda g, c: g * min(1.0, c / float(g.norm()))) is False
    assert "ZeroDivisionError" in capsys.readouterr().out

    def in_place(g, c):  # clips g in place and forgets to return it
        g.mul_(min(1.0, c / (float(g.norm()) + 1e-6)))

    assert check_clip_function(in_place) is False
    assert "returned None" in capsys.readouterr().out
    assert check_clip_function(...) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="clip must be a function"):
        check_clip_function(1.0)
    assert check_clip_function(lambda g, c: g.sum()) is False
    assert "must be shaped like g" in capsys.readouterr().out


# --- The classic wrong answers: each must be rejected with a hint that names the slip ---------


def test_clip_function_rejects_a_clip_to_a_hard_coded_one(capsys):
    # passes every case at C = 1, which is all the check used to test
    def clip_to_one(g, c):
        return g * min(1.0, 1.0 / (float(g.norm()) + 1e-6))

    assert check_clip_function(clip_to_one) is False
    out = capsys.readouterr().out
    assert "clips to 1 whatever C is" in out and "max_grad_norm = 0.5" in out


def test_clip_function_rejects_a_hard_coded_norm_and_a_squared_norm(capsys):
    def fixed_norm(g, c):  # the norm of the example gradient (3, 4), not of g
        return g * min(1.0, c / 5.0)

    assert check_clip_function(fixed_norm) is False
    assert "(want it unchanged)" in capsys.readouterr().out

    def squared_norm(g, c):  # ||g||^2 instead of ||g||: right only where ||g|| = 1
        return g * min(1.0, c / (float(g.norm()) ** 2 + 1e-6))

    assert check_clip_function(squared_norm) is False
    assert "✗" in capsys.readouterr().out


def test_clip_function_checks_each_example_of_a_batch_on_its_own(capsys):
    # right on 2-D inputs of norm 5C and 0.3C, wrong on longer vectors: only the batch sees it
    def first_two_coordinates(g, c):
        norm = float(g[:2].norm())
        return g * min(1.0, c / (norm + 1e-6))

    assert check_clip_function(first_two_coordinates) is False
    out = capsys.readouterr().out
    assert "in a batch of 8 gradients" in out and "clipped on its own, by its own norm" in out


def test_clip_factors_rejects_clipping_the_batch_instead_of_each_example(capsys):
    norms = torch.tensor([0.5, 2.0, 4.0])
    by_batch = torch.full((3,), 1.0 / float(norms.norm()))  # C / ||whole batch||, C = 1
    assert check_clip_factors(by_batch) is False
    out = capsys.readouterr().out
    assert "clips the batch" in out and "not each example" in out


def test_opacus_sample_rate_rejects_off_by_one_denominators(capsys):
    # the loader's nominal batch, 256, where Opacus divides by int(4000 / 16) = 250
    assert check_opacus_sample_rate(1 / 16, 256) is False
    assert "not the loader's nominal one" in capsys.readouterr().out
    assert check_opacus_sample_rate(256 / 4000, 256) is False  # q from the batch size
    assert "from the loader itself" in capsys.readouterr().out
    assert check_opacus_sample_rate(1 / 15, 266) is False  # floor instead of ceil
    assert "✗" in capsys.readouterr().out


def _dp_step(clip=True, divisor="expected", noise_c=True, empty=True, in_place=True, order=1):
    """A DP-SGD step from the library's pieces, right or with one slip."""
    loss_fn = torch.nn.functional.cross_entropy

    def step(model, x, y, *, lr, max_grad_norm, noise_multiplier, expected_batch_size, generator):
        params = dict(model.named_parameters())
        if len(x):
            grads = per_sample_gradients(model, loss_fn, x, y)
            if clip:
                grads = clip_per_sample(grads, max_grad_norm=max_grad_norm)
            summed = {name: g.sum(0) for name, g in grads.items()}
        elif empty:
            summed = {name: torch.zeros_like(p.detach()) for name, p in params.items()}
        else:
            raise ValueError("no examples")
        if order < 0:
            summed = dict(reversed(summed.items()))
        scale = max_grad_norm if noise_c else 1.0
        noisy = add_noise(summed, max_grad_norm=scale, noise_multiplier=noise_multiplier,
                          generator=generator)  # fmt: skip
        size = expected_batch_size if divisor == "expected" else max(len(x), 1)
        if in_place:
            with torch.no_grad():
                for name, p in params.items():
                    p -= lr * noisy[name] / size
        return noisy

    return step


def test_dp_sgd_step_right_answer_matches_the_library(capsys):
    assert check_dp_sgd_step(_dp_step()) is True
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("slip", "words"),
    [
        (dict(clip=False), "not clipped"),
        (dict(divisor="actual"), "actual size"),
        (dict(noise_c=False), "forgot the clipping norm"),
        (dict(empty=False), "can be empty"),
        (dict(in_place=False), "did not change"),
        (dict(order=-1), "Without noise your step matched"),
    ],
)
def test_dp_sgd_step_rejects_the_usual_slips_with_their_hint(slip, words, capsys):
    assert check_dp_sgd_step(_dp_step(**slip)) is False
    out = capsys.readouterr().out
    assert "✗" in out and words in out, out


def test_dp_sgd_step_unanswered_and_malformed(capsys):
    assert check_dp_sgd_step(...) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="my_dp_sgd_step must be a function"):
        check_dp_sgd_step(0.5)
