"""Stopping the loop anywhere and continuing from its saved state equals never stopping.

The state goes through ``torch.save`` / ``torch.load(weights_only=True)`` as it does on disk,
and the continued run is a fresh model and optimizer: only the state carries the run over.
Dropout and a warmup/decay schedule are on, so the RNG and scheduler states matter.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from objectives.loop import LoopResult, LoopSettings, RunControl, TrainingInterrupted, train
from objectives.loop_state import LoopState
from objectives.specs import ToyDataConfig
from objectives.toy_transformer import ToyTransformer, loop_data, make_task

MICRO = ToyDataConfig(n_train=160, n_val=64, n_test=64, seq_len=10, label_noise=0.2)
SETTINGS = LoopSettings(
    epochs=6, lr=3e-3, warmup_ratio=0.2, max_grad_norm=1.0, early_stopping_patience=2
)
# Questions to should_stop per epoch: one after each of the 5 training steps (160 / 32), one
# before the validation batch (evaluation batches hold 512). The test evaluation asks once more.
QUESTIONS_PER_EPOCH = 6


def run(control: RunControl | None = None, init_seed: int = 0) -> LoopResult:
    splits = make_task(MICRO, seed=0)
    torch.manual_seed(init_seed)
    model = ToyTransformer(splits.vocab_size, splits.seq_len, splits.num_classes, 32, 2, 2, 0.2)
    return train(model, loop_data(splits, 32, 7), SETTINGS, "cpu", control=control)


def through_disk(state: LoopState) -> LoopState:
    buffer = io.BytesIO()
    torch.save(state.to_dict(), buffer)
    buffer.seek(0)
    return LoopState.from_dict(torch.load(buffer, weights_only=True))


def stop_after(calls: int) -> Callable[[], bool]:
    """``should_stop`` that says yes on its ``calls``-th question."""
    asked = [0]

    def should_stop() -> bool:
        asked[0] += 1
        return asked[0] == calls

    return should_stop


def assert_same_run(a: LoopResult, b: LoopResult) -> None:
    assert [r.epoch for r in a.epochs] == [r.epoch for r in b.epochs]
    for x, y in zip(a.epochs, b.epochs, strict=True):
        assert x.train_loss == y.train_loss and x.val == y.val  # bit-identical
    assert (a.best_epoch, a.best_value, a.stop_reason) == (
        b.best_epoch,
        b.best_value,
        b.stop_reason,
    )
    assert a.test_metrics == b.test_metrics
    assert a.train_samples == b.train_samples


@pytest.fixture(scope="module")
def uninterrupted() -> LoopResult:
    return run()


@pytest.mark.parametrize(
    ("calls", "position"),
    [
        (3, "at epoch 1, step 3"),
        (6, "at epoch 1, step 5"),  # before epoch 1's validation
        (11, "at epoch 2, step 5"),  # after epoch 2's last step
        (15, "at epoch 3, step 3"),
    ],
)
def test_a_run_stopped_mid_epoch_continues_exactly(
    uninterrupted: LoopResult, calls: int, position: str
) -> None:
    saved: list[LoopState] = []
    with pytest.raises(TrainingInterrupted) as stop:
        run(RunControl(should_stop=stop_after(calls), save_state=saved.append))
    state = stop.value.state
    assert saved[-1] is state and state.position == position
    continued = run(RunControl(resume=through_disk(state)), init_seed=99)
    assert_same_run(continued, uninterrupted)


def test_states_saved_after_each_epoch_continue_exactly(uninterrupted: LoopResult) -> None:
    saved: list[LoopState] = []
    result = run(RunControl(save_state=lambda s: saved.append(through_disk(s))))
    assert_same_run(result, uninterrupted)
    # One after every epoch the run survived, except the last one it trained.
    trained = len(uninterrupted.epochs)
    assert [s.epoch for s in saved] == list(range(2, trained + 1))
    assert all(s.step == 0 for s in saved)
    for state in (saved[0], saved[-1]):
        assert_same_run(run(RunControl(resume=state), init_seed=5), uninterrupted)


def test_a_stop_during_the_test_evaluation_keeps_the_best_epoch(
    uninterrupted: LoopResult,
) -> None:
    trained = len(uninterrupted.epochs)
    with pytest.raises(TrainingInterrupted) as stop:
        run(RunControl(should_stop=stop_after(trained * QUESTIONS_PER_EPOCH + 1)))
    state = through_disk(stop.value.state)
    assert len(state.epochs) == trained and state.best_epoch == uninterrupted.best_epoch
    assert state.epoch == trained + 1 or state.stop_reason == "early_stopped"
    assert_same_run(run(RunControl(resume=state), init_seed=3), uninterrupted)


def test_a_state_says_where_it_stands() -> None:
    saved: list[LoopState] = []
    with pytest.raises(TrainingInterrupted) as stop:
        run(RunControl(should_stop=stop_after(9), save_state=saved.append))
    assert saved[0].position == "after epoch 1"
    assert stop.value.state.position == "at epoch 2, step 3"
    assert str(stop.value) == "interrupted at epoch 2, step 3"


def test_a_tiny_bert_stopped_mid_epoch_continues_exactly(tmp_path: Path) -> None:
    from objectives.specs import BuildRequest
    from search.config import config_from_dict
    from search.study import loop_settings
    from tests.objectives.test_bert import bert_study, build_tiny_bert, sentiment_dir

    model_dir = build_tiny_bert(tmp_path / "tiny-bert")
    data = {"dir": str(sentiment_dir(tmp_path / "data", train=96, evaluation=32))}
    config = config_from_dict(
        bert_study(
            tmp_path,
            str(model_dir),
            data,
            fixed={"model": str(model_dir), "epochs": 3, "batch_size": 16, "max_length": 32},
        )
    )
    params = dict(config.fixed)
    settings = loop_settings(params, config)

    def bert_run(control: RunControl | None = None) -> LoopResult:
        request = BuildRequest(params, config.data_config(), 0, 0, "cpu")
        job = config.spec.build(request)
        return train(job.model, job.data, settings, "cpu", control=control)

    uninterrupted = bert_run()
    # 96 / 16 = 6 steps and one validation question per epoch: the 9th is epoch 2, step 2.
    with pytest.raises(TrainingInterrupted) as stop:
        bert_run(RunControl(should_stop=stop_after(9)))
    assert stop.value.state.position == "at epoch 2, step 2"
    assert_same_run(bert_run(RunControl(resume=through_disk(stop.value.state))), uninterrupted)
