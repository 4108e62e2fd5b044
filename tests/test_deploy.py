"""deploy/: the Kubernetes manifests and the Slurm script, checked and run for real.

The manifests are read with PyYAML and held to a small schema written here (no cluster and no
kubectl needed); the study config in the ConfigMap goes through the real ``hpsearch validate``.
Then the command each pod runs is rendered the way Kubernetes renders it (``$(VAR)`` from the
container's env, the Secret's URL replaced by a test database, the mounted volumes by folders)
and run twice at once, like two pods of the Job; the Slurm script runs twice at once, like two
array tasks, with ``srun`` replaced by a stand-in that runs the step's command. Two things
differ from a cluster: ``--device cuda`` becomes ``cpu``, and the study is a micro one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from storage.artifacts import trial_artifacts
from storage.urls import parse_storage_url
from tests.conftest import MICRO_TOY, REPO, cli_env, deep_update
from tests.postgres_server import Server, fresh_database

KUBERNETES = REPO / "deploy" / "kubernetes"
SLURM_SCRIPT = REPO / "deploy" / "slurm" / "hpsearch.sbatch"
DEFAULT_CONFIG = REPO / "study_configs" / "toy_transformer.yaml"

# Each kind the folder may hold, with its apiVersion.
API_VERSIONS = {
    "Job": "batch/v1",
    "Deployment": "apps/v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "PersistentVolumeClaim": "v1",
}

# A small schema language: a dict names required keys, a one-element list means a non-empty list
# whose items all match it, a type means isinstance, anything else must be equal.
Schema = Any
CONTAINER: Schema = {
    "name": str,
    "image": str,
    "command": [str],
    "args": [str],
    "env": [{"name": str}],
    "volumeMounts": [{"name": str, "mountPath": str}],
}
POD: Schema = {"containers": [CONTAINER], "volumes": [{"name": str}]}
JOB: Schema = {
    "metadata": {"name": str},
    "spec": {
        "completionMode": "Indexed",
        "completions": int,
        "parallelism": int,
        "backoffLimit": int,
        "podFailurePolicy": {"rules": [{"action": str}]},
        "template": {"spec": {**POD, "restartPolicy": "Never"}},
    },
}
DEPLOYMENT: Schema = {"metadata": {"name": str}, "spec": {"template": {"spec": POD}}}

# The micro study (tests/conftest.py MICRO_TOY) laid over a deployed config: 4 one-epoch trials.
N_TRIALS = 4
MICRO_CHANGES: dict[str, Any] = {
    "study": {"n_trials": N_TRIALS},
    "fixed": {**MICRO_TOY["fixed"], "epochs": 1},
    "search": MICRO_TOY["search"],
    "data": MICRO_TOY["data"],
}
TRIAL_LINE = re.compile(r"^\[\s*\d+/\d+\] trial (\d+) ", re.MULTILINE)


def check(node: Any, schema: Schema, where: str) -> list[str]:
    """Where ``node`` breaks ``schema``, one line per problem (empty when it matches)."""
    if isinstance(schema, dict):
        if not isinstance(node, dict):
            return [f"{where}: expected a mapping, got {node!r}"]
        problems = []
        for key, sub in schema.items():
            if key not in node:
                problems.append(f"{where}.{key}: missing")
            else:
                problems += check(node[key], sub, f"{where}.{key}")
        return problems
    if isinstance(schema, list):
        if not isinstance(node, list) or not node:
            return [f"{where}: expected a non-empty list, got {node!r}"]
        return [p for i, item in enumerate(node) for p in check(item, schema[0], f"{where}[{i}]")]
    if isinstance(schema, type):
        ok = isinstance(node, schema) and not (schema is int and isinstance(node, bool))
        return [] if ok else [f"{where}: expected {schema.__name__}, got {node!r}"]
    return [] if node == schema else [f"{where}: expected {schema!r}, got {node!r}"]


def manifests() -> list[tuple[str, dict[str, Any]]]:
    """Every document of every YAML file in deploy/kubernetes, with its file name."""
    documents = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert isinstance(document, dict), f"{path.name}: a document is not a mapping"
            documents.append((path.name, document))
    return documents


def the(kind: str) -> dict[str, Any]:
    found = [document for _, document in manifests() if document["kind"] == kind]
    assert len(found) == 1, f"expected one {kind} in deploy/kubernetes, found {len(found)}"
    return found[0]


def named(kind: str, name: str) -> dict[str, Any]:
    found = [d for _, d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert found, f"no {kind} named {name!r} in deploy/kubernetes"
    return found[0]


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for filename, document in manifests():
        if document["kind"] in ("Job", "Deployment"):
            yield f"{filename} {document['kind']}", document["spec"]["template"]["spec"]


def secret_value(name: str, key: str) -> str:
    secret = named("Secret", name)
    values = {**secret.get("data", {}), **secret.get("stringData", {})}
    assert key in values, f"Secret {name} has no key {key!r}"
    return str(values[key])


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' expansion of ``$(VAR)`` in command and args: ``$$`` escapes, unknown stays."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0).startswith("$$"):
            return match.group(0)[1:]
        return env.get(match.group(1), match.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", replace, text)


def variables(text: str) -> set[str]:
    return set(re.findall(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)", text))


def localize(text: str, folders: Mapping[str, Path]) -> str:
    """A path inside the container -> the folder standing in for its volume here."""
    for mount_path, folder in folders.items():
        if text == mount_path or text.startswith(mount_path.rstrip("/") + "/"):
            return str(folder) + text[len(mount_path.rstrip("/")) :]
    return text


def argv_option(argv: Sequence[str], option: str) -> str:
    """The value of ``--option VALUE`` or ``--option=VALUE`` in ``argv``."""
    for i, arg in enumerate(argv):
        if arg == option:
            return argv[i + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{option} not in {list(argv)}")


def replace_option(argv: Sequence[str], option: str, value: str) -> list[str]:
    result = list(argv)
    for i, arg in enumerate(result):
        if arg == option:
            result[i + 1] = value
        elif arg.startswith(option + "="):
            result[i] = f"{option}={value}"
    return result


def program_path() -> str:
    """The directories holding this interpreter's ``hpsearch`` first, then the usual PATH."""
    here = Path(sys.executable).parent
    assert (here / "hpsearch").exists(), f"no hpsearch beside {sys.executable}: run `make install`"
    return f"{here}{os.pathsep}{os.environ.get('PATH', '')}"


