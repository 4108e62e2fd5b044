"""Two hosts, one study: workers in two network namespaces, through the proxy and PostgreSQL.

The test builds its own small network on this machine with ``ip netns`` and a bridge: the
"server" side (PostgreSQL, the proxy) listens on the bridge's address in the root namespace;
each "host" is a namespace whose only way out is its veth cable to that bridge. Nothing leaves
the addresses made here. It needs root and iproute2; without them it skips, except under CI.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tests.conftest import MICRO_TOY, cli_env, deep_update
from tests.postgres_server import Server, fresh_database, self_started_server
from tests.servers import unavailable
from tests.test_proxy import proxy


@dataclass(frozen=True)
class Network:
    server_address: str  # the bridge's address in the root namespace
    hosts: tuple[str, ...]  # namespace names


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@contextlib.contextmanager
def two_hosts() -> Iterator[Network]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        unavailable("network namespace", "making network namespaces needs root and iproute2 (`ip`)")
    tag = secrets.token_hex(3)
    subnet = f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(250)}"
    bridge, hosts = f"hpbr{tag}", (f"hpa{tag}", f"hpb{tag}")
    made: list[tuple[str, ...]] = []
    try:
        _ip("link", "add", bridge, "type", "bridge")
        made.append(("link", "del", bridge))
        _ip("addr", "add", f"{subnet}.1/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for number, host in enumerate(hosts, start=2):
            _ip("netns", "add", host)
            made.append(("netns", "del", host))
            outside, inside = f"hpv{tag}{number}", f"hpi{tag}{number}"
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            made.append(("link", "del", outside))
            _ip("link", "set", outside, "master", bridge, "up")
            _ip("link", "set", inside, "netns", host)
            _ip("-n", host, "addr", "add", f"{subnet}.{number}/24", "dev", inside)
            _ip("-n", host, "link", "set", inside, "up")
            _ip("-n", host, "link", "set", "lo", "up")
    except RuntimeError as e:
        for command in reversed(made):
            subprocess.run(["ip", *command], capture_output=True, timeout=30)
        unavailable("network namespace", f"cannot make test hosts with ip netns: {e}")
    try:
        yield Network(f"{subnet}.1", hosts)
    finally:
        for command in reversed(made):
            subprocess.run(["ip", *command], capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    with two_hosts() as made:
        yield made


@pytest.fixture(scope="module")
def shared_postgres(network: Network) -> Iterator[Server]:
    """A PostgreSQL server the namespaces reach on the bridge's address."""
    subnet = network.server_address.rsplit(".", 1)[0] + ".0/24"
    with self_started_server(listen=(network.server_address,), allow_network=subnet) as server:
        yield server


def on_host(host: str, *args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["ip", "netns", "exec", host, sys.executable, "-m", "search", *args],
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("through", ["proxy", "postgresql"])
def test_workers_on_two_hosts_run_one_study(
    network: Network, shared_postgres: Server, tmp_path: Path, through: str
) -> None:
    data = deep_update(
        MICRO_TOY,
        {
            "study": {"n_trials": 4, "heartbeat_interval": 1, "heartbeat_grace": 2},
            "fixed": {"epochs": 1},
            "artifacts": {"dir": str(tmp_path / "artifacts")},  # the shared volume
        },
    )
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    with fresh_database(shared_postgres) as name:
        database = shared_postgres.database_url(name)
        with contextlib.ExitStack() as stack:
            if through == "proxy":
                url = stack.enter_context(proxy(database, tmp_path, host=network.server_address))
            else:
                url = database
            commands = [
                on_host(host, "run", str(config), "--storage", url, cwd=tmp_path)
                for host in network.hosts
            ]
            outputs = [command.communicate(timeout=300) for command in commands]
        for command, (out, err) in zip(commands, outputs, strict=True):
            assert command.returncode == 0, err
            assert err == ""
            assert "study 'micro' on" in out
        trials = optuna.load_study(study_name="micro", storage=database).get_trials()
    assert sorted(t.number for t in trials) == list(range(len(trials))), "no lost or duplicates"
    finished = [t for t in trials if t.state == TrialState.COMPLETE]
    # Two commands share the budget; each may start one trial past it (docs/architecture.md).
    assert 4 <= len(finished) <= 6 and len(finished) == len(trials)
    assert all(len(t.user_attrs["epochs"]) == 1 for t in trials)


@pytest.mark.slow
def test_a_test_host_cannot_reach_the_servers_loopback(network: Network, tmp_path: Path) -> None:
    """The namespaces really are other hosts: the root namespace's 127.0.0.1 is not theirs."""
    with proxy(f"sqlite:///{tmp_path / 'hp.db'}", tmp_path) as url:  # on 127.0.0.1
        listed = on_host(network.hosts[0], "list", "--storage", url, cwd=tmp_path)
        out, err = listed.communicate(timeout=60)
    assert listed.returncode == 2, (out, err)
    assert "no storage proxy answers at" in err
