"""Bad input of every kind: one line on stderr, exit 2, no traceback, the storage untouched.

Continues the table of ``tests/search/test_cli.py`` (same finished micro study, copied per case)
with cases it does not have: config files, ``--set`` values, flags, storages, data files and
config drift. A property-based test then throws random YAML and random configs at the loader.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search.config import StudyConfig, config_from_dict, load_config, parse_yaml
from search.errors import ConfigError
from tests.conftest import MICRO_TOY, REPO, cli_env, digest

Run = Callable[..., subprocess.CompletedProcess[str]]
FAULTY_CLI = str(REPO / "tests" / "faulty_objective.py")


# A config file written as text; @DB@ is the copied study database (so a config that wrongly
# passed would write to it and fail the byte-for-byte check).
HEADER = "study: {name: micro, storage: 'sqlite:///@DB@'}\nobjective: toy_transformer\n"
BERT = HEADER.replace("toy_transformer", "bert") + "fixed: {model: '@MODEL@'}\n"
FILES: dict[str, str] = {
    "yaml_syntax": "study: {name: micro\nobjective: toy_transformer\n",
    "empty": "",
    "comment_only": "# nothing here\n",
    "top_level_list": "- study\n- objective\n",
    "duplicate_key": HEADER + "objective: bert\n",
    "unknown_top_key": HEADER + "studdy: {n_trials: 3}\n",
    "unknown_study_key": HEADER.replace("name: micro", "name: micro, n_trails: 3"),
    "wrong_type": HEADER.replace("name: micro", "name: micro, n_trials: three"),
    "python_tag": HEADER + "data: !!python/object/apply:os.system ['touch pwned']\n",
    "no_objective": "study: {name: micro, storage: 'sqlite:///@DB@'}\n",
    "search_not_a_mapping": HEADER + "search: {lr: 0.01}\n",
    "bert_missing_file": BERT + "data: {files: {train: '@FOLDER@/missing.csv'}}\n",
    "bert_missing_column": BERT
    + "data: {files: {train: '@FOLDER@/train.csv'}, text_columns: [review]}\n",
}

CASES: list[tuple[str, list[str], str]] = [
    # ---- config files
    ("yaml syntax", ["run", "{file:yaml_syntax}"], "YAML syntax error at line 2, column 10"),
    ("empty file", ["run", "{file:empty}"], "the file is empty"),
    ("comment-only file", ["validate", "{file:comment_only}"], "the file is empty"),
    ("top level is a list", ["run", "{file:top_level_list}"], "top level must be a mapping"),
    ("duplicate key", ["run", "{file:duplicate_key}"], "duplicate key 'objective' at line 3"),
    (
        "unknown top-level key",
        ["run", "{file:unknown_top_key}"],
        "studdy: unknown key 'studdy'; valid keys here: study, sampler",
    ),
    ("unknown nested key", ["run", "{file:unknown_study_key}"], "study.n_trails: unknown key"),
    ("wrong type", ["run", "{file:wrong_type}"], "study.n_trials: Input should be a valid integer"),
    ("python tag", ["run", "{file:python_tag}"], "could not determine a constructor"),
    ("no objective", ["run", "{file:no_objective}"], "objective: missing"),
    (
        "space not a mapping",
        ["run", "{file:search_not_a_mapping}"],
        "search.lr: Input should be a valid dictionary",
    ),
    ("config is a folder", ["run", "{folder}"], "is a directory"),
    ("config not UTF-8", ["run", "{binary}"], "cannot read the config file"),
    # ---- values (through --set, as a user fixes a file)
    (
        "low above high",
        ["run", "{config}", "--set", "search.lr.low=0.5"],
        "search.lr.low: low (0.5) is greater than high (0.01)",
    ),
    (
        "log with low 0",
        ["run", "{config}", "--set", "search.lr.low=0"],
        "search.lr.low: log: true needs low > 0",
    ),
    (
        "unknown sampler",
        ["run", "{config}", "--set", "sampler.name=annealing"],
        "sampler.name: input should be",
    ),
    (
        "unknown pruner",
        ["run", "{config}", "--set", "pruner.name=aggressive"],
        "pruner.name: input should be",
    ),
    (
        "resume every 0 epochs",
        ["run", "{config}", "--set", "artifacts.resume_every=0"],
        "artifacts.resume_every: Input should be greater than or equal to 1, got 0",
    ),
    (
        "resume not a boolean",
        ["run", "{config}", "--set", "artifacts.resume=maybe"],
        "artifacts.resume: Input should be a valid boolean",
    ),
    (
        "unknown objective",
        ["run", "{config}", "--set", "objective=resnet"],
        "unknown objective 'resnet'",
    ),
    (
        "objective as code",
        ["run", "{config}", "--set", "objective=os:system"],
        "unknown objective 'os:system'",
    ),
    (
        "metric of another objective",
        ["run", "{config}", "--set", "study.metric=val_f1"],
        "'val_f1' is not a metric of objective 'toy_transformer'",
    ),
    (
        "unknown space type",
        ["run", "{config}", "--set", "search.lr.type=normal"],
        "`type` must be one of float, int, categorical",
    ),
    (
        "unknown parameter",
        ["run", "{config}", "--set", "fixed.momentum=0.9"],
        "fixed.momentum: unknown parameter",
    ),
    (
        "NaN bound",
        ["run", "{config}", "--set", "search.lr.low=.nan"],
        "search.lr.low: must be a finite number, got nan",
    ),
    (
        "NaN fixed value",
        ["run", "{config}", "--set", "fixed.max_grad_norm=.nan"],
        "fixed.max_grad_norm: must be a finite number, got nan",
    ),
    (
        "fixed value out of range",
        ["run", "{config}", "--set", "fixed.epochs=0"],
        "fixed.epochs: must be >= 1",
    ),
    (
        "grid over a float range",
        ["run", "{config}", "--set", "sampler.name=grid"],
        "the grid sampler needs categorical parameters only",
    ),
    (
        "heads do not divide",
        ["run", "{config}", "--set", "search.hidden_dim.choices=[16, 25]"],
        "bad pairs (hidden_dim/num_heads): 25/2",
    ),
    (
        "enqueue outside the space",
        ["run", "{config}", "--set", "enqueue=[{lr: 0.5}]"],
        "enqueue[0].lr: 0.5 lies outside the search space",
    ),
    (
        "grace not above interval",
        [
            "run",
            "{config}",
            "--set",
            "study.heartbeat_grace=20",
            "--set",
            "study.heartbeat_interval=30",
        ],
        "study.heartbeat_grace: must be larger",
    ),
    ("data key unknown", ["run", "{config}", "--set", "data.n_rows=5"], "data.n_rows: unknown key"),
    (
        "--set unknown section",
        ["run", "{config}", "--set", "trainer.lr=1"],
        "--set trainer.lr: unknown key 'trainer'",
    ),
    (
        "--set bad YAML",
        ["run", "{config}", "--set", "fixed.epochs=[1"],
        "--set fixed.epochs: YAML syntax error",
    ),
    (
        "--set through a value",
        ["run", "{config}", "--set", "fixed.epochs.x=1"],
        "fixed.epochs is 1, not a mapping",
    ),
    (
        "--set empty key part",
        ["run", "{config}", "--set", "search..high=1"],
        "empty part in the dotted key",
    ),
    # ---- flags
    ("--timeout 0", ["run", "{config}", "--timeout", "0"], "--timeout: must be > 0, got 0"),
    (
        "--workers not a number",
        ["run", "{config}", "--workers", "two"],
        "--workers: expected a whole number",
    ),
    ("--port out of range", ["dashboard", "--port", "70000"], "must be a port between 1 and 65535"),
    (
        "--trial negative",
        ["show", "micro", "--trial", "-1", "--storage", "{db_url}"],
        "must be 0 or more, got -1",
    ),
    (
        "-o without a file",
        ["export", "micro", "--storage", "{db_url}", "-o"],
        "expected one argument",
    ),
    # ---- storage
    (
        "storage under a file",
        ["run", "{config}", "--storage", "sqlite:///{db}/sub/hp.db"],
        "cannot create the storage folder",
    ),
    (
        "storage is a folder",
        ["run", "{config}", "--storage", "sqlite:///{folder}"],
        "is a directory; name a .db file",
    ),
    (
        "storage not SQLite",
        ["run", "{config}", "--storage", "sqlite:///{config}"],
        "is not a usable SQLite database",
    ),
    (
        "async driver",
        ["run", "{config}", "--storage", "postgresql+asyncpg://u:pw@h/db"],
        "scheme 'postgresql+asyncpg'",
    ),
    (
        "in-memory SQLite",
        ["run", "{config}", "--storage", "sqlite:///:memory:"],
        "an in-memory database would lose every trial",
    ),
    (
        "list a missing file",
        ["list", "--storage", "sqlite:///{folder}/none.db"],
        "no study database at",
    ),
    # ---- data (BERT objective, checked before the study starts)
    (
        "BERT data file missing",
        ["run", "{file:bert_missing_file}"],
        "data.files.train: no such file",
    ),
    ("BERT column missing", ["run", "{file:bert_missing_column}"], "review"),
    # ---- config drift against the finished study
    (
        "drift: search space",
        ["run", "{config}", "--set", "search.lr.high=0.005"],
        "search.lr.high: 0.01 -> 0.005",
    ),
    ("drift: fixed value", ["run", "{config}", "--set", "fixed.epochs=2"], "fixed.epochs: 1 -> 2"),
    ("drift: data", ["run", "{config}", "--set", "data.n_train=200"], "data.n_train: 300 -> 200"),
    (
        "drift: metric",
        ["run", "{config}", "--set", "study.metric=val_accuracy"],
        "with direction minimize, but metric 'val_accuracy' needs maximize",
    ),
    (
        "drift: objective",
        ["faulty", "run", "{config}", "--set", "objective=faulty_toy"],
        "objective: 'toy_transformer' -> 'faulty_toy'",
    ),
]


def _fill(arg: str, folder: Path, files: dict[str, Path], model: Path) -> str:
    for name, path in files.items():
        arg = arg.replace(f"{{file:{name}}}", str(path))
    return (
        arg.replace("{config}", str(folder / "study.yaml"))
        .replace("{db_url}", f"sqlite:///{folder / 'hp.db'}")
        .replace("{db}", str(folder / "hp.db"))
        .replace("{binary}", str(folder / "binary.yaml"))
        .replace("{folder}", str(folder))
        .replace("{model}", str(model))
    )


@pytest.fixture
def case_folder(finished_study: Path, tmp_path: Path) -> Path:
    """A copy of the finished study, plus the files the cases point at."""
    shutil.copy(finished_study / "hp.db", tmp_path / "hp.db")
    (tmp_path / "study.yaml").write_text(
        (finished_study / "study.yaml").read_text().replace(str(finished_study), str(tmp_path))
    )
    (tmp_path / "binary.yaml").write_bytes(b"study: \xff\xfe\x00 binary")
    model = tmp_path / "model"  # enough of a model folder for the pre-study check
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    (tmp_path / "train.csv").write_text("sentence,label\ngood,1\nbad,0\n")
    for name, text in FILES.items():
        text = text.replace("@DB@", str(tmp_path / "hp.db")).replace("@FOLDER@", str(tmp_path))
        (tmp_path / f"{name}.yaml").write_text(text.replace("@MODEL@", str(model)))
    return tmp_path


def _filled(args: list[str], folder: Path) -> list[str]:
    files = {name: folder / f"{name}.yaml" for name in FILES}
    return [_fill(a, folder, files, folder / "model") for a in args]


def _check(code: int, err: str, expected: str, folder: Path, before: dict[Path, str]) -> None:
    assert code == 2, err
    assert err.startswith("hpsearch") and err.count("\n") == 1, err
    assert expected in err, err
    assert "Traceback" not in err
    assert {path: digest(path) for path in before} == before, "storage untouched"
    assert not (folder / "pwned").exists()


@pytest.fixture
def call_main(capsys: pytest.CaptureFixture[str]) -> Callable[[list[str]], tuple[int, str]]:
    """``search.cli.main`` in this process (fast); restores what it changes process-wide."""
    import signal

    from search.cli import main

    def call(argv: list[str]) -> tuple[int, str]:
        handler, hook = signal.getsignal(signal.SIGTERM), sys.unraisablehook
        capsys.readouterr()
        try:
            code = main(argv)
        finally:
            signal.signal(signal.SIGTERM, handler)
            sys.unraisablehook = hook
        return code, capsys.readouterr().err

    return call


@pytest.mark.parametrize(("args", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_the_storage_untouched(
    case_folder: Path,
    call_main: Callable[[list[str]], tuple[int, str]],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    expected: str,
) -> None:
    from objectives import registry
    from tests.faulty_objective import FAULTY_TOY

    before = {path: digest(path) for path in (case_folder / "hp.db", case_folder / "study.yaml")}
    filled = _filled(args, case_folder)
    if filled[0] == "faulty":  # what tests/faulty_objective.py does as a script
        monkeypatch.setitem(registry._REGISTERED, FAULTY_TOY.name, FAULTY_TOY)
        filled = filled[1:]
    monkeypatch.chdir(case_folder)
    code, err = call_main(filled)
    _check(code, err, expected, case_folder, before)


# The same contract through a real process, for a sample of the table.
@pytest.mark.parametrize(
    "case", ["python tag", "BERT column missing", "storage not SQLite", "drift: objective"]
)
def test_bad_input_through_the_real_cli(case_folder: Path, run_cli: Run, case: str) -> None:
    args, expected = next(c[1:] for c in CASES if c[0] == case)
    before = {path: digest(path) for path in (case_folder / "hp.db", case_folder / "study.yaml")}
    filled = _filled(args, case_folder)
    if filled[0] == "faulty":
        command = [sys.executable, FAULTY_CLI, *filled[1:]]
        done = subprocess.run(
            command, cwd=case_folder, env=cli_env(), capture_output=True, text=True, timeout=300
        )
    else:
        done = run_cli(*filled)
    _check(done.returncode, done.stderr, expected, case_folder, before)


def test_drift_message_names_both_ways_out(finished_study: Path, run_cli: Run) -> None:
    config = finished_study / "study.yaml"
    before = digest(finished_study / "hp.db")
    refused = run_cli("run", str(config), "--set", "fixed.epochs=2", cwd=finished_study)
    assert refused.returncode == 2
    assert "use a new --study-name, or pass --allow-config-change" in refused.stderr
    assert digest(finished_study / "hp.db") == before
    renamed = run_cli(
        "validate", str(config), "--set", "fixed.epochs=2", "--set", "study.name=micro-2"
    )
    assert renamed.returncode == 0, "a new study name is a new study: nothing to compare"


# --------------------------------------------------------------------------- property-based

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=12,
)
_PATHS = [
    ("study",),
    ("study", "name"),
    ("study", "n_trials"),
    ("study", "metric"),
    ("study", "storage"),
    ("study", "heartbeat_grace"),
    ("sampler",),
    ("sampler", "name"),
    ("sampler", "args"),
    ("pruner", "args"),
    ("objective",),
    ("fixed",),
    ("fixed", "epochs"),
    ("fixed", "lr"),
    ("search",),
    ("search", "lr"),
    ("search", "lr", "low"),
    ("search", "lr", "type"),
    ("search", "hidden_dim", "choices"),
    ("enqueue",),
    ("data",),
    ("data", "seq_len"),
    ("artifacts",),
    ("best",),
]


def _check_outcome(build: Callable[[], StudyConfig]) -> None:
    """Either a valid config or one clean, one-line ConfigError; nothing else may escape."""
    try:
        config = build()
    except ConfigError as e:
        message = str(e)
        assert message and "\n" not in message, repr(message)
        return
    assert isinstance(config, StudyConfig)
    assert config.study.n_trials >= 1 and config.objective in ("toy_transformer", "bert")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(st.tuples(st.sampled_from(_PATHS), _values), min_size=1, max_size=3))
def test_random_config_values_give_a_config_or_one_clean_error(
    mutations: list[tuple[tuple[str, ...], Any]],
) -> None:
    data: Any = json.loads(json.dumps(MICRO_TOY))
    for path, value in mutations:
        node = data
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    _check_outcome(lambda: config_from_dict(data, "random.yaml"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.text(alphabet=":{}[]-,#&*!|>'\"%@` \n\tabc0123.e", max_size=120),
    )
)
def test_random_yaml_text_gives_a_config_or_one_clean_error(text: str) -> None:
    def build() -> StudyConfig:
        raw = parse_yaml(text, "random.yaml")
        if not isinstance(raw, dict):
            raise ConfigError("not a mapping")
        return config_from_dict(raw, "random.yaml")

    _check_outcome(build)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    overrides=st.lists(
        st.tuples(
            st.sampled_from([".".join(p) for p in _PATHS] + ["nosuch.key", "fixed.", "=", ""]),
            st.text(alphabet="{}[]:,- 0123456789.eabnul'\"", max_size=20),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_random_set_overrides_give_a_config_or_one_clean_error(
    overrides: list[tuple[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.getbasetemp()
    path = folder / "hypothesis-study.yaml"
    if not path.exists():
        path.write_text(yaml.safe_dump(MICRO_TOY))
    _check_outcome(lambda: load_config(path, [f"{key}={value}" for key, value in overrides]))
