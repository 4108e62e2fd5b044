"""Figure: accuracy and size together -- pruning a multi-objective study keeps its front.

``study_configs/toy_transformer_pareto.yaml`` (the toy's hard regime, ``[val_accuracy,
num_params]``, TPE, a size budget of 100k parameters) run two ways with the same seeds, side by
side in one run: no pruner and no early stopping; the config's own median rule on the
validation-accuracy curve (with the Pareto-front exception of ``search.pruning``) plus
early stopping. Per seed: the hypervolume of the front (validation accuracy from 0 up, parameters
from the budget down, normalised to [0, 1] x [0, 1]) and the epochs trained.
Targets: hypervolume with pruning >= 90 % of without (ratio of medians) while training <= 60 % of
its epochs; each infeasible proposal (outside the budget) costs under 1 s and trains nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks.harness import Figure, Settings, median, ratio
from benchmarks.studies import StudyOutcome, StudySpec, label_prefix, quick_startup

CONFIG = "study_configs/toy_transformer_pareto.yaml"
BUDGET = 100_000.0  # the config's constraints.num_params.max: the reference point's size
VARIANTS: dict[str, tuple[str, ...]] = {
    "none": ("pruner.name=none", "pruner.args={}", "fixed.early_stopping_patience=null"),
    "default": (),
}
HYPERVOLUME_TARGET = 0.90
EPOCH_SHARE_TARGET = 0.60
INFEASIBLE_SECONDS_GOAL = 1.0


def sizes(settings: Settings) -> dict[str, int]:
    if settings.mode == "smoke":
        return {"n_trials": 4, "epochs": 3, "seeds": 1}
    if settings.quick:
        return {"n_trials": 8, "epochs": 10, "seeds": 2}
    return {"n_trials": 24, "epochs": 30, "seeds": 3}


def specs(settings: Settings) -> list[StudySpec]:
    size = sizes(settings)
    startup = quick_startup(settings)
    # The smoke run checks the plumbing only: the small data of the unit tests.
    if settings.mode == "smoke":
        startup += ("data.n_val=100", "data.n_test=100", "data.seq_len=16")
    return [
        StudySpec(
            config=CONFIG,
            overrides=(
                f"study.n_trials={size['n_trials']}",
                f"fixed.epochs={size['epochs']}",
                f"study.seed={seed}",
                *startup,
                *overrides,
            ),
            label=f"{label_prefix(settings)}pareto-{variant}-seed{seed}",
        )
        for variant, overrides in VARIANTS.items()
        for seed in range(size["seeds"])
    ]


def hypervolume(points: Sequence[tuple[float, float]], budget: float = BUDGET) -> float:
    """Area dominated by ``(accuracy, num_params)`` points, accuracy up from 0, size down from
    ``budget``; both axes scaled to [0, 1], so a perfect tiny model would score 1."""
    area = 0.0
    best_accuracy = 0.0
    # Sweep from the smallest model up: each point adds the accuracy it gains over every
    # smaller one, over the size range it leaves to the budget.
    for accuracy, size in sorted(points, key=lambda p: (p[1], -p[0])):
        if size >= budget or accuracy <= best_accuracy:
            continue
        area += (accuracy - best_accuracy) * (1.0 - size / budget)
        best_accuracy = accuracy
    return area


def _front_points(outcome: StudyOutcome) -> list[tuple[float, float]]:
    return [
        (t.values[0], t.values[1])
        for t in outcome.trials
        if t.state == "COMPLETE" and t.values is not None and len(t.values) == 2
    ]


def _infeasible(outcome: StudyOutcome) -> list[float]:
    return [
        t.seconds
        for t in outcome.trials
        if (t.reason or "").startswith("infeasible:") and t.seconds is not None
    ]


def report(settings: Settings, outcomes: dict[str, StudyOutcome]) -> Figure:
    size = sizes(settings)
    figure = Figure(
        key="pareto",
        title="Several objectives: pruning keeps the accuracy-vs-size front",
        command=" ; ".join(s.command() for s in specs(settings) if s.label.endswith("seed0")),
        settings={**size, "config": CONFIG, "budget_num_params": BUDGET},
        target=(
            f"hypervolume with pruning >= {HYPERVOLUME_TARGET:.0%} of without (ratio of "
            f"medians) while training <= {EPOCH_SHARE_TARGET:.0%} of its epochs; infeasible "
            f"proposals < {INFEASIBLE_SECONDS_GOAL:g} s each, 0 epochs"
        ),
    )
    runs = {
        variant: [outcomes[s.label] for s in specs(settings) if f"-{variant}-" in s.label]
        for variant in VARIANTS
    }
    volumes = {v: [hypervolume(_front_points(o)) for o in runs[v]] for v in VARIANTS}
    epochs = {v: [float(o.total_epochs) for o in runs[v]] for v in VARIANTS}
    infeasible = [s for v in VARIANTS for o in runs[v] for s in _infeasible(o)]
    infeasible_epochs = sum(
        len(t.val_accuracy)
        for v in VARIANTS
        for o in runs[v]
        for t in o.trials
        if (t.reason or "").startswith("infeasible:")
    )
    hv_ratio = ratio(median(volumes["default"]), median(volumes["none"]))
    epoch_share = ratio(median(epochs["default"]), median(epochs["none"]))
    for variant in VARIANTS:
        figure.table.append(
            {
                "pruner": variant,
                "hypervolume per seed": ", ".join(f"{v:.3f}" for v in volumes[variant]),
                "median hypervolume": median(volumes[variant]),
                "epochs per seed": ", ".join(f"{e:.0f}" for e in epochs[variant]),
                "median epochs": median(epochs[variant]),
                "front sizes": ", ".join(
                    str(len(_pareto(_front_points(o)))) for o in runs[variant]
                ),
                "infeasible proposals": sum(len(_infeasible(o)) for o in runs[variant]),
            }
        )
    worst = max(infeasible) if infeasible else None
    figure.numbers = {
        "hypervolume": volumes,
        "epochs": epochs,
        "hypervolume_ratio": hv_ratio,
        "epoch_share": epoch_share,
        "infeasible_count": len(infeasible),
        "infeasible_seconds_median": median(infeasible) if infeasible else None,
        "infeasible_seconds_max": worst,
        "infeasible_epochs": infeasible_epochs,
    }
    figure.ratio = hv_ratio
    figure.ratio_label = "hypervolume with pruning / without (ratio of medians)"
    infeasible_ok = infeasible_epochs == 0 and (worst is None or worst < INFEASIBLE_SECONDS_GOAL)
    figure.met = (
        hv_ratio >= HYPERVOLUME_TARGET and epoch_share <= EPOCH_SHARE_TARGET and infeasible_ok
    )
    figure.notes.append(
        f"epochs with pruning / without: {epoch_share:.2f} (medians); hypervolume ratio "
        f"{hv_ratio:.3f}"
    )
    if infeasible:
        figure.notes.append(
            f"{len(infeasible)} infeasible proposals (num_params over {BUDGET:.0f}): median "
            f"{median(infeasible):.3f} s, at most {worst:.3f} s each from proposal to recorded, "
            f"{infeasible_epochs} epochs trained"
        )
    return figure


def _pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [p for p in points if not any(q != p and q[0] >= p[0] and q[1] <= p[1] for q in points)]
