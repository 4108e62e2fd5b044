"""A trial's resume state file, in process: what a retry continues from, and what it refuses.

The end-to-end runs (a real SIGTERM, a real rerun) are ``tests/test_resume.py``; here each way a
state can be unusable is checked once, with the reason the retry's record will carry.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from objectives.loop_state import LoopState, capture_rng
from search.trial import Chain, TrialResume

FINGERPRINT = "a" * 64


def loop_state() -> LoopState:
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():  # the same weights every time
        model.weight.copy_(torch.arange(6.0).reshape(2, 3) / 10)
        model.bias.fill_(0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    return LoopState(
        epoch=2,
        step=5,
        stop_reason=None,
        loss_sum=1.25,
        samples=160,
        epoch_seconds=0.5,
        epochs=[{"epoch": 1, "train_loss": 0.7, "val_loss": 0.6}],
        best_epoch=1,
        best_value=0.6,
        epochs_without_improvement=0,
        train_samples=480,
        train_seconds=1.5,
        model=model.state_dict(),
        optimizer=optimizer.state_dict(),
        scheduler=None,
        best_state={k: v.clone() for k, v in model.state_dict().items()},
        rng=capture_rng(),
    )


def saved(folder: Path) -> Path:
    """Trial 0 saves its state and dies; the file its retries look for."""
    path = folder / "trial-0.pt"
    first = TrialResume(path, FINGERPRINT, Chain(first=0, previous=None), trial_number=0)
    first.save(loop_state())
    first.flush()
    assert first.problem is None and path.exists()
    return path


def retry(path: Path, fingerprint: str = FINGERPRINT) -> TrialResume:
    return TrialResume(path, fingerprint, Chain(first=0, previous=0), trial_number=1)


def test_a_retry_continues_from_the_saved_state_and_a_first_attempt_reads_nothing(
    tmp_path: Path,
) -> None:
    path = saved(tmp_path)
    state, why = retry(path).load()
    assert why is None and state is not None
    expected = loop_state()
    assert (state.epoch, state.step, state.best_epoch, state.epochs) == (
        expected.epoch,
        expected.step,
        expected.best_epoch,
        expected.epochs,
    )
    for name, tensor in state.model.items():
        assert torch.equal(tensor, expected.model[name])
    first = TrialResume(path, FINGERPRINT, Chain(first=0, previous=None), trial_number=0)
    assert first.load() == (None, None)
    retry(path).discard()
    assert not path.exists()


def _meta(change: dict[str, object]) -> Callable[[Path], None]:
    def spoil(path: Path) -> None:
        content = torch.load(path, weights_only=True)
        content["hpsearch"].update(change)
        torch.save(content, path)

    return spoil


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


def _drop_loop_field(path: Path) -> None:
    content = torch.load(path, weights_only=True)
    del content["loop"]["optimizer"]
    torch.save(content, path)


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (_truncate, "resume state trial-0.pt unreadable (RuntimeError)"),
        (_meta({"torch": "1"}), "resume state from torch 1.x"),
        (_meta({"hpsearch": "9"}), "resume state from hpsearch 9.x"),
        (_meta({"format": 99}), "resume state of another format"),
        (_meta({"fingerprint": "0" * 64}), "resume state from a different config or parameter set"),
        (_drop_loop_field, "resume state trial-0.pt unusable (TypeError"),
        (lambda path: path.unlink(), "no resume state of trial 0"),
    ],
    ids=[
        "truncated",
        "old torch",
        "other hpsearch",
        "other format",
        "other parameters",
        "incomplete",
        "missing",
    ],
)
def test_an_unusable_state_is_refused_with_its_reason(
    tmp_path: Path, spoil: Callable[[Path], None], reason: str
) -> None:
    path = saved(tmp_path)
    spoil(path)
    state, why = retry(path).load()
    assert state is None
    assert why is not None and why.startswith(reason), why


def test_a_retry_of_other_parameters_is_refused_even_with_an_intact_file(tmp_path: Path) -> None:
    path = saved(tmp_path)
    state, why = retry(path, fingerprint="b" * 64).load()
    assert state is None and why == "resume state from a different config or parameter set"
