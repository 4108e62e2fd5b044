"""``hpsearch`` (also ``python -m search``): parse, call, print.

Exit codes: 0 done, 1 the study stopped short (repeated failures), 2 bad input (one line on
stderr, nothing written), 130 interrupted (the study is intact; rerun the command to resume).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import search
from search.config import DEFAULT_STORAGE, StudyConfig, dump_yaml, load_config
from search.errors import ConfigError, HpsearchError, WorkerError

EXIT_OK, EXIT_STOPPED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class _UsageError(HpsearchError):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (argparse prints a multi-line usage block)."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hpsearch",
        description="Optuna hyperparameter search for Transformer training.",
        epilog="Exit codes: 0 done, 1 stopped short, 2 bad input, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"hpsearch {search.__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show tracebacks on errors",
        )
        return sub

    def add_storage(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--storage", metavar="URL", help=f"storage URL (default {DEFAULT_STORAGE})"
        )

    def add_device(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--device",
            choices=("auto", "cpu", "cuda"),
            default="auto",
            help="auto = CUDA when available, else CPU (default auto)",
        )

    def add_set(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config value by dotted path, e.g. --set fixed.epochs=5 (repeatable)",
        )

    run = add("run", "create or resume a study from a YAML config and run its trials")
    run.add_argument("config", metavar="CONFIG", help="study YAML file")
    add_storage(run)
    run.add_argument("--study-name", metavar="NAME", help="override study.name")
    run.add_argument("--n-trials", type=_positive_int, metavar="N", help="override study.n_trials")
    run.add_argument(
        "--timeout", type=_positive_float, metavar="S", help="override study.timeout (seconds)"
    )
    run.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="K",
        help="worker processes sharing the study (default 1)",
    )
    add_device(run)
    run.add_argument(
        "--allow-config-change",
        action="store_true",
        help="continue an existing study even though its config changed",
    )
    add_set(run)

    validate = add("validate", "check a config and print it resolved (touches no storage)")
    validate.add_argument("config", metavar="CONFIG", help="study YAML file")
    add_set(validate)

    listing = add("list", "list the studies in a storage")
    add_storage(listing)
    listing.add_argument("--json", action="store_true", help="print JSON")

    show = add("show", "print a study's trials and the best (or given) trial's epochs")
    show.add_argument("study", metavar="STUDY", help="study name")
    add_storage(show)
    show.add_argument("--trial", type=_non_negative_int, metavar="N", help="trial number")
    show.add_argument("--json", action="store_true", help="print JSON")

    export = add("export", "write the best trial as a runnable study config")
    export.add_argument("study", metavar="STUDY", help="study name")
    add_storage(export)
    export.add_argument(
        "-o", "--output", metavar="FILE", help="YAML file to write (default: stdout)"
    )
    export.add_argument(
        "--model-dir",
        metavar="DIR",
        help="also write the best trial's saved model there, in its library's own form",
    )

    report = add("report", "write a Markdown report with tables and figures for a study")
    report.add_argument("study", metavar="STUDY", help="study name")
    add_storage(report)
    report.add_argument(
        "-o", "--output", metavar="DIR", help="report folder (default: report/STUDY)"
    )

    delete = add("delete", "delete a study and its artifacts from a storage")
    delete.add_argument("study", metavar="STUDY", help="study name")
    add_storage(delete)
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    retrain = add(
        "retrain",
        "train a fixed configuration (an exported best) with several seeds, evaluate the test "
        "set once per seed, and compare it with a baseline",
    )
    retrain.add_argument(
        "config",
        metavar="BEST",
        help="exported YAML (`hpsearch export`) or a config with search: {}",
    )
    retrain.add_argument(
        "--seeds", type=int, default=5, metavar="K", help="training seeds (default 5, at least 2)"
    )
    retrain.add_argument(
        "--baseline", metavar="CONFIG", help="config with search: {} to compare with, same seeds"
    )
    add_storage(retrain)
    retrain.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="result YAML (default: <BEST stem>-retrain.yaml beside BEST)",
    )
    add_device(retrain)
    add_set(retrain)

    dashboard = add("dashboard", "serve optuna-dashboard on a storage")
    add_storage(dashboard)
    dashboard.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    dashboard.add_argument("--port", type=_port, default=8080, help="port (default 8080)")
    dashboard.add_argument(
        "--artifact-dir",
        metavar="DIR",
        help="artifact folder to serve (default: the studies' artifacts.dir, else beside the db)",
    )
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _port(text: str) -> int:
    value = _non_negative_int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"must be a port between 1 and 65535, got {value}")
    return value


# --------------------------------------------------------------------------- commands


def _load(args: argparse.Namespace) -> StudyConfig:
    overrides = list(args.overrides)
    config = load_config(args.config, overrides)
    updates: dict[str, Any] = {}
    if getattr(args, "storage", None):
        updates["storage"] = args.storage
    if getattr(args, "study_name", None):
        updates["name"] = args.study_name
    if getattr(args, "n_trials", None):
        updates["n_trials"] = args.n_trials
    if getattr(args, "timeout", None):
        updates["timeout"] = args.timeout
    if updates:
        config = config.model_copy(update={"study": config.study.model_copy(update=updates)})
    _check_buildable(config, args.config)
    return config


def _check_buildable(config: StudyConfig, source: str) -> None:
    """Everything checkable before a storage is touched: URL, sampler and pruner args."""
    from search.algorithms import build_pruner, build_sampler
    from storage.urls import parse_storage_url

    parse_storage_url(config.study.storage)
    build_sampler(config, source)
    build_pruner(config.pruner, source)
    config.spec.check(config, source)
    if config.study.name != config.study.name.strip() or "\n" in config.study.name:
        raise ConfigError(
            f"{source}: study.name: no leading/trailing spaces or newlines, "
            f"got {config.study.name!r}"
        )


def _resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "--device cuda: no CUDA device is available here; use --device cpu or auto"
        )
    return requested


def cmd_run(args: argparse.Namespace) -> int:
    from search.progress import TrialPrinter, print_start, print_summary
    from search.study import run_study
    from storage.urls import mask_password

    config = _load(args)
    device = _resolve_device(args.device)
    storage = mask_password(config.study.storage)
    if device == "cuda":
        import torch

        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    printer = TrialPrinter(metric=config.study.metric, target=config.study.n_trials)

    def on_start(study: Any, finished: int, target: int) -> None:
        printer.target = target
        print_start(study, finished, target, storage, sys.stdout)

    summary = run_study(
        config,
        device=device,
        workers=args.workers,
        allow_config_change=args.allow_config_change,
        on_trial=printer,
        on_start=on_start,
    )
    from search.study import open_existing_study

    study = open_existing_study(config.study.storage, config.study.name)
    print_summary(study, summary, storage, sys.stdout)
    if summary.stopped_because and summary.stopped_because != "timeout":
        print(f"hpsearch: study stopped: {summary.stopped_because}", file=sys.stderr)
        return EXIT_STOPPED
    if summary.stopped_because == "timeout":
        print(
            f"timeout reached with {summary.finished_after}/{summary.target} finished; "
            "rerun the same command to continue"
        )
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    config = _load(args)
    sys.stdout.write(
        f"# {args.config}: valid ({config.objective}, {len(config.search)} searched "
        f"parameters, metric {config.study.metric})\n"
    )
    sys.stdout.write(dump_yaml(config.to_dict(mask_password=True)))
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    import optuna
    from optuna.trial import TrialState

    from storage.rdb import open_storage
    from storage.urls import parse_storage_url

    url = parse_storage_url(args.storage or DEFAULT_STORAGE)
    storage = open_storage(url, create=False)
    rows = []
    for summary in optuna.study.get_all_study_summaries(storage, include_best_trial=True):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
        best = summary.best_trial
        rows.append(
            {
                "name": summary.study_name,
                "direction": summary.direction.name.lower(),
                "metric": (study.user_attrs.get("config") or {}).get("study", {}).get("metric"),
                "trials": len(trials),
                **{k: counts[k] for k in ("complete", "pruned", "fail", "running")},
                "best_value": best.value if best else None,
                "best_trial": best.number if best else None,
                "started": summary.datetime_start.isoformat(timespec="seconds")
                if summary.datetime_start
                else None,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print(f"no studies in {url.masked}")
        return EXIT_OK
    from search.results import format_table

    headers = [
        "Study",
        "Metric",
        "Trials",
        "Complete",
        "Pruned",
        "Failed",
        "Running",
        "Best",
        "Best trial",
        "Started",
    ]
    print(
        format_table(
            headers,
            [
                [
                    r["name"],
                    r["metric"] or r["direction"],
                    r["trials"],
                    r["complete"],
                    r["pruned"],
                    r["fail"],
                    r["running"],
                    r["best_value"],
                    r["best_trial"],
                    r["started"],
                ]
                for r in rows
            ],
        )
    )
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from search.errors import StudyError
    from search.results import (
        best_trial,
        epoch_rows,
        format_epoch_table,
        format_trials_table,
        trial_summary,
    )
    from search.study import open_existing_study

    study = open_existing_study(args.storage or DEFAULT_STORAGE, args.study)
    trials = study.get_trials(deepcopy=False)
    metric = (study.user_attrs.get("config") or {}).get("study", {}).get("metric", "value")
    if args.trial is not None:
        chosen = next((t for t in trials if t.number == args.trial), None)
        if chosen is None:
            raise StudyError(
                f"study {args.study!r} has no trial {args.trial} (trials 0..{len(trials) - 1})"
            )
    else:
        chosen = best_trial(study)
    if args.json:
        print(
            json.dumps(
                {
                    "study": study.study_name,
                    "direction": study.direction.name.lower(),
                    "metric": metric,
                    "trials": [trial_summary(t) for t in trials],
                    "best_trial": best_trial(study).number if best_trial(study) else None,
                    "trial": {**trial_summary(chosen), "epochs": epoch_rows(chosen)}
                    if chosen
                    else None,
                },
                indent=2,
                default=str,
            )
        )
        return EXIT_OK
    print(
        f"study {study.study_name!r} ({metric}, {study.direction.name.lower()}), "
        f"{len(trials)} trials\n"
    )
    print(format_trials_table(trials, metric) if trials else "no trials yet")
    if chosen is not None:
        label = "trial" if args.trial is not None else "best trial"
        summary = trial_summary(chosen)
        print(
            f"\n{label} {chosen.number} ({chosen.state.name}"
            f"{', ' + summary['reason'] if summary['reason'] else ''}): "
            f"best epoch {summary['best_epoch']}"
        )
        print(format_epoch_table(chosen))
        if summary["note"]:
            print(f"note: {summary['note']}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from search.export import export_best, write_export
    from search.study import open_existing_study

    storage = args.storage or DEFAULT_STORAGE
    study = open_existing_study(storage, args.study)
    config = export_best(study, storage if args.storage else None)
    output = Path(args.output) if args.output else None
    if args.model_dir:
        from search.export import export_model

        model_dir = Path(args.model_dir)
        number = export_model(study, storage, model_dir)
        print(f"wrote the model of trial {number} to {model_dir}", file=sys.stderr)
    text = write_export(config, output)
    if output is None:
        sys.stdout.write(text)
    else:
        best = config["best"]
        print(
            f"wrote {output}: trial {best['trial']} ({best['metric']} {best['value']:.4f}); "
            f"train it again with `hpsearch run {output}`"
        )
    return EXIT_OK


def cmd_retrain(args: argparse.Namespace) -> int:
    from search.retrain import (
        add_to_config_file,
        default_output,
        format_result,
        retrain,
        write_result,
    )

    result = retrain(
        args.config,
        seeds=args.seeds,
        baseline_path=args.baseline,
        storage=args.storage,
        overrides=args.overrides,
        device=_resolve_device(args.device),
    )
    print()
    sys.stdout.write(format_result(result))
    if not result.complete:
        print(
            "hpsearch: some seeds did not finish (see the tables); rerun the same command to "
            "train them",
            file=sys.stderr,
        )
        return EXIT_STOPPED
    output = Path(args.output) if args.output else default_output(args.config)
    write_result(result, output)
    add_to_config_file(result, Path(args.config))
    print(f"wrote {output}; added `retrain:` to {args.config}")
    return EXIT_OK


def cmd_dashboard(args: argparse.Namespace) -> int:
    from search.dashboard import serve

    return serve(args.storage or DEFAULT_STORAGE, args.host, args.port, args.artifact_dir)


def cmd_report(args: argparse.Namespace) -> int:
    from search.report import write_report
    from search.study import open_existing_study

    study = open_existing_study(args.storage or DEFAULT_STORAGE, args.study)
    folder = Path(args.output) if args.output else Path("report") / args.study
    written = write_report(study, folder, args.storage or DEFAULT_STORAGE)
    print(f"wrote {written} ({len(list(folder.iterdir()))} files in {folder})")
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    from search.delete import delete_study

    return delete_study(args.storage or DEFAULT_STORAGE, args.study, assume_yes=args.yes)


COMMANDS = {
    "run": cmd_run,
    "validate": cmd_validate,
    "list": cmd_list,
    "show": cmd_show,
    "export": cmd_export,
    "retrain": cmd_retrain,
    "dashboard": cmd_dashboard,
    "report": cmd_report,
    "delete": cmd_delete,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code. Errors print one line unless ``--debug``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Idle OpenMP threads sleep instead of spinning: a spinning thread that shares a core with
    # another worker or the dashboard slows training ten-fold. Must precede importing torch.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        _quiet_libraries(debug)
        _sigterm_as_interrupt()
        return COMMANDS[args.command](args)
    except WorkerError as e:
        # Not bad input: a worker died (killed, out of memory). Its trial is retried on rerun.
        if debug:
            traceback.print_exc()
        print(f"hpsearch: error: {e}", file=sys.stderr)
        return EXIT_STOPPED
    except HpsearchError as e:
        if debug:
            traceback.print_exc()
        print(f"hpsearch: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(
            "hpsearch: interrupted; the study is intact: rerun the same command to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `hpsearch show ... | head`: the reader left; that is not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def _quiet_libraries(debug: bool = False) -> None:
    import optuna

    # Our own per-trial lines replace Optuna's INFO log.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not debug:
        from search.study import hide_trial_failure_tracebacks

        # ... and its traceback per failed trial (the line shows the stored reason).
        hide_trial_failure_tracebacks()


def _sigterm_as_interrupt() -> None:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    from search.study import redeliver_lost_interrupts

    redeliver_lost_interrupts()


def entry_point() -> None:
    sys.exit(main())
