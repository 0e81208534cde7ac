"""Highly available Redis for the tests: a 3-master Cluster and a Sentinel setup, started
from the machine's `redis-server` in a temporary directory, on ports that are free when
the test process starts (so two runs, or two mutants under mutation testing, never meet
on one port)."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# A cluster node also listens on its port + 10000 (the cluster bus).
CLUSTER_BUS_OFFSET = 10000


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out to outgoing connections: a port at or above
    it may be taken by any client socket between choosing it and a server binding it."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_LOWEST_PORT = 10000
_EPHEMERAL_LOW = _ephemeral_low()
_taken: set[int] = set()


def _free_ports(count: int, *, with_bus: bool = False) -> tuple[int, ...]:
    """`count` ports nobody listens on now (and their bus ports, for cluster nodes), below
    the kernel's ephemeral range and apart from every port chosen before in this process."""
    highest = _EPHEMERAL_LOW - (CLUSTER_BUS_OFFSET if with_bus else 0)
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randrange(_LOWEST_PORT, highest)
        wanted = (port, port + CLUSTER_BUS_OFFSET) if with_bus else (port,)
        if not _taken.intersection(wanted) and all(_is_free(p) for p in wanted):
            _taken.update(wanted)
            chosen.append(port)
    return tuple(chosen)


CLUSTER_PORTS = _free_ports(3, with_bus=True)
MASTER_PORT, REPLICA_PORT, SENTINEL_PORT = _free_ports(3)
PROTECTED_MASTER_PORT, PROTECTED_SENTINEL_PORT = _free_ports(2)
MASTER_PASSWORD, SENTINEL_PASSWORD = "master-s3cret", "sentinel-s3cret"
SERVICE = "phoneauth"
HOST = "127.0.0.1"


def binaries() -> tuple[str, str]:
    """`redis-server` and `redis-cli`; the test is skipped without them."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        pytest.skip("redis-server or redis-cli is not installed: no Cluster or Sentinel to test")
    return server, cli


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll `condition` until it holds; fail saying `what` did not happen in time."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen in {timeout:.0f}s")
        time.sleep(0.05)


def client(port: int, password: str | None = None) -> redis.Redis:
    """A plain client of one server."""
    return redis.Redis(
        host=HOST, port=port, password=password, socket_timeout=2, socket_connect_timeout=2
    )


class Servers:
    """Redis processes started by a test session, stopped together."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, port: int, *args: str) -> None:
        """Start a server (or a sentinel, given its config file) on `port`."""
        if _answers(port):
            pytest.fail(f"port {port} already has a Redis: stop it (a run killed before teardown?)")
        directory = self.directory / str(port)
        directory.mkdir()
        command = [self.binary, *args, "--port", str(port), "--bind", HOST]
        command += ["--save", "", "--appendonly", "no", "--dir", str(directory)]
        with (directory / "log").open("wb") as log:  # the server keeps its own copy
            self.processes.append(
                subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
            )
        wait_for(f"redis on port {port} answering", lambda: _answers(port), 10)

    def stop(self) -> None:
        """Stop every process."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _answers(port: int) -> bool:
    # Asked once: redis-py's own retries, with their backoff, would take seconds to say no.
    once = redis.Redis(
        host=HOST,
        port=port,
        socket_timeout=2,
        socket_connect_timeout=2,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        return bool(once.ping())
    except redis.AuthenticationError:
        return True  # a server with a password answers, refusing
    except redis.RedisError:
        return False
    finally:
        once.close()


@contextmanager
def running_cluster(directory: Path) -> Iterator[str]:
    """Three masters on `CLUSTER_PORTS` in one cluster; yields its `redis+cluster://` URL."""
    server, cli = binaries()
    servers = Servers(server, directory)
    try:
        for port in CLUSTER_PORTS:
            servers.start(
                port,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(directory / f"nodes-{port}.conf"),
                "--cluster-node-timeout",
                "2000",
            )
        subprocess.run(  # noqa: S603
            [
                cli,
                "--cluster",
                "create",
                *(f"{HOST}:{p}" for p in CLUSTER_PORTS),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        for port in CLUSTER_PORTS:
            wait_for(
                f"cluster state ok on {port}",
                lambda port=port: client(port).cluster("info")["cluster_state"] == "ok",  # type: ignore[misc]
            )
        yield "redis+cluster://" + ",".join(f"{HOST}:{p}" for p in CLUSTER_PORTS)
    finally:
        servers.stop()


@contextmanager
def running_sentinel(directory: Path) -> Iterator[str]:
    """A master, its replica and one sentinel watching them (`MASTER_PORT`, `REPLICA_PORT`,
    `SENTINEL_PORT`);
    yields the `redis+sentinel://` URL."""
    server, _ = binaries()
    servers = Servers(server, directory)
    try:
        servers.start(MASTER_PORT)
        servers.start(REPLICA_PORT, "--replicaof", HOST, str(MASTER_PORT))
        wait_for(
            "the replica's link to its master",
            lambda: client(REPLICA_PORT).info("replication")["master_link_status"] == "up",
        )
        config = directory / "sentinel.conf"
        config.write_text(
            f"sentinel monitor {SERVICE} {HOST} {MASTER_PORT} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 2000\n"
            # A sentinel starts no new failover of a master within twice this of the last:
            # short, so that one test's failover does not hold up the next one's.
            f"sentinel failover-timeout {SERVICE} 4000\n"
        )
        servers.start(SENTINEL_PORT, str(config), "--sentinel")
        wait_for("the sentinel seeing the replica", lambda: replicas_seen(SENTINEL_PORT))
        yield f"redis+sentinel://{HOST}:{SENTINEL_PORT}/{SERVICE}"
    finally:
        servers.stop()


def replicas_seen(sentinel_port: int) -> bool:
    """Whether the sentinel sees a replica that is up."""
    replicas = client(sentinel_port).sentinel_slaves(SERVICE)
    return any(not r["is_sdown"] and not r["is_disconnected"] for r in replicas)


def master_port(sentinel_port: int = SENTINEL_PORT) -> int:
    """The port of the master the sentinel names now."""
    _, port = client(sentinel_port).sentinel_get_master_addr_by_name(SERVICE)
    return int(port)


@contextmanager
def running_protected_sentinel(directory: Path) -> Iterator[None]:
    """A master with `MASTER_PASSWORD` and a sentinel with `SENTINEL_PASSWORD` watching it
    (`PROTECTED_MASTER_PORT`, `PROTECTED_SENTINEL_PORT`), as `SERVICE`."""
    server, _ = binaries()
    servers = Servers(server, directory)
    try:
        servers.start(PROTECTED_MASTER_PORT, "--requirepass", MASTER_PASSWORD)
        config = directory / "sentinel.conf"
        config.write_text(
            f"sentinel monitor {SERVICE} {HOST} {PROTECTED_MASTER_PORT} 1\n"
            f"sentinel auth-pass {SERVICE} {MASTER_PASSWORD}\n"
            f"requirepass {SENTINEL_PASSWORD}\n"
        )
        servers.start(PROTECTED_SENTINEL_PORT, str(config), "--sentinel")
        sentinel = client(PROTECTED_SENTINEL_PORT, SENTINEL_PASSWORD)

        def master_up() -> bool:
            master: Any = sentinel.sentinel_master(SERVICE)
            return bool(master["flags"] == "master")

        wait_for("the sentinel naming the master up", master_up)
        yield
    finally:
        servers.stop()
