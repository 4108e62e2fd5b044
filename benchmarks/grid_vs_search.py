"""Figure 2: search beats the hand grid.

The hand-tuning report's ten one-knob-at-a-time toy runs (full epochs, no pruning) against the
tuned study (the default config's TPE, pruner and early stopping) on the report's own task (the
default study runs a harder one, where 0.99 is out of reach), with the same seeds. For each: epochs
spent until a trial first reaches validation accuracy >= 0.99 (selection on validation; that
trial's test accuracy beside it) and the best validation accuracy reached.
Target: the tuned study gets there with at most a quarter of the epochs the grid spent in total.
"""

from __future__ import annotations

from benchmarks import pruning
from benchmarks.harness import Figure, Settings, median, ratio
from benchmarks.studies import ACCURACY_GOAL, StudyOutcome, StudySpec, label_prefix

GRID_CONFIG = "study_configs/toy_transformer_report_grid.yaml"
TARGET_FACTOR = 4.0


def seeds(settings: Settings) -> int:
    # The grid's total is fixed (330 epochs: ten runs of 30 or 50); one seed, the report's own
    # setting, keeps the full run's budget. The tuned side uses as many seeds as figure 1.
    return 1


def grid_specs(settings: Settings) -> list[StudySpec]:
    # Smoke runs only check the plumbing: the first two report runs on a small training set.
    smoke = ("study.n_trials=2", "data.n_train=100") if settings.mode == "smoke" else ()
    return [
        StudySpec(
            config=GRID_CONFIG,
            overrides=(f"study.seed={seed}", *smoke),
            label=f"{label_prefix(settings)}report-grid-seed{seed}",
        )
        for seed in range(seeds(settings))
    ]


# The report's task, as toy_transformer_report_grid.yaml declares it.
REPORT_TASK = "data={n_train: 1500, n_val: 500, n_test: 1000, seq_len: 20, label_noise: 0.0}"


def tuned_specs(settings: Settings) -> list[StudySpec]:
    size = pruning.sizes(settings)
    return [
        StudySpec(
            config=pruning.CONFIG,
            overrides=(
                f"study.n_trials={size['n_trials']}",
                f"fixed.epochs={size['epochs']}",
                f"study.seed={seed}",
                REPORT_TASK,
            ),
            label=f"{label_prefix(settings)}report-task-tuned-seed{seed}",
        )
        for seed in range(min(3, size["seeds"]))
    ]


def specs(settings: Settings) -> list[StudySpec]:
    return grid_specs(settings) + tuned_specs(settings)


def _side(outcomes: list[StudyOutcome]) -> dict[str, float | int | None]:
    solved = [o.first_solved() for o in outcomes]
    reached = [s for s in solved if s is not None]
    return {
        "total_epochs": median([o.total_epochs for o in outcomes]),
        "epochs_to_goal": median([s[0] for s in reached]) if len(reached) == len(solved) else None,
        "test_accuracy_at_goal": median(
            [s[1].test_accuracy for s in reached if s[1].test_accuracy is not None]
        )
        if reached
        else None,
        "seeds_reaching_goal": len(reached),
        "best_val_accuracy": median([o.best_val_accuracy() or 0.0 for o in outcomes]),
        "test_accuracy_of_best": median(
            [b.test_accuracy for o in outcomes if (b := o.best_trial()) and b.test_accuracy]
        )
        if any(o.best_trial() for o in outcomes)
        else None,
    }


def report(settings: Settings, outcomes: dict[str, StudyOutcome]) -> Figure:
    grid = [outcomes[s.label] for s in grid_specs(settings)]
    tuned = [outcomes[s.label] for s in tuned_specs(settings)]
    grid_side, tuned_side = _side(grid), _side(tuned)
    figure = Figure(
        key="grid",
        title="Search beats the hand grid (report's one-knob-at-a-time runs vs tuned study)",
        command=f"{grid_specs(settings)[0].command()} ; {tuned_specs(settings)[0].command()}",
        settings={
            "grid_seeds": seeds(settings),
            "tuned_seeds": len(tuned),
            "grid": GRID_CONFIG,
            "tuned": pruning.CONFIG,
            "tuned_sizes": pruning.sizes(settings),
            "goal_val_accuracy": ACCURACY_GOAL,
        },
        target=(
            f"tuned study reaches val acc >= {ACCURACY_GOAL} within 1/{TARGET_FACTOR:g} of the "
            "epochs the grid spent in total"
        ),
    )
    for name, side in (("report grid", grid_side), ("tuned study", tuned_side)):
        figure.table.append(
            {
                "side": name,
                "total epochs": side["total_epochs"],
                f"epochs to val acc >= {ACCURACY_GOAL}": side["epochs_to_goal"],
                "test acc of that trial": side["test_accuracy_at_goal"],
                "best val acc": side["best_val_accuracy"],
                "test acc of best (val_loss) trial": side["test_accuracy_of_best"],
                "seeds reaching goal": side["seeds_reaching_goal"],
                "seeds": len(grid) if name == "report grid" else len(tuned),
            }
        )
    tuned_to_goal = tuned_side["epochs_to_goal"]
    figure.ratio = (
        ratio(grid_side["total_epochs"], tuned_to_goal) if tuned_to_goal is not None else 0.0
    )
    figure.ratio_label = "grid total epochs / tuned study's epochs to the goal (medians)"
    figure.met = figure.ratio >= TARGET_FACTOR
    figure.numbers = {
        "grid": grid_side,
        "tuned": tuned_side,
        "per_seed": {
            o.spec.label: {
                "total_epochs": o.total_epochs,
                "epochs_to_goal": (o.first_solved() or (None,))[0],
                "solving_trial": s[1].number if (s := o.first_solved()) else None,
            }
            for o in grid + tuned
        },
    }
    return figure