def wait_all(processes: Sequence[subprocess.Popen[str]]) -> list[tuple[int, str, str]]:
    """Exit code, stdout and stderr of each process; none is left running."""
    results = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=300)
            results.append((process.returncode, stdout, stderr))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    return results


def assert_one_shared_study(
    url: str, study_name: str, results: Sequence[tuple[int, str, str]], artifacts: Path
) -> None:
    """Both commands ended 0 and together made one study of N_TRIALS finished trials."""
    assert [code for code, _, _ in results] == [0, 0], results
    trials = optuna.load_study(study_name=study_name, storage=url).get_trials()
    numbers = sorted(t.number for t in trials)
    assert numbers == list(range(len(trials))), f"lost or duplicated trial numbers: {numbers}"
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials), trials
    # One budget: each command counts the finished trials before a trial, so two commands end
    # at n_trials, or one more when both started the last trial at the same moment.
    assert N_TRIALS <= len(trials) <= N_TRIALS + 1, f"{len(trials)} trials for n_trials={N_TRIALS}"
    # Each trial was run by exactly one of the two commands.
    reported = [int(n) for _, stdout, _ in results for n in TRIAL_LINE.findall(stdout)]
    assert sorted(reported) == numbers, [stdout for _, stdout, _ in results]
    # Every trial's files are in the shared artifact folder.
    study = optuna.load_study(study_name=study_name, storage=url)
    for trial in study.get_trials():
        files = trial_artifacts(study, trial)
        assert f"trial-{trial.number}-epochs.csv" in {a.filename for a in files}
        assert all((artifacts / a.artifact_id).is_file() for a in files), (artifacts, files)


