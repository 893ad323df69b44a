"""Plain (non-private) training and evaluation loops.

Notebook 02 writes mini-batch SGD out by hand first; this module is the
version every later notebook calls, and the non-private baseline every DP
result is compared against.
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from fl_dp_lab._types import History, LossFn
from fl_dp_lab._validate import check_bool, check_generator, check_int, check_real, fail

__all__ = ["History", "evaluate", "shuffled_batches", "train"]

def shuffled_batches(
    num_examples: int, batch_size: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """One epoch of fixed-size mini-batches: a random permutation cut into chunks.

    This is the usual non-private sampler. DP-SGD's accountant assumes
    Poisson sampling instead (see ``fl_dp_lab.dpsgd.poisson_batches``).

    >>> [b.tolist() for b in shuffled_batches(5, 2, torch.Generator().manual_seed(0))]
    [[4, 0], [1, 3], [2]]
    """
    num_examples = check_int("num_examples", num_examples, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    generator = check_generator("generator", generator)
    return list(torch.randperm(num_examples, generator=generator).split(batch_size))


@torch.no_grad()
def check_data(x: object, y: object, name: str = "x and y") -> None:
    """Refuse data the models cannot take: tensors, finite float inputs, integer labels, one length.

    >>> check_data(torch.zeros(2, 3), [0, 1])
    Traceback (most recent call last):
    ...
    TypeError: x and y must be torch.Tensors (x float, y integer labels), got ('Tensor', 'list')
    """
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        fail(name, "torch.Tensors (x float, y integer labels)",
             (type(x).__name__, type(y).__name__), TypeError)  # fmt: skip
    if not x.is_floating_point() or y.is_floating_point() or y.dtype == torch.bool:
        fail(name, "a float x and integer labels y", (str(x.dtype), str(y.dtype)), TypeError)
    if x.dim() == 0 or len(x) != len(y) or len(x) == 0:
        fail(name, "non-empty with the same length", (tuple(x.shape), tuple(y.shape)))
    bad = ~torch.isfinite(x).reshape(len(x), -1).all(dim=1)
    if bool(bad.any()):  # a NaN row would turn every weight it touches into NaN
        fail(name, "finite inputs (no NaN or inf in x)", f"x[{int(bad.nonzero()[0])}]")


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn = nn.functional.cross_entropy,
) -> tuple[float, float]:
    """Mean loss and accuracy (in [0, 1]) of ``model`` on ``(x, y)``.

    >>> from fl_dp_lab.models import LogisticRegression
    >>> evaluate(LogisticRegression(4, 2), torch.zeros(2, 4), torch.tensor([0, 1]))
    (0.6931471824645996, 0.5)
    """
    check_data(x, y)
    was_training = model.training
    model.eval()
    with torch.no_grad():  # evaluation needs no graph; float() on a graph tensor warns
        logits = model(x)
        loss = loss_fn(logits, y)
    model.train(was_training)
    return loss.item(), (logits.argmax(1) == y).float().mean().item()


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    x_test: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
    weight_decay: float = 0.0,
    loss_fn: LossFn = nn.functional.cross_entropy,
    progress: bool = True,
) -> History:
    """Train ``model`` in place with mini-batch SGD on shuffled fixed-size batches.

    Each step: theta <- theta - lr * (grad mean_loss(batch) + weight_decay * theta).

    Args:
        model: the model, trained in place.
        x, y: training inputs and integer labels.
        epochs: passes over the data, >= 1.
        batch_size: examples a step, >= 1.
        lr: learning rate, > 0.
        generator: shuffles the batches.
        x_test, y_test: evaluated after every epoch when given (both or neither).
        weight_decay: L2 penalty coefficient, >= 0.
        loss_fn: mean loss over a batch.
        progress: show a ``tqdm.auto`` progress bar over epochs.

    Returns:
        A ``History``.
    """
    epochs = check_int("epochs", epochs, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    lr = check_real("lr", lr, low=0.0, low_open=True)
    weight_decay = check_real("weight_decay", weight_decay, low=0.0)
    check_bool("progress", progress)
    check_data(x, y)
    if (x_test is None) != (y_test is None):
        fail("x_test and y_test", "both given or both None", (type(x_test), type(y_test)))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=weight_decay)
    history = History()
    for epoch in tqdm(range(1, epochs + 1), desc="epochs", disable=not progress, leave=False):
        losses = []
        for batch in shuffled_batches(len(x), batch_size, generator):
            optimizer.zero_grad()
            loss = loss_fn(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        history.epoch.append(epoch)
        history.train_loss.append(sum(losses) / len(losses))
        if x_test is not None and y_test is not None:
            test_loss, test_accuracy = evaluate(model, x_test, y_test, loss_fn)
            history.test_loss.append(test_loss)
            history.test_accuracy.append(test_accuracy)
    return history
