"""Notebook 02's from-scratch mini-batch SGD: the accuracy it promises, and agreement with train().

The loop below is the one the notebook writes out. Seeded with 0, as in the
notebook: logistic regression (15 epochs, batch 32, lr 0.5) reaches a test
accuracy in [91 %, 97 %] and the 64-32-10 tanh MLP (20 epochs) in [93 %, 99 %]
on the 8x8 digits; measured 93.9 % and 95.8 %.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fl_dp_lab.data import load_digits
from fl_dp_lab.models import MLP, LogisticRegression
from fl_dp_lab.training import evaluate, shuffled_batches, train

SEED = 0


@pytest.fixture(scope="module")
def digits():
    x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in load_digits())
    return x_train.flatten(1), y_train, x_test.flatten(1), y_test


def sgd_from_scratch(model, x, y, *, epochs, batch_size, lr, seed):
    generator = torch.Generator().manual_seed(seed)
    params = list(model.parameters())
    for _ in range(epochs):
        for batch in shuffled_batches(len(x), batch_size, generator):
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, g in zip(params, grads, strict=True):
                    p -= lr * g
    return model


def test_logistic_regression_reaches_its_band_and_matches_train(digits):
    # Prepare
    x_train, y_train, x_test, y_test = digits
    # Execute
    ours = sgd_from_scratch(
        LogisticRegression(64, 10), x_train, y_train, epochs=15, batch_size=32, lr=0.5, seed=SEED
    )
    library = LogisticRegression(64, 10)
    train(
        library,
        x_train,
        y_train,
        epochs=15,
        batch_size=32,
        lr=0.5,
        generator=torch.Generator().manual_seed(SEED),
        progress=False,
    )
    # Assert
    _, accuracy = evaluate(ours, x_test, y_test)
    assert 0.91 <= accuracy <= 0.97
    torch.testing.assert_close(ours.linear.weight, library.linear.weight, atol=1e-5, rtol=0)


def test_mlp_reaches_its_band_above_logistic_regression(digits):
    x_train, y_train, x_test, y_test = digits
    mlp = MLP(64, 32, 10, generator=torch.Generator().manual_seed(SEED))
    sgd_from_scratch(mlp, x_train, y_train, epochs=20, batch_size=32, lr=0.5, seed=SEED)
    _, accuracy = evaluate(mlp, x_test, y_test)
    assert 0.93 <= accuracy <= 0.99


def test_a_wrong_update_sign_does_not_learn(digits):
    # Guards the test itself: gradient ascent must land far outside the band.
    x_train, y_train, x_test, y_test = digits
    model = sgd_from_scratch(
        LogisticRegression(64, 10), x_train, y_train, epochs=2, batch_size=32, lr=-0.5, seed=SEED
    )
    _, accuracy = evaluate(model, x_test, y_test)
    assert accuracy < 0.5


def test_train_refuses_a_bad_batch_size_and_half_an_evaluation_set():
    model, x, y = LogisticRegression(2, 2), torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)
    gen = torch.Generator()
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        train(model, x, y, epochs=1, batch_size=0, lr=0.1, generator=gen)
    with pytest.raises(TypeError, match="batch_size must be an integer, got 2.0"):
        train(model, x, y, epochs=1, batch_size=2.0, lr=0.1, generator=gen)
    with pytest.raises(ValueError, match="x_test and y_test must be both given or both None"):
        train(model, x, y, epochs=1, batch_size=2, lr=0.1, generator=gen, x_test=x)


@pytest.mark.parametrize("seed", [0, 4])  # 0: none of the 300 misclassified; 4: three are
def test_largest_per_example_gradients_belong_to_unsure_examples(digits, seed):
    # Prepare: notebook 02's MLP and its 300 per-example gradients, by a loop
    x_train, y_train, _, _ = digits
    mlp = MLP(64, 32, 10, generator=torch.Generator().manual_seed(seed))
    sgd_from_scratch(mlp, x_train, y_train, epochs=20, batch_size=32, lr=0.5, seed=seed)
    params = list(mlp.parameters())
    # Execute
    norms = []
    for i in range(300):
        loss = nn.functional.cross_entropy(mlp(x_train[i : i + 1]), y_train[i : i + 1])
        norms.append(torch.sqrt(sum(g.pow(2).sum() for g in torch.autograd.grad(loss, params))))
    norms = torch.stack(norms)
    with torch.no_grad():
        p_true = torch.softmax(mlp(x_train[:300]), dim=1)[torch.arange(300), y_train[:300]]
    largest = norms.argsort(descending=True)[:5]
    # Assert: hundreds of times the median, and on examples the model is unsure of
    # (true-class probability < 0.9; measured 0.26-0.80 over seeds 0-7) while the
    # typical example is confident (median > 0.99; measured 0.998)
    assert norms.max() > 100 * norms.median()
    assert p_true[largest].max() < 0.9 and p_true.median() > 0.99


def test_learning_rate_10_has_not_settled_after_5_epochs(digits):
    x_train, y_train, _, _ = digits
    runs = {}
    for lr in (1.0, 10.0):
        runs[lr] = train(LogisticRegression(64, 10), x_train, y_train, epochs=5, batch_size=16,
                         lr=lr, generator=torch.Generator().manual_seed(SEED), progress=False)  # fmt: skip
    wild, fast = runs[10.0].train_loss, runs[1.0].train_loss
    # first epoch several times higher, last epoch still above lr 1 (ratio >= 1.25 over seeds 0-7)
    assert wild[0] > 3 * fast[0] and wild[-1] > fast[-1]