# --------------------------------------------------------------------------- Kubernetes


def test_every_manifest_has_a_known_kind_and_a_name() -> None:
    documents = manifests()
    assert {d["kind"] for _, d in documents} == set(API_VERSIONS)
    for filename, document in documents:
        kind = document["kind"]
        assert document["apiVersion"] == API_VERSIONS[kind], (filename, kind)
        assert check(document, {"metadata": {"name": str}}, filename) == []


def test_job_runs_n_gpu_pods_that_survive_preemption() -> None:
    job = the("Job")
    assert check(job, JOB, "Job") == []
    spec = job["spec"]
    assert spec["parallelism"] == spec["completions"] >= 2
    # A preempted or evicted pod is replaced without using up the Job's retries.
    ignored = [r for r in spec["podFailurePolicy"]["rules"] if r["action"] == "Ignore"]
    conditions = [c["type"] for r in ignored for c in r.get("onPodConditions", [])]
    assert "DisruptionTarget" in conditions
    pod = spec["template"]["spec"]
    # Time for a trial to stop between two steps and write its resume state.
    assert pod["terminationGracePeriodSeconds"] >= 60
    (container,) = pod["containers"]
    assert container["command"][:2] == ["hpsearch", "run"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    argv = container["command"] + container["args"]
    assert argv_option(argv, "--device") == "cuda"
    assert argv_option(argv, "--storage") == "$(HPSEARCH_STORAGE)"


def test_pod_templates_refer_only_to_what_is_declared() -> None:
    claims = {
        d["metadata"]["name"]: d for _, d in manifests() if d["kind"] == "PersistentVolumeClaim"
    }
    config_maps = {d["metadata"]["name"] for _, d in manifests() if d["kind"] == "ConfigMap"}
    for where, pod in pod_specs():
        assert check(pod, POD, where) == []
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        for volume in volumes.values():
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, (where, volume)
            elif "persistentVolumeClaim" in volume:
                claim = claims[volume["persistentVolumeClaim"]["claimName"]]
                # Many pods on many nodes write to it at once.
                assert "ReadWriteMany" in claim["spec"]["accessModes"], claim
            else:
                raise AssertionError(f"{where}: unexpected volume {volume}")
        for container in pod["containers"]:
            mounts = {m["name"] for m in container["volumeMounts"]}
            assert mounts <= set(volumes), f"{where}: mounts {mounts - set(volumes)} undeclared"
            env = {variable["name"]: variable for variable in container["env"]}
            for variable in env.values():
                reference = variable.get("valueFrom", {}).get("secretKeyRef")
                if reference:
                    secret_value(reference["name"], reference["key"])  # resolves
                else:
                    assert isinstance(variable["value"], str), variable
            used = {v for arg in container["command"] + container["args"] for v in variables(arg)}
            assert used <= set(env), f"{where}: {used - set(env)} not in the container's env"


def test_secret_is_a_placeholder_postgres_url() -> None:
    url = secret_value("hpsearch-db", "url")
    assert parse_storage_url(url).scheme == "postgresql+psycopg"
    assert ":REPLACE-WITH-PASSWORD@" in url


def test_configmap_holds_the_default_study_with_shared_artifacts(tmp_path: Path) -> None:
    job_pod = the("Job")["spec"]["template"]["spec"]
    (container,) = job_pod["containers"]
    config_path = container["command"][2]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in job_pod["volumes"]}
    config_mount = next(n for n in mounts if "configMap" in volumes[n])
    artifacts_mount = next(n for n in mounts if "persistentVolumeClaim" in volumes[n])
    # The config the command names is a key of the mounted ConfigMap.
    folder, key = config_path.rsplit("/", 1)
    assert folder == mounts[config_mount]
    text = named("ConfigMap", volumes[config_mount]["configMap"]["name"])["data"][key]
    config = yaml.safe_load(text)
    assert "storage" not in config["study"], "the storage comes from --storage (the Secret)"
    artifacts_dir = config["artifacts"]["dir"]
    assert artifacts_dir.startswith(mounts[artifacts_mount] + "/"), "artifacts on the shared volume"
    # The default study otherwise, so that the two stay in step.
    default = yaml.safe_load(DEFAULT_CONFIG.read_text())
    default["study"].pop("storage")
    default["artifacts"]["dir"] = artifacts_dir
    assert config == default
    (tmp_path / key).write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "search", "validate", str(tmp_path / key)],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"dir: {artifacts_dir}" in done.stdout


