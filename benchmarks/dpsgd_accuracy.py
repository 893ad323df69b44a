"""Test accuracy of DP-SGD at epsilon about 1, 3 and 8 vs the non-private baseline.

The setting of notebook 06: the 784-128-10 MLP on the 4,000/1,000 MNIST
subset (``fl_dp_lab.data.load_mnist``), Poisson batches of expected size
512 (q = 0.128), 8 epochs (64 steps), C = 1, learning rate 2 (non-private:
fixed batches of 512, learning rate 1), delta = 1e-5. sigma is calibrated
with ``fl_dp_lab.accounting.noise_multiplier_for_epsilon`` (PLD) for each
target epsilon. Seeds 0, 1, 2 seed the model, the batches and the noise.

    python benchmarks/dpsgd_accuracy.py
"""

from __future__ import annotations

import statistics

import torch

from fl_dp_lab.accounting import noise_multiplier_for_epsilon
from fl_dp_lab.data import load_mnist
from fl_dp_lab.dpsgd import DPSGD, train_dp_sgd
from fl_dp_lab.models import MLP
from fl_dp_lab.training import train

TARGETS, SEEDS = (1.0, 3.0, 8.0), (0, 1, 2)
BATCH, EPOCHS, LR, LR_NON_PRIVATE, MAX_GRAD_NORM, DELTA = 512, 8, 2.0, 1.0, 1.0, 1e-5


def main() -> None:
    torch.set_num_threads(1)
    x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in load_mnist())
    q = BATCH / len(x_train)
    steps = EPOCHS * round(1 / q)
    rows = {}
    for seed in SEEDS:
        model = MLP(784, 128, 10, generator=torch.Generator().manual_seed(seed))
        history = train(
            model, x_train, y_train, epochs=EPOCHS, batch_size=BATCH, lr=LR_NON_PRIVATE,
            generator=torch.Generator().manual_seed(seed), x_test=x_test, y_test=y_test,
            progress=False,
        )  # fmt: skip
        rows.setdefault("non-private", []).append(history.test_accuracy[-1])
    for target in TARGETS:
        sigma = noise_multiplier_for_epsilon(
            target_epsilon=target, sample_rate=q, steps=steps, delta=DELTA
        )
        for seed in SEEDS:
            model = MLP(784, 128, 10, generator=torch.Generator().manual_seed(seed))
            history = train_dp_sgd(
                model, x_train, y_train,
                settings=DPSGD(sample_rate=q, noise_multiplier=sigma,
                               max_grad_norm=MAX_GRAD_NORM, lr=LR, epochs=EPOCHS),
                delta=DELTA,
                generator=torch.Generator().manual_seed(seed), x_test=x_test, y_test=y_test,
                progress=False,
            )  # fmt: skip
            rows.setdefault(f"ε = {history.epsilon[-1]:.2f} (σ = {sigma:.2f})", []).append(
                history.test_accuracy[-1]
            )
    print(
        f"# MNIST subset, MLP 784-128-10, q = {q:g}, {steps} steps, δ = {DELTA:g}, seeds {SEEDS}\n"
    )
    print("| setting | " + " | ".join(f"seed {s}" for s in SEEDS) + " | mean ± sd |")
    print("|---|" + "---:|" * (len(SEEDS) + 1))
    for name, accuracies in rows.items():
        cells = " | ".join(f"{100 * a:.1f} %" for a in accuracies)
        mean, sd = 100 * statistics.mean(accuracies), 100 * statistics.stdev(accuracies)
        print(f"| {name} | {cells} | {mean:.1f} ± {sd:.1f} % |")


if __name__ == "__main__":
    main()
