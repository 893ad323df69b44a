"""fl_dp_lab.training: batches, evaluation and the plain SGD loop."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

from fl_dp_lab.data import load_digits
from fl_dp_lab.models import LogisticRegression
from fl_dp_lab.training import evaluate, shuffled_batches, train


def test_shuffled_batches_cover_every_example_once_with_fixed_sizes():
    batches = shuffled_batches(103, 10, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [10] * 10 + [3]
    assert torch.equal(torch.cat(batches).sort().values, torch.arange(103))


def test_train_matches_hand_written_sgd_step_by_step():
    # Prepare: two identical models, one trained by `train`, one by a hand-written loop
    x = torch.randn(40, 5, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (40,), generator=torch.Generator().manual_seed(2))
    ours = LogisticRegression(5, 3, generator=torch.Generator().manual_seed(0))
    ref = LogisticRegression(5, 3, generator=torch.Generator().manual_seed(0))
    # Execute
    train(
        ours,
        x,
        y,
        epochs=2,
        batch_size=16,
        lr=0.5,
        generator=torch.Generator().manual_seed(3),
        progress=False,
    )
    gen = torch.Generator().manual_seed(3)
    for _ in range(2):
        for batch in torch.randperm(40, generator=gen).split(16):
            loss = torch.nn.functional.cross_entropy(ref(x[batch]), y[batch])
            grads = torch.autograd.grad(loss, list(ref.parameters()))
            with torch.no_grad():
                for p, g in zip(ref.parameters(), grads):
                    p -= 0.5 * g
    # Assert
    for p, q in zip(ours.parameters(), ref.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_logistic_regression_on_digits_reaches_documented_accuracy():
    # seed 0, 10 epochs, batch 32, lr 0.5: test accuracy is about 95 % on the 8x8 digits
    x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in load_digits())
    model = LogisticRegression(64, 10)
    history = train(
        model,
        x_train,
        y_train,
        epochs=10,
        batch_size=32,
        lr=0.5,
        generator=torch.Generator().manual_seed(0),
        x_test=x_test,
        y_test=y_test,
        progress=False,
    )
    assert history.train_loss[-1] < history.train_loss[0]
    assert 0.92 <= history.test_accuracy[-1] <= 0.99
    assert evaluate(model, x_test, y_test)[1] == history.test_accuracy[-1]


def test_evaluate_matches_a_direct_computation_without_a_warning():
    # float() of a loss that carries a graph warns ("Converting a tensor with
    # requires_grad=True to a scalar"); evaluate builds no graph, so it must not warn
    generator = torch.Generator().manual_seed(0)
    model = LogisticRegression(5, 3)
    torch.nn.init.normal_(model.linear.weight, generator=generator)
    x, y = torch.randn(7, 5, generator=generator), torch.randint(0, 3, (7,), generator=generator)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        loss, accuracy = evaluate(model, x, y)
    with torch.no_grad():
        logits = x @ model.linear.weight.T + model.linear.bias
    assert loss == pytest.approx(float(torch.nn.functional.cross_entropy(logits, y)), abs=1e-6)
    assert accuracy == float((logits.argmax(1) == y).float().mean())
    assert all(p.grad is None for p in model.parameters())


def test_train_rejects_bad_arguments():
    model, x, y = LogisticRegression(2, 2), torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)
    gen = torch.Generator()
    with pytest.raises(ValueError, match="lr must be > 0, got 0.0"):
        train(model, x, y, epochs=1, batch_size=2, lr=0.0, generator=gen)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1, got 0"):
        train(model, x, y, epochs=0, batch_size=2, lr=0.1, generator=gen)
    with pytest.raises(ValueError, match="x and y must be non-empty with the same length"):
        train(model, x, y[:3], epochs=1, batch_size=2, lr=0.1, generator=gen)
    with pytest.raises(TypeError, match="x and y must be torch.Tensors"):
        evaluate(model, x.numpy(), y)  # NumPy data: named, not a torch error deep inside
    with pytest.raises(TypeError, match="x and y must be a float x and integer labels y"):
        evaluate(model, x, y.float())
    with pytest.raises(TypeError, match="x and y must be a float x and integer labels y"):
        train(model, x.long(), y, epochs=1, batch_size=2, lr=0.1, generator=gen)


def test_nan_or_inf_inputs_are_refused_by_row_in_train_evaluate_and_client_updates():
    # Regression: NaN data used to flow through training and turn every weight into NaN.
    from fl_dp_lab.federated import batched_local_updates, local_update

    x, y = torch.zeros(6, 4), torch.tensor([0, 1, 0, 1, 0, 1])
    x[3, 2] = math.inf
    model = nn.Linear(4, 2)
    with pytest.raises(ValueError, match=r"x\[3\]"):
        train(model, x, y, epochs=1, batch_size=2, lr=0.1, generator=torch.Generator())
    with pytest.raises(ValueError, match=r"finite inputs"):
        evaluate(model, x, y)
    with pytest.raises(ValueError, match=r"x\[3\]"):
        local_update(model, x, y, epochs=1, batch_size=2, lr=0.1, generator=torch.Generator())
    with pytest.raises(ValueError, match=r"client 1's x and y"):
        batched_local_updates(model, [x[:3], x], [y[:3], y], epochs=1, batch_size=2, lr=0.1,
                              generators=[torch.Generator(), torch.Generator()])  # fmt: skip


@pytest.mark.parametrize("lr", [-0.1, 0.0, math.nan, math.inf])
def test_batched_local_updates_refuses_a_bad_learning_rate(lr):
    from fl_dp_lab.federated import batched_local_updates

    x, y = torch.zeros(4, 3), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="lr"):
        batched_local_updates(nn.Linear(3, 2), [x], [y], epochs=1, batch_size=2, lr=lr,
                              generators=[torch.Generator()])  # fmt: skip
