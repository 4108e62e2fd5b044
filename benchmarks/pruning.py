"""Figure 1: pruning saves compute.

The default toy study (TPE) run three ways with the same seeds: without a pruner, with the
median pruner (the default config) and with successive halving. Per variant, medians over seeds
of: total epochs trained, best validation loss (the study value), test accuracy of the best trial,
and epochs spent until a trial first reaches validation accuracy >= 0.99.
Target: >= 2x fewer epochs than unpruned, best value no worse than 2 % of the unpruned one.
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness import Figure, Settings, median, ratio
from benchmarks.studies import ACCURACY_GOAL, StudyOutcome, StudySpec

CONFIG = "study_configs/toy_transformer.yaml"
VARIANTS = {
    "none": ("pruner.name=none", "pruner.args={}"),
    "median": (),  # the config's own pruner: median, n_startup_trials 5, n_warmup_steps 2
    "successive_halving": ("pruner.name=successive_halving", "pruner.args={}"),
}
EPOCH_SAVING_TARGET = 2.0
BEST_VALUE_TOLERANCE = 0.02


def sizes(settings: Settings) -> dict[str, int]:
    if settings.mode == "smoke":
        return {"n_trials": 4, "epochs": 3, "seeds": 1}
    if settings.quick:
        return {"n_trials": 10, "epochs": 6, "seeds": 3}
    # The config's own 30 trials x 30 epochs x 3 seeds x 3 pruners take over an hour on two
    # cores; 20 x 20 keeps the full run within ~40 minutes and the comparison the same.
    return {"n_trials": 20, "epochs": 20, "seeds": 3}


def specs(settings: Settings) -> list[StudySpec]:
    size = sizes(settings)
    result = []
    for variant, overrides in VARIANTS.items():
        for seed in range(size["seeds"]):
            result.append(
                StudySpec(
                    config=CONFIG,
                    overrides=(
                        f"study.n_trials={size['n_trials']}",
                        f"fixed.epochs={size['epochs']}",
                        f"study.seed={seed}",
                        *_quick_startup(settings),
                        *overrides,
                    ),
                    label=f"{_prefix(settings)}tpe-{variant}-seed{seed}",
                )
            )
    return result


def _quick_startup(settings: Settings) -> tuple[str, ...]:
    # Ten trials leave TPE (8 random startup trials) and the median pruner (5) almost nothing
    # to do; shorter startups keep the quick figure a search with pruning, as the full one is.
    if settings.mode == "full":
        return ()
    return ("sampler.args.n_startup_trials=4", "pruner.args.n_startup_trials=3")


def summarise(outcomes: list[StudyOutcome]) -> dict[str, float | int | None]:
    """Medians over seeds of what one variant spent and reached."""
    epochs = [o.total_epochs for o in outcomes]
    best = [o.best_trial() for o in outcomes]
    solved = [o.first_solved() for o in outcomes]
    reached = [s[0] for s in solved if s is not None]
    return {
        "total_epochs": median(epochs),
        "best_val_loss": _median_or_none([b.value for b in best if b is not None]),
        "best_val_accuracy": _median_or_none(
            [a for a in (o.best_val_accuracy() for o in outcomes) if a is not None]
        ),
        "test_accuracy_of_best": _median_or_none(
            [b.test_accuracy for b in best if b is not None and b.test_accuracy is not None]
        ),
        "epochs_to_goal": median(reached) if len(reached) == len(outcomes) else None,
        "seeds_reaching_goal": len(reached),
        "pruned_trials": median([sum(t.state == "PRUNED" for t in o.trials) for o in outcomes]),
        "wall_seconds": median([o.wall_seconds for o in outcomes]),
    }


def _median_or_none(values: list[float]) -> float | None:
    return median(values) if values else None


def report(settings: Settings, outcomes: dict[str, StudyOutcome]) -> Figure:
    size = sizes(settings)
    figure = Figure(
        key="pruning",
        title="Pruning saves compute (toy task, TPE, with and without pruners)",
        command=" ; ".join(s.command() for s in specs(settings) if s.label.endswith("seed0")),
        settings={**size, "config": CONFIG, "goal_val_accuracy": ACCURACY_GOAL},
        target=(
            f">= {EPOCH_SAVING_TARGET:g}x fewer epochs than unpruned, best val_loss no worse "
            f"than {BEST_VALUE_TOLERANCE:.0%} of the unpruned one"
        ),
    )
    per_variant: dict[str, list[StudyOutcome]] = {
        variant: [outcomes[s.label] for s in specs(settings) if f"-{variant}-" in s.label]
        for variant in VARIANTS
    }
    summaries = {variant: summarise(runs) for variant, runs in per_variant.items()}
    baseline = summaries["none"]
    verdicts = {}
    for variant, summary in summaries.items():
        # Pair by seed: the same seed gives the same data, first trials and training seeds.
        seed_ratios = [
            ratio(unpruned.total_epochs, pruned.total_epochs)
            for unpruned, pruned in zip(per_variant["none"], per_variant[variant], strict=True)
        ]
        saving = median(seed_ratios)
        best, base_best = summary["best_val_loss"], baseline["best_val_loss"]
        within = (
            best is not None
            and base_best is not None
            and best <= base_best * (1 + BEST_VALUE_TOLERANCE)
        )
        met = None if variant == "none" else (saving >= EPOCH_SAVING_TARGET and within)
        verdicts[variant] = met
        figure.table.append(
            {
                "pruner": variant,
                "total epochs": summary["total_epochs"],
                "epoch saving vs none": saving,
                "best val_loss": best,
                "best val_loss / none": ratio(best, base_best) if best and base_best else None,
                "best val acc": summary["best_val_accuracy"],
                "test acc of best": summary["test_accuracy_of_best"],
                f"epochs to val acc >= {ACCURACY_GOAL}": summary["epochs_to_goal"],
                "pruned trials": summary["pruned_trials"],
                "wall s": summary["wall_seconds"],
                "target": "n/a" if met is None else ("met" if met else "missed"),
            }
        )
        figure.numbers[variant] = {
            **summary,
            "epoch_saving_vs_none": saving,
            "seed_ratios": seed_ratios,
        }
    figure.numbers["per_seed"] = {
        label: {
            "total_epochs": o.total_epochs,
            "best_val_loss": (o.best_trial().value if o.best_trial() else None),
            "epochs_to_goal": (o.first_solved() or (None,))[0],
            "failed_trials": len(o.errors),
        }
        for label, o in sorted(outcomes.items())
        if any(label == s.label for s in specs(settings))
    }
    figure.ratio = figure.numbers["median"]["epoch_saving_vs_none"]
    figure.ratio_label = "epochs unpruned / epochs with median pruner (median over seeds)"
    figure.met = verdicts["median"]
    if verdicts["successive_halving"] is not None:
        saving = figure.numbers["successive_halving"]["epoch_saving_vs_none"]
        figure.notes.append(
            f"successive halving: {saving:.2f}x fewer epochs, target "
            f"{'met' if verdicts['successive_halving'] else 'missed'}"
        )
    figure.notes.extend(diagnose(figure.numbers, size["epochs"]))
    failures = sum(len(outcomes[s.label].errors) for s in specs(settings))
    if failures:
        figure.notes.append(f"{failures} trials failed across these studies (see results.json)")
    return figure


def _prefix(settings: Settings) -> str:
    return "" if settings.mode == "full" else f"{settings.mode}-"


def diagnose(numbers: dict[str, Any], epochs: int) -> list[str]:
    """Why a pruner saves what it saves, from the medians (notes for RESULTS.md)."""
    notes = []
    base = numbers["none"]
    for variant in ("median", "successive_halving"):
        summary = numbers[variant]
        best, base_best = summary["best_val_loss"], base["best_val_loss"]
        if best is None or base_best is None:
            continue
        if best > base_best * (1 + BEST_VALUE_TOLERANCE) and max(best, base_best) < 0.01:
            notes.append(
                f"{variant}: best val_loss {best:.2g} vs {base_best:.2g} unpruned; both are "
                f"below 0.01 nats (val acc {summary['best_val_accuracy']} vs "
                f"{base['best_val_accuracy']}, test acc of best {summary['test_accuracy_of_best']}"
                f" vs {base['test_accuracy_of_best']}), where a 2 % relative tolerance is noise"
            )
    median_summary = numbers["median"]
    pruned = median_summary["pruned_trials"]
    if pruned is not None and median_summary["epoch_saving_vs_none"] < EPOCH_SAVING_TARGET:
        notes.append(
            f"median pruner: {pruned:g} trials pruned (median over seeds); the others ran all "
            f"{epochs} epochs. It cannot prune its startup trials, and TPE soon proposes good "
            "configurations, which sit at or below the running median and so are never pruned; "
            "nothing stops a converged trial either (early_stopping_patience is null)"
        )
    return notes
