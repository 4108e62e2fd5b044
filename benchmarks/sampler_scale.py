"""Figure: what one ``ask`` costs as a study grows (the sampler's share of a 1,000-GPU study).

Beside it, what a pruning decision reads when many trials run at once: Optuna's storage cache
keeps finished trials but reads every unfinished trial again on each ``get_trials`` (a trial
may have changed), so with R trials RUNNING each ``should_prune`` reads R trials. Measured
with R running trials of 10 epochs' records each, read directly from SQLite and through
``hpsearch storage-proxy`` (served in this process).

The default study's sampler (multivariate TPE) and space, with N finished trials already stored
(N = 1,000 and 10,000; smaller in --quick), then a run of ask -> tell cycles; the random sampler
beside it shows what reading the study costs without any modelling. Each is measured in memory
(the sampler alone) and on the project's SQLite storage (the sampler plus reading the trials
through Optuna's cache, which fetches only trials it has not seen finished).
"""

from __future__ import annotations

import random
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness import Figure, Settings, ratio

SAMPLERS = ("tpe multivariate", "random")
EPOCHS_PER_RUNNING_TRIAL = 10
STORAGES = ("in-memory", "project sqlite")


def sizes(settings: Settings) -> dict[str, Any]:
    if settings.mode == "smoke":
        return {"trials": [50, 100], "asks": 3, "running": 20}
    if settings.quick:
        return {"trials": [300, 1000], "asks": 10, "running": 200}
    return {"trials": [1000, 10000], "asks": 20, "running": 1000}


def _distributions() -> dict[str, Any]:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    # The default study's search space (study_configs/toy_transformer.yaml).
    return {
        "lr": FloatDistribution(4e-4, 1e-1, log=True),
        "batch_size": CategoricalDistribution([16, 20, 32, 64]),
        "hidden_dim": CategoricalDistribution([16, 32, 64]),
        "num_heads": CategoricalDistribution([1, 2, 4]),
        "num_layers": IntDistribution(1, 3),
        "max_grad_norm": FloatDistribution(0.5, 5.0),
    }


def _sampler(name: str) -> Any:
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=0, n_startup_trials=10, multivariate=True)


def _filled_study(storage_name: str, trials: int, folder: Path) -> Any:
    """A study holding ``trials`` finished trials of the default space, random values."""
    import optuna

    from storage.connect import open_storage
    from storage.urls import parse_storage_url

    storage: Any = optuna.storages.InMemoryStorage()
    if storage_name == "project sqlite":
        path = folder / f"filled-{trials}.db"
        storage = open_storage(parse_storage_url(f"sqlite:///{path}"), create=True)
    study = optuna.create_study(storage=storage, study_name="filled")
    distributions = _distributions()
    rng = random.Random(trials)
    made = [
        optuna.trial.create_trial(
            params={
                name: (
                    rng.choice(list(d.choices))
                    if isinstance(d, optuna.distributions.CategoricalDistribution)
                    else rng.randint(d.low, d.high)
                    if isinstance(d, optuna.distributions.IntDistribution)
                    else rng.uniform(d.low, d.high)
                )
                for name, d in distributions.items()
            },
            distributions=distributions,
            value=rng.random(),
        )
        for _ in range(trials)
    ]
    study.add_trials(made)
    return study


def _ask_ms(study: Any, asks: int) -> list[float]:
    distributions = _distributions()
    times = []
    for _ in range(asks):
        started = time.perf_counter()
        trial = study.ask(distributions)
        times.append((time.perf_counter() - started) * 1000)
        study.tell(trial, random.random())
    return times


def run(settings: Settings, log: Callable[[str], None] = print) -> Figure:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    size = sizes(settings)
    folder = Path(settings.workdir) / "sampler-scale"
    folder.mkdir(parents=True, exist_ok=True)
    figure = Figure(
        key="sampler_scale",
        title="Ask latency as the study grows (default space, multivariate TPE vs random)",
        command="python -m benchmarks --only sampler_scale",
        settings={**size, "space": "the default study's 6 parameters"},
        target="none set (informational): the sampler's cost for docs/scaling.md",
    )
    medians: dict[str, float] = {}
    for trials in size["trials"]:
        for storage_name in STORAGES:
            started = time.perf_counter()
            filled = _filled_study(storage_name, trials, folder)
            fill_s = time.perf_counter() - started
            for sampler in SAMPLERS:
                study = optuna.load_study(
                    study_name="filled", storage=filled._storage, sampler=_sampler(sampler)
                )
                times = _ask_ms(study, size["asks"])
                key = f"{sampler}, {storage_name}, {trials}"
                medians[key] = statistics.median(times)
                figure.table.append(
                    {
                        "trials stored": trials,
                        "storage": storage_name,
                        "sampler": sampler,
                        "ask p50 ms": statistics.median(times),
                        "ask max ms": max(times),
                        "asks": len(times),
                        "fill s": fill_s,
                    }
                )
                log(f"  sampler_scale {key}: ask p50 {medians[key]:.1f} ms (fill {fill_s:.0f} s)")
    figure.numbers["running_read_ms"] = _running_reads(size["running"], folder, figure, log)
    small, large = size["trials"]
    tpe = "tpe multivariate, in-memory"
    figure.ratio = ratio(medians[f"{tpe}, {large}"], medians[f"{tpe}, {small}"])
    figure.ratio_label = f"TPE ask latency at {large} trials / at {small} (in memory)"
    figure.numbers["ask_p50_ms"] = medians
    return figure


