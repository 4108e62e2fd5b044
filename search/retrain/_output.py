"""What a retrain writes: the result file, the ``retrain:`` section, and the printed tables."""

from __future__ import annotations

from pathlib import Path

from search.config import dump_yaml, parse_yaml
from search.errors import ConfigError, StudyError
from search.formatting import format_table, interval, p_value, signed
from search.retrain._result import RetrainResult, compared_metrics, conclusion


def default_output(best_path: str | Path) -> Path:
    """``<BEST stem>-retrain.yaml`` beside BEST."""
    path = Path(best_path)
    return path.with_name(f"{path.stem}-retrain.yaml")


def write_result(result: RetrainResult, output: Path) -> None:
    """Write the result file (the same mapping as the ``retrain:`` section)."""
    text = (
        f"# hpsearch retrain of {result.winner.plan.path} over {len(result.winner.plan.seeds)} "
        "seeds; see docs/how-to/retrain.md for how to read it.\n" + dump_yaml(result.to_dict())
    )
    _write(output, text)


def add_to_config_file(result: RetrainResult, path: Path) -> None:
    """Add (or replace) the ``retrain:`` section of the retrained file, keeping the rest.

    The file is re-read as written (without ``--set`` overrides); its leading comment lines are
    kept, other comments are lost in the round trip.
    """
    text = path.read_text(encoding="utf-8")
    raw = parse_yaml(text, str(path))
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level is not a mapping; cannot add `retrain:`")
    raw["retrain"] = result.to_dict()
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    _write(path, "".join(line + "\n" for line in header) + dump_yaml(raw))


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise StudyError(f"cannot write {path}: {e.strerror or e}; choose another -o FILE") from e


# --------------------------------------------------------------------------- printing


def format_result(result: RetrainResult) -> str:
    """The per-seed tables, the spread of each side and the comparison, as text."""
    parts = []
    config = result.winner.plan.config
    columns = list(
        dict.fromkeys(("val_loss", "val_accuracy", config.metric, *compared_metrics(config)))
    )
    for side in [result.winner] + ([result.baseline] if result.baseline else []):
        parts.append(
            f"{side.plan.role} ({side.plan.path}; study {side.plan.config.study.name!r}):\n"
            + format_table(
                ["Seed", "Trial", "State", "Best epoch", *[_label(n) for n in columns], "Seconds"],
                [
                    [
                        run.seed,
                        run.trial if run.trial is not None else "-",
                        run.state,
                        run.best_epoch,
                        *[run.metric(name) for name in columns],
                        f"{run.seconds:.1f}" if run.seconds is not None else "-",
                    ]
                    for run in side.runs
                ],
            )
        )
    rows = []
    clipped = False
    for side in [result.winner] + ([result.baseline] if result.baseline else []):
        for name, summary in side.summaries.items():
            if summary is None:
                rows.append([side.plan.role, name, "-", "-", "-", "-"])
            else:
                low, high = summary.ci95
                spread = interval(low, high) + ("*" if summary.clipped else "")
                clipped = clipped or summary.clipped
                rows.append([side.plan.role, name, summary.n, summary.mean, summary.std, spread])
    note = "\n* cut at the metric's bound (the t-interval crossed it)" if clipped else ""
    parts.append(
        "over seeds (95 % CI: t-distribution):\n"
        + format_table(["Config", "Metric", "Seeds", "Mean", "Std", "95 % CI"], rows)
        + note
    )
    if result.baseline is not None:
        rows = []
        for name, comparison in result.comparisons.items():
            if comparison is None:
                rows.append([name, "-", "-", "-", "-"])
                continue
            low, high = comparison.ci95
            rows.append(
                [
                    name,
                    signed(comparison.difference),
                    interval(low, high, signed_values=True),
                    p_value(comparison.p_value),
                    comparison.verdict,
                ]
            )
        parts.append(
            f"winner - baseline, paired over seeds {', '.join(map(str, result.compared_seeds))} "
            "(paired t-test; accuracy: higher is better, loss: lower is better):\n"
            + format_table(["Metric", "Difference", "95 % CI", "p-value", "Verdict"], rows)
        )
    parts.append(f"verdict: {conclusion(result)}")
    return "\n\n".join(parts) + "\n"


def _label(name: str) -> str:
    """``val_accuracy`` -> ``Val accuracy``: a column header from a metric name."""
    split, _, metric = name.partition("_")
    return f"{split.capitalize()} {metric}"
