"""Randomness is passed in: no draw from torch's, NumPy's or Python's global generator.

A notebook is deterministic for its seed only if every draw comes from a generator
built from that seed. This test reads the source of fl_dp_lab and of every notebook's
code cells and refuses calls that draw from (or reseed) a global generator:
``torch.randn(...)`` and friends without ``generator=``, ``np.random.<draw>`` (only
``np.random.default_rng`` and the Generator classes are allowed), in-place fills such
as ``tensor.normal_()`` and ``nn.init.*_`` without ``generator=``, and ``random.<draw>``.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TORCH_DRAWS = {
    "bernoulli", "manual_seed", "multinomial", "normal", "poisson", "rand", "rand_like",
    "randint", "randint_like", "randn", "randn_like", "randperm", "seed",
}  # fmt: skip
NUMPY_ALLOWED = {"BitGenerator", "Generator", "PCG64", "Philox", "SeedSequence", "default_rng"}
TENSOR_DRAWS = {
    "bernoulli_",
    "cauchy_",
    "exponential_",
    "geometric_",
    "log_normal_",
    "normal_",
    "random_",
    "uniform_",
}  # fmt: skip; in-place fills, also torch.nn.init's initialisers (named init.<name>)
INIT_DRAWS = {
    "kaiming_normal_", "kaiming_uniform_", "normal_", "orthogonal_", "sparse_",
    "trunc_normal_", "uniform_", "xavier_normal_", "xavier_uniform_",
}  # fmt: skip
PYTHON_DRAWS = {"choice", "gauss", "randint", "random", "sample", "seed", "shuffle", "uniform"}
# Notebook 11 reseeds NumPy's global generator on purpose: the lesson is that Flower's
# DP wrapper draws its noise from it and replays only when it is reseeded.
ALLOWED = {("11_scaling_out_with_flower.ipynb", "np.random.seed")}


def global_draws(source: str) -> list[tuple[int, str]]:
    """(line, call) for every call in ``source`` that uses a global generator."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        base, name = node.func.value, node.func.attr
        if isinstance(base, ast.Name) and base.id == "torch" and name in TORCH_DRAWS:
            if not any(keyword.arg == "generator" for keyword in node.keywords):
                found.append((node.lineno, f"torch.{name}"))
        elif (
            isinstance(base, ast.Attribute)
            and base.attr == "random"
            and isinstance(base.value, ast.Name)
            and base.value.id in {"np", "numpy"}
            and name not in NUMPY_ALLOWED
        ):
            found.append((node.lineno, f"np.random.{name}"))
        elif name in TENSOR_DRAWS or (
            isinstance(base, ast.Attribute) and base.attr == "init" and name in INIT_DRAWS
        ):
            if not any(keyword.arg == "generator" for keyword in node.keywords):
                found.append((node.lineno, f".{name}"))
        elif isinstance(base, ast.Name) and base.id == "random" and name in PYTHON_DRAWS:
            found.append((node.lineno, f"random.{name}"))
    return found


def notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    lines = []
    for cell in cells:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"]).splitlines()
            lines += [line for line in source if not line.lstrip().startswith(("%", "!"))]
    return "\n".join(lines)


def test_the_scanner_catches_every_kind_of_global_draw():
    source = (
        "torch.randn(3)\ntorch.randn(3, generator=g)\nnp.random.normal(size=3)\n"
        "np.random.default_rng(0)\nrandom.shuffle(x)\nrng.normal(size=3)\n"
        "w.normal_(0, 1)\nw.normal_(0, 1, generator=g)\nnn.init.kaiming_uniform_(w)\n"
    )
    assert global_draws(source) == [
        (1, "torch.randn"), (3, "np.random.normal"), (5, "random.shuffle"),
        (7, ".normal_"), (9, ".kaiming_uniform_"),
    ]  # fmt: skip


@pytest.mark.parametrize("path", sorted((ROOT / "fl_dp_lab").rglob("*.py")), ids=lambda p: p.name)
def test_package_draws_only_from_generators_passed_in(path):
    assert global_draws(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_draw_only_from_their_seeded_generators(path):
    found = [call for _, call in global_draws(notebook_code(path))]
    assert [call for call in found if (path.name, call) not in ALLOWED] == []


def _calls_that_draw(generator):
    """One call of each public function that takes a generator, with ``generator`` passed."""
    import torch

    from fl_dp_lab.federated.adaptive_clipping import adaptive_clip_norm
    from fl_dp_lab.federated.client_updates import local_update
    from fl_dp_lab.federated.secure_aggregation import pairwise_seeds
    from fl_dp_lab.models import LogisticRegression
    from fl_dp_lab.opacus_bridge import opacus_dp_step
    from fl_dp_lab.training import shuffled_batches, train

    x, y = torch.zeros(4, 3), torch.tensor([0, 1, 0, 1])
    return {
        "shuffled_batches": lambda: shuffled_batches(4, 2, generator),
        "train": lambda: train(
            LogisticRegression(3, 2), x, y, epochs=1, batch_size=2, lr=0.1, generator=generator,
            progress=False,
        ),
        "local_update": lambda: local_update(
            LogisticRegression(3, 2), x, y, epochs=1, batch_size=2, lr=0.1, generator=generator
        ),
        "adaptive_clip_norm": lambda: adaptive_clip_norm(
            torch.ones(3), clip_norm=1.0, target_quantile=0.5, clip_lr=0.2,
            clip_count_stddev=1.0, expected_clients=3.0, generator=generator,
        ),
        "pairwise_seeds": lambda: pairwise_seeds(3, generator=generator),
        "opacus_dp_step": lambda: opacus_dp_step(
            LogisticRegression(3, 2), x, y, lr=0.1, max_grad_norm=1.0, noise_multiplier=1.0,
            expected_batch_size=4, generator=generator,
        ),
    }  # fmt: skip


@pytest.mark.parametrize("name", list(_calls_that_draw(None)))
def test_a_missing_generator_is_refused_not_replaced_by_the_global_one(name):
    import torch

    # None would make torch draw from its global generator: refused by name
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        _calls_that_draw(None)[name]()
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        _calls_that_draw(0)[name]()  # a seed is not a generator
    _calls_that_draw(torch.Generator().manual_seed(0))[name]()  # a generator works