def test_dockerfile_pins_the_makefiles_torch() -> None:
    pin = re.search(r"torch==([\w.]+)", (REPO / "Makefile").read_text())
    assert pin is not None
    assert f"torch=={pin.group(1)}" in (KUBERNETES / "Dockerfile").read_text()


@pytest.mark.slow
def test_two_job_pods_share_one_study(postgres_url: str, tmp_path: Path) -> None:
    pod = the("Job")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    # A folder here for each volume the container mounts.
    folders = {m["mountPath"]: tmp_path / m["name"] for m in container["volumeMounts"]}
    configs: list[dict[str, Any]] = []
    for mount in container["volumeMounts"]:
        folder = folders[mount["mountPath"]]
        folder.mkdir()
        source = volumes[mount["name"]].get("configMap")
        if source is None:
            continue
        for key, text in named("ConfigMap", source["name"])["data"].items():
            config = deep_update(yaml.safe_load(text), MICRO_CHANGES)
            config["artifacts"]["dir"] = localize(config["artifacts"]["dir"], folders)
            (folder / key).write_text(yaml.safe_dump(config, sort_keys=False))
            configs.append(config)
    (config,) = configs
    # The container's env, its Secret's URL pointing at the test database.
    env: dict[str, str] = {}
    for variable in container["env"]:
        reference = variable.get("valueFrom", {}).get("secretKeyRef")
        if reference:
            assert secret_value(reference["name"], reference["key"]).startswith("postgresql")
            env[variable["name"]] = postgres_url
        else:
            env[variable["name"]] = variable["value"]
    argv = [localize(expand(arg, env), folders) for arg in container["command"] + container["args"]]
    assert argv_option(argv, "--storage") == postgres_url
    argv = replace_option(argv, "--device", "cpu")  # no GPU here
    environment = {**cli_env(), **env, "PATH": program_path()}
    processes = [
        subprocess.Popen(
            argv,
            cwd=tmp_path,
            env={**environment, "JOB_COMPLETION_INDEX": str(index)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(2)
    ]
    results = wait_all(processes)
    artifacts = Path(config["artifacts"]["dir"])
    assert artifacts.is_relative_to(tmp_path), "the config's artifacts are on a mounted volume"
    assert_one_shared_study(postgres_url, config["study"]["name"], results, artifacts)


# --------------------------------------------------------------------------- Slurm


def sbatch_directives() -> dict[str, str]:
    """The ``#SBATCH --key[=value]`` lines before the first command, as {key: value}."""
    directives: dict[str, str] = {}
    for line in SLURM_SCRIPT.read_text().splitlines()[1:]:
        if line and not line.startswith("#"):
            break
        if line.startswith("#SBATCH "):
            key, _, value = line.removeprefix("#SBATCH ").strip().partition("=")
            directives[key] = value
    return directives


def test_sbatch_script_is_an_array_of_requeued_gpu_tasks() -> None:
    assert SLURM_SCRIPT.read_text().startswith("#!/bin/bash\n")
    directives = sbatch_directives()
    assert re.fullmatch(r"0-\d+", directives["--array"]), directives
    assert directives["--gres"] == "gpu:1"
    assert "--requeue" in directives
    assert re.fullmatch(r"(\d+-)?\d{1,2}:\d{2}:\d{2}", directives["--time"]), directives
    # SIGTERM to the job step (no B: prefix, which would signal only the batch shell) early
    # enough for a trial to stop and save its state.
    signal = re.fullmatch(r"TERM@(\d+)", directives["--signal"])
    assert signal is not None and int(signal.group(1)) >= 60, directives["--signal"]
    assert directives["--open-mode"] == "append"  # a requeued task adds to its log
    syntax = subprocess.run(["bash", "-n", str(SLURM_SCRIPT)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr


def slurm_environment(tmp_path: Path, env_file: Path, config: Path) -> dict[str, str]:
    """What an array task sees, with ``srun`` standing in as a plain launcher of its command."""
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir(exist_ok=True)
    srun = bin_folder / "srun"
    srun.write_text(
        "#!/bin/sh\n"
        "# Outside Slurm: drop srun's own options and run the step's command.\n"
        'while [ $# -gt 0 ]; do case "$1" in --*) shift ;; *) break ;; esac; done\n'
        'exec "$@"\n'
    )
    srun.chmod(0o755)
    return {
        **cli_env(),
        "PATH": f"{bin_folder}{os.pathsep}{program_path()}",
        "HPSEARCH_ENV_FILE": str(env_file),
        "HPSEARCH_CONFIG": str(config),
        "HPSEARCH_DEVICE": "cpu",  # no GPU here
    }


def script_default_config() -> Path:
    match = re.search(r'config="\$\{HPSEARCH_CONFIG:-([^}]+)\}"', SLURM_SCRIPT.read_text())
    assert match is not None, "the script names no default config"
    return REPO / match.group(1)


@pytest.mark.slow
def test_two_slurm_array_tasks_share_one_study(
    password_postgres_server: Server, tmp_path: Path
) -> None:
    server = password_postgres_server
    assert server.password
    default = script_default_config()
    config = tmp_path / "study.yaml"
    config.write_text(
        yaml.safe_dump(deep_update(yaml.safe_load(default.read_text()), MICRO_CHANGES))
    )
    with fresh_database(server) as database:
        # The password goes to libpq through PGPASSWORD, never on a command line.
        url = f"postgresql+psycopg://{server.user}@{server.host}:{server.port}/{database}"
        env_file = tmp_path / "hpsearch.env"
        env_file.write_text(f"HPSEARCH_STORAGE={url}\nPGPASSWORD={server.password}\n")
        environment = slurm_environment(tmp_path, env_file, config)
        # The submit folder: tasks run in it, and so does the default artifact folder.
        submit = tmp_path / "submit"
        submit.mkdir()
        processes = [
            subprocess.Popen(
                ["bash", str(SLURM_SCRIPT)],
                cwd=submit,
                env={**environment, "SLURM_ARRAY_TASK_ID": str(task)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for task in range(2)
        ]
        results = wait_all(processes)
        assert all(server.password not in out + err for _, out, err in results)
        name = yaml.safe_load(default.read_text())["study"]["name"]
        # Without artifacts.dir a PostgreSQL study keeps its files in studies/artifacts.
        assert_one_shared_study(
            server.database_url(database), name, results, submit / "studies" / "artifacts"
        )


@pytest.mark.parametrize(
    ("env_text", "message"),
    [
        (None, "no environment file"),
        ("PGPASSWORD=x\n", "must set HPSEARCH_STORAGE"),
        ("HPSEARCH_STORAGE=postgresql+psycopg://hp:Secret-9@db:5432/hp\n", "move it to PGPASSWORD"),
    ],
)
def test_slurm_script_refuses_a_missing_env_file_or_a_password_in_the_url(
    tmp_path: Path, env_text: str | None, message: str
) -> None:
    env_file = tmp_path / "hpsearch.env"
    if env_text is not None:
        env_file.write_text(env_text)
    environment = slurm_environment(tmp_path, env_file, DEFAULT_CONFIG)
    # Were hpsearch started, it would fail on the unreachable host; the script must stop first.
    environment["PATH"] = f"{tmp_path / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin"
    assert shutil.which("hpsearch", path=environment["PATH"]) is None
    done = subprocess.run(
        ["bash", str(SLURM_SCRIPT)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr, done.stderr
    assert "Secret-9" not in done.stderr
