"""Speed of one DP-SGD training step: ours vs Opacus vs a non-private step.

Times, interleaved in one run (so machine load hits every method alike),
the milliseconds per SGD step and the ratio to a non-private step for

- non-private: forward, mean loss, backward, ``torch.optim.SGD.step``;
- ours: ``fl_dp_lab.dpsgd.dp_sgd_step`` with ``method`` = loop, vmap, ghost;
- Opacus 1.6: ``DPOptimizer`` steps with ``grad_sample_mode`` = hooks,
  functorch, ghost (ghost clipping), built once and reused as in training;

on the 784-128-10 MLP and the SmallCNN, at batch 64 and 256, with
``max_grad_norm = 1`` and ``noise_multiplier = 1``. Each cell is the median
over rounds; a round runs every method once (after one warm-up step each).

    python benchmarks/dpsgd_step.py            # full table (a few minutes)
    python benchmarks/dpsgd_step.py --quick    # smoke run (seconds)
    python benchmarks/dpsgd_step.py --models mlp --batches 256 --threads 1
"""

from __future__ import annotations

import argparse
import os
import platform
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
    for method in OURS:
        ours_model = make_model(torch.Generator().manual_seed(0))
        noise = torch.Generator().manual_seed(1)

        def ours(m: nn.Module = ours_model, g: torch.Generator = noise, k: str = method) -> None:
            dpsgd.dp_sgd_step(
                m,
                loss_fn,
                x,
                y,
                lr=LR,
                max_grad_norm=MAX_GRAD_NORM,
                noise_multiplier=NOISE_MULTIPLIER,
                expected_batch_size=len(x),
                generator=g,
                method=k,
            )

        steps[f"ours {method}"] = ours
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


def time_interleaved(steps: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    """Median milliseconds per call of each step, methods interleaved round by round."""
    for step in steps.values():
        step()  # warm-up: allocations, hook registration, first-call dispatch
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            samples[name].append(1000 * (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in samples.items()}


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
    rounds = args.rounds or (3 if args.quick else 15)

    print(
        f"# DP-SGD step time: torch {torch.__version__}, {args.threads} torch threads, "
        f"{platform.processor() or platform.machine()} with {os.cpu_count()} cores, "
        f"median of {rounds} interleaved rounds; load average at start {_load()}\n"
    )
    print("| model | batch | method | ms / step | x non-private |")
    print("|---|---:|---|---:|---:|")
    for model_name in models:
        for batch in batches:
            generator = torch.Generator().manual_seed(batch)
            x = torch.rand(batch, 28, 28, generator=generator)
            y = torch.randint(0, 10, (batch,), generator=generator)
            ms = time_interleaved(step_functions(MODELS[model_name], x, y), rounds)
            base = ms["non-private"]
            for name, value in ms.items():
                print(f"| {model_name} | {batch} | {name} | {value:.2f} | {value / base:.1f} |")
    print(f"\nload average at end {_load()} (other work on the machine inflates every row)")


def _load() -> str:
    """The 1-, 5- and 15-minute load averages, as the kernel reports them."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()
