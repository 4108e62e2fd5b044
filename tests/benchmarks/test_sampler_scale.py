"""The sampler_scale figure at smoke size: real studies filled, real asks timed."""

from __future__ import annotations

from pathlib import Path

from benchmarks import sampler_scale
from benchmarks.harness import Settings


def test_sampler_scale_measures_every_sampler_storage_and_size(tmp_path: Path) -> None:
    settings = Settings(mode="smoke", threads=1, jobs=1, data_dir=None, workdir=str(tmp_path))
    figure = sampler_scale.run(settings, log=lambda _: None)
    asks = [r for r in figure.table if not r["sampler"].startswith("(")]
    rows = {(r["trials stored"], r["storage"], r["sampler"]): r for r in asks}
    assert set(rows) == {
        (n, storage, sampler)
        for n in (50, 100)
        for storage in sampler_scale.STORAGES
        for sampler in sampler_scale.SAMPLERS
    }
    assert all(r["asks"] == 3 and r["ask p50 ms"] > 0 for r in rows.values())
    # The filled SQLite study really holds the trials (plus the asks of both samplers).
    import optuna

    stored = optuna.load_study(
        study_name="filled", storage=f"sqlite:///{tmp_path / 'sampler-scale' / 'filled-100.db'}"
    )
    assert len(stored.trials) == 100 + 2 * 3
    assert figure.ratio is not None and figure.ratio > 0
    # The pruning read with 20 RUNNING trials, directly and through a real proxy.
    reads = figure.numbers["running_read_ms"]
    assert set(reads) == {"direct sqlite", "through the proxy"}
    assert all(ms > 0 for ms in reads.values())
