"""Speed of one DP-SGD training step: ours vs Opacus vs a non-private step.

Times, interleaved in one run (so machine load hits every method alike),
the milliseconds per SGD step and the ratio to a non-private step for

- non-private: forward, mean loss, backward, ``torch.optim.SGD.step``;
- ours: ``fl_dp_lab.dpsgd.dp_sgd_step`` with ``method`` = loop, vmap, ghost;
- Opacus 1.6: ``DPOptimizer`` steps with ``grad_sample_mode`` = hooks,
  functorch, ghost (ghost clipping), built once and reused as in training;

on the 784-128-10 MLP and the SmallCNN, at batch 64 and 256, with
``max_grad_norm = 1`` and ``noise_multiplier = 1``. A round visits every
method once, in a fresh shuffled order (seeded): one untimed step, then a
timed block of consecutive steps of that method, as in a training loop
(a fast method repeats its step for about 20 ms; otherwise it would be timed
alone in the wake of a 100 ms step and pay for it). A cell is the median over
rounds of the milliseconds per step and of the ratio to the same round's
non-private step, with the quartiles of that ratio (how much it moved from
round to round). Two more rows split our ghost step in two: the same step
with ``noise_multiplier = 0`` (the cost of clipping), and drawing the step's
Gaussian noise alone (``torch.randn`` of one value per parameter), the part
of a DP step that no clipping method can avoid.

    python benchmarks/dpsgd_step.py            # full table (a few minutes)
    python benchmarks/dpsgd_step.py --quick    # smoke run (seconds)
    python benchmarks/dpsgd_step.py --models mlp --batches 256 --threads 1
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
import warnings
from collections.abc import Callable

import torch
from torch import nn

import fl_dp_lab.dpsgd as dpsgd
from fl_dp_lab.models import MLP, SmallCNN
from fl_dp_lab.opacus_bridge import GRAD_SAMPLE_MODES, opacus_dp_optimizer

OURS = ("loop", "vmap", "ghost")
MODELS: dict[str, Callable[[torch.Generator], nn.Module]] = {
    "MLP 784-128-10": lambda g: MLP(784, 128, 10, generator=g),
    "SmallCNN": lambda g: SmallCNN(10, generator=g),
}
LR, MAX_GRAD_NORM, NOISE_MULTIPLIER = 0.1, 1.0, 1.0


def step_functions(
    make_model: Callable[[torch.Generator], nn.Module], x: torch.Tensor, y: torch.Tensor
) -> dict[str, Callable[[], None]]:
    """One zero-argument callable per method, each doing one full training step."""
    loss_fn = nn.functional.cross_entropy
    steps: dict[str, Callable[[], None]] = {}

    model = make_model(torch.Generator().manual_seed(0))
    sgd = torch.optim.SGD(model.parameters(), lr=LR)

    def non_private() -> None:
        sgd.zero_grad()
        loss_fn(model(x), y).backward()
        sgd.step()

    steps["non-private"] = non_private
    # the last row: the same ghost step with sigma = 0 (clipping only, no noise drawn)
    for method, sigma in [(m, NOISE_MULTIPLIER) for m in OURS] + [("ghost", 0.0)]:
        ours_model = make_model(torch.Generator().manual_seed(0))
        noise = torch.Generator().manual_seed(1)

        def ours(
            m: nn.Module = ours_model, g: torch.Generator = noise, k: str = method, s=sigma
        ) -> None:
            dpsgd.dp_sgd_step(
                m,
                loss_fn,
                x,
                y,
                lr=LR,
                max_grad_norm=MAX_GRAD_NORM,
                noise_multiplier=s,
                expected_batch_size=len(x),
                generator=g,
                method=k,
            )

        steps[f"ours {method}" + (", no noise" if sigma == 0 else "")] = ours
    for mode in GRAD_SAMPLE_MODES:
        wrapped, optimizer, criterion = opacus_dp_optimizer(
            make_model(torch.Generator().manual_seed(0)),
            lr=LR,
            max_grad_norm=MAX_GRAD_NORM,
            noise_multiplier=NOISE_MULTIPLIER,
            expected_batch_size=len(x),
            generator=torch.Generator().manual_seed(1),
            grad_sample_mode=mode,
        )

        def opacus(w: nn.Module = wrapped, o=optimizer, c=criterion) -> None:
            o.zero_grad()
            c(w(x), y).backward()
            o.step()

        steps[f"Opacus {mode}"] = opacus
    return steps


def time_interleaved(
    steps: dict[str, Callable[[], None]], rounds: int, seed: int = 0, block_ms: float = 20.0
) -> dict[str, list[float]]:
    """Milliseconds per step of each method in every round, methods in a shuffled order.

    In a round every method runs one untimed step and then a timed block of
    consecutive steps, as in a training loop: a fast method repeats its step
    until the block lasts about ``block_ms`` (fixed per method before the
    rounds), so a 2 ms step is not timed alone in the wake of a 100 ms one
    and one timer tick weighs nothing.
    """
    repeats = {}
    for name, step in steps.items():
        step()  # warm-up: allocations, hook registration, first-call dispatch
        start = time.perf_counter()
        step()
        ms = 1000 * (time.perf_counter() - start)
        repeats[name] = max(1, min(50, round(block_ms / ms)))
    order = random.Random(seed)
    names = list(steps)
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        order.shuffle(names)
        for name in names:
            step, k = steps[name], repeats[name]
            step()  # untimed: the block follows a step of its own kind
            start = time.perf_counter()
            for _ in range(k):
                step()
            samples[name].append(1000 * (time.perf_counter() - start) / k)
    return samples


def summarise(
    samples: dict[str, list[float]], base: str
) -> dict[str, tuple[float, float, float, float]]:
    """{name: (median ms, and the quartiles of ms / the same round's ``base`` ms)}."""
    rows = {}
    for name, values in samples.items():
        ratios = [v / b for v, b in zip(values, samples[base], strict=True)]
        low, mid, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        rows[name] = (statistics.median(values), low, mid, high)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="MLP only, batch 64, 3 rounds")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per cell")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--models", nargs="+", choices=["mlp", "cnn"], default=["mlp", "cnn"])
    parser.add_argument("--batches", nargs="+", type=int, default=[64, 256])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")  # Opacus's "secure RNG off" and hook notices
    names = {"mlp": "MLP 784-128-10", "cnn": "SmallCNN"}
    models = ["MLP 784-128-10"] if args.quick else [names[m] for m in args.models]
    batches = [64] if args.quick else args.batches
    rounds = args.rounds or (3 if args.quick else 25)

    print(
        f"# DP-SGD step time: torch {torch.__version__}, {args.threads} torch threads, "
        f"{platform.processor() or platform.machine()} with {os.cpu_count()} cores, "
        f"median of {rounds} shuffled interleaved rounds; load average at start {_load()}\n"
    )
    print("| model | batch | method | ms / step | x non-private | quartiles of x |")
    print("|---|---:|---|---:|---:|---|")
    for model_name in models:
        for batch in batches:
            generator = torch.Generator().manual_seed(batch)
            x = torch.rand(batch, 28, 28, generator=generator)
            y = torch.randint(0, 10, (batch,), generator=generator)
            steps = step_functions(MODELS[model_name], x, y)
            size = sum(p.numel() for p in MODELS[model_name](torch.Generator()).parameters())
            noise = torch.Generator().manual_seed(2)
            steps["noise draw alone"] = lambda n=size, g=noise: torch.randn(n, generator=g)
            rows = summarise(time_interleaved(steps, rounds), "non-private")
            for name, (ms, low, ratio, high) in rows.items():
                print(
                    f"| {model_name} | {batch} | {name} | {ms:.2f} | {ratio:.2f} "
                    f"| {low:.2f}-{high:.2f} |"
                )
    print(f"\nload average at end {_load()} (other work on the machine inflates every row)")


def _load() -> str:
    """The 1-, 5- and 15-minute load averages, as the kernel reports them."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()