def _running_study(running: int, path: Path) -> None:
    """A SQLite study with ``running`` RUNNING trials, each with 10 epochs of records."""
    import optuna
    from optuna.trial import FrozenTrial, TrialState

    from storage.connect import open_storage
    from storage.urls import parse_storage_url

    storage = open_storage(parse_storage_url(f"sqlite:///{path}"), create=True)
    study = optuna.create_study(storage=storage, study_name="running")
    distributions = _distributions()
    rng = random.Random(0)
    study_id = storage.get_study_id_from_name("running")
    for _ in range(running):
        losses = [rng.random() for _ in range(EPOCHS_PER_RUNNING_TRIAL)]
        records = [
            {"epoch": e + 1, "train_loss": x, "val_loss": x, "val_accuracy": 1 - x, "seconds": 1.0}
            for e, x in enumerate(losses)
        ]
        template = FrozenTrial(
            number=0,
            state=TrialState.RUNNING,
            value=None,
            datetime_start=None,
            datetime_complete=None,
            params={"lr": 1e-3, "batch_size": 32, "hidden_dim": 32},
            distributions={k: distributions[k] for k in ("lr", "batch_size", "hidden_dim")},
            user_attrs={"epochs": records, "device": "cuda:0", "worker": 0},
            system_attrs={},
            intermediate_values=dict(enumerate(losses, start=1)),
            trial_id=0,
        )
        storage.create_new_trial(study_id, template_trial=template)
    del study


def _read_ms(storage: object, reads: int) -> list[float]:
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name="running", storage=storage)  # type: ignore[arg-type]
    study.get_trials(deepcopy=False)  # the first read fills the cache
    times = []
    for _ in range(reads):
        started = time.perf_counter()
        study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        times.append((time.perf_counter() - started) * 1000)
    return times


def _running_reads(
    running: int, folder: Path, figure: Figure, log: Callable[[str], None]
) -> dict[str, float]:
    """ms per ``get_trials`` with ``running`` trials RUNNING: direct SQLite, and the proxy."""
    import optuna

    from storage.connect import open_storage
    from storage.proxy import start_proxy
    from storage.urls import parse_storage_url

    path = folder / f"running-{running}.db"
    _running_study(running, path)
    url = parse_storage_url(f"sqlite:///{path}")
    direct = _read_ms(optuna.storages.get_storage(open_storage(url, create=False)), 5)
    server, proxy_url = start_proxy(url, "127.0.0.1", 0)
    try:
        client = open_storage(parse_storage_url(proxy_url), create=False)
        proxied = _read_ms(client, 5)
    finally:
        server.stop(grace=None)
    result = {
        "direct sqlite": statistics.median(direct),
        "through the proxy": statistics.median(proxied),
    }
    for how, ms in result.items():
        figure.table.append(
            {
                "trials stored": running,
                "storage": f"{how}, all RUNNING",
                "sampler": "(a pruning read: get_trials)",
                "ask p50 ms": ms,
                "ask max ms": max(direct if how == "direct sqlite" else proxied),
                "asks": 5,
                "fill s": None,
            }
        )
        log(f"  sampler_scale get_trials with {running} running trials, {how}: {ms:.0f} ms")
    figure.notes.append(
        f"the rows 'all RUNNING': one get_trials (what a pruner's decision reads) on a study "
        f"with {running} RUNNING trials of {EPOCHS_PER_RUNNING_TRIAL} epochs' records each; "
        "Optuna's cache reads every unfinished trial again on each call, so this grows with the "
        "number of trials running at once (the 'ask' columns hold the read's ms)"
    )
    return result
