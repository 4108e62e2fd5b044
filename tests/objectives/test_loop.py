"""The shared training loop, on the real toy task at micro size."""

from __future__ import annotations

import math

import pytest
import torch

from objectives.loop import EpochRecord, LoopSettings, evaluate, train
from objectives.specs import ToyDataConfig
from objectives.toy_transformer import ToyTransformer, loop_data, make_task

MICRO = ToyDataConfig(n_train=400, n_val=200, n_test=200, seq_len=12)


def model_and_data(seed: int = 0, hidden: int = 32, batch: int = 32):
    splits = make_task(MICRO, seed=0)
    torch.manual_seed(seed)
    model = ToyTransformer(splits.vocab_size, splits.seq_len, splits.num_classes, hidden, 2, 1, 0.1)
    return model, loop_data(splits, batch, seed)


def test_loop_learns_the_task() -> None:
    model, data = model_and_data()
    seen: list[EpochRecord] = []
    result = train(model, data, LoopSettings(epochs=6, lr=3e-3), "cpu", lambda r, _: seen.append(r))
    assert [r.epoch for r in result.epochs] == [1, 2, 3, 4, 5, 6]
    assert seen == result.epochs
    first, last = result.epochs[0], result.epochs[-1]
    assert last.train_loss < 0.6 * first.train_loss, "training loss falls"
    assert last.metric("val_accuracy") > 0.5, "well above chance (0.1)"
    assert result.test_metrics is not None and result.test_metrics["test_accuracy"] > 0.5
    assert all(r.seconds > 0 for r in result.epochs)


def test_test_split_is_evaluated_on_the_best_epoch_weights() -> None:
    model, data = model_and_data()
    # Maximising val_loss makes epoch 1 the best: the test must use epoch 1's weights.
    result = train(model, data, LoopSettings(epochs=4, lr=3e-3, maximize=True), "cpu")
    assert result.best_epoch == 1
    assert result.best_value == result.epochs[0].val_loss
    assert result.best_state is not None
    fresh, _ = model_and_data()
    fresh.load_state_dict(result.best_state)
    again = evaluate(fresh, data.test(), "cpu")
    assert result.test_metrics == {"test_loss": again["loss"], "test_accuracy": again["accuracy"]}
    assert evaluate(fresh, data.validation(), "cpu")["loss"] == pytest.approx(
        result.epochs[0].val_loss
    )


def test_early_stopping_ends_after_patience_epochs_without_improvement() -> None:
    model, data = model_and_data()
    # Under maximize=True on val_loss, a learning model never beats epoch 1 again.
    result = train(
        model,
        data,
        LoopSettings(epochs=10, lr=3e-3, maximize=True, early_stopping_patience=2),
        "cpu",
    )
    assert result.stop_reason == "early_stopped"
    assert len(result.epochs) == 3 and result.best_epoch == 1
    assert result.test_metrics is not None


def test_non_finite_loss_stops_as_diverged() -> None:
    model, data = model_and_data()
    with torch.no_grad():
        model.head.bias.fill_(math.inf)
    result = train(model, data, LoopSettings(epochs=3, lr=1e-3), "cpu")
    assert result.stop_reason == "diverged"
    assert result.epochs == [] and result.test_metrics is None


def test_same_seed_gives_the_same_metrics() -> None:
    runs = []
    for _ in range(2):
        model, data = model_and_data(seed=3)
        runs.append(train(model, data, LoopSettings(epochs=2, lr=3e-3), "cpu"))
    strip = [
        [(r.train_loss, r.val_loss, r.metric("val_accuracy")) for r in run.epochs] for run in runs
    ]
    assert strip[0] == strip[1]
    assert runs[0].test_metrics == runs[1].test_metrics
    model, data = model_and_data(seed=4)
    other = train(model, data, LoopSettings(epochs=2, lr=3e-3), "cpu")
    assert [(r.train_loss, r.val_loss) for r in other.epochs] != [s[:2] for s in strip[0]]


def test_warmup_schedule_and_gradient_clipping_run() -> None:
    model, data = model_and_data()
    settings = LoopSettings(
        epochs=2, lr=3e-3, warmup_ratio=0.5, max_grad_norm=0.5, weight_decay=0.01
    )
    result = train(model, data, settings, "cpu")
    assert len(result.epochs) == 2 and result.stop_reason is None


def test_weight_decay_spares_biases_and_norms() -> None:
    from objectives.loop import _make_optimizer

    model, _ = model_and_data()
    optimizer = _make_optimizer(model, LoopSettings(epochs=1, lr=1e-3, weight_decay=0.1))
    decayed, spared = optimizer.param_groups
    assert decayed["weight_decay"] == 0.1 and spared["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decayed["params"])
    spared_ids = {id(p) for p in spared["params"]}
    assert id(model.norm.weight) in spared_ids and id(model.head.bias) in spared_ids


def test_on_step_reports_every_step_with_the_samples_trained() -> None:
    from objectives.loop import RunControl

    model, data = model_and_data(batch=64)  # 400 samples: 6 full batches and one of 16
    steps: list[tuple[int, int, int]] = []
    control = RunControl(on_step=lambda e, s, n: steps.append((e, s, n)))
    train(model, data, LoopSettings(epochs=2, lr=1e-3), "cpu", control=control)
    assert [(e, s) for e, s, _ in steps] == [(e, s) for e in (1, 2) for s in range(1, 8)]
    assert [n for _, _, n in steps][:7] == [64, 128, 192, 256, 320, 384, 400]
    assert steps[-1][2] == 800


@pytest.mark.slow
def test_compiled_forward_trains_to_the_same_metrics() -> None:
    """``compile: true`` runs the forward pass through torch.compile; the weights stay shared."""
    results = []
    # Splits that are whole batches (training 32, evaluation 64): each shape compiles once.
    splits = make_task(ToyDataConfig(n_train=384, n_val=128, n_test=128, seq_len=12), seed=0)
    for compiled in (False, True):
        torch.manual_seed(0)  # no dropout: compiled kernels draw dropout masks differently
        model = ToyTransformer(splits.vocab_size, splits.seq_len, splits.num_classes, 32, 2, 1, 0.0)
        data = loop_data(splits, 32, 0)
        settings = LoopSettings(epochs=2, lr=3e-3, compile=compiled)
        results.append(train(model, data, settings, "cpu"))
        assert not any(k.startswith("_orig_mod") for k in model.state_dict())
    plain, compiled_run = results
    for a, b in zip(plain.epochs, compiled_run.epochs, strict=True):
        assert math.isclose(a.val_loss, b.val_loss, rel_tol=1e-3), (a, b)
    assert compiled_run.best_state is not None
