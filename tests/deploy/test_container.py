"""The image builds, migrates a database, serves a login and stops cleanly.

Needs `podman` (skipped without it, or when `SKIP_CONTAINER_TESTS` gives a reason)
and `TEST_DATABASE_URL` pointing at PostgreSQL (the container reaches it over the
host's network). The test builds the image from the Dockerfile, runs `python -m app
migrate` in it against a database made for the test, starts the service
read-only as the console provider, logs in with the code from the container's log,
checks the HEALTHCHECK and stops it with SIGTERM.
Containers, the image and the database are removed however the test ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import JWT_SECRET, ROOT
from tests.helpers import free_port

pytestmark = pytest.mark.container

PODMAN = shutil.which("podman")
# Written by the machine's container set-up: pip in RUN steps uses the host's indexes.
BUILD_FLAGS = Path("/etc/containers/build-flags")
IMAGE = "localhost/phone-auth:container-test"
BUILD_TIMEOUT = 900
RUN_TIMEOUT = 120
READY_TIMEOUT = 60
STOP_TIMEOUT = 40
PHONE = "+996555123456"
CODE_IN_LOG = re.compile(r"Console provider \(development only\): code (\d{6}) for")


def podman(*args: str, timeout: float = RUN_TIMEOUT, check: bool = True) -> str:
    """Run podman, return its stdout; a failure shows podman's output."""
    assert PODMAN is not None
    result = subprocess.run(  # noqa: S603 - fixed executable, arguments from this test
        [PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"podman {shlex.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        )
    return result.stdout


def _in_thread(coro_fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine function on a loop of its own, away from pytest-asyncio's loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coro_fn()).result(timeout=60)


def _admin(database_url: str, statement: str) -> None:
    import asyncpg

    dsn = make_url(database_url).set(drivername="postgresql")

    async def run() -> None:
        connection = await asyncpg.connect(dsn.render_as_string(hide_password=False))
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    _in_thread(run)


@pytest.fixture(scope="module")
def postgres_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL", "")
    if PODMAN is None:
        pytest.skip("podman is not installed: the image cannot be built here")
    if reason := os.environ.get("SKIP_CONTAINER_TESTS"):
        pytest.skip(reason)
    if not url.startswith("postgresql"):
        pytest.skip("TEST_DATABASE_URL (PostgreSQL) is not set: the container needs a database")
    return url


@pytest.fixture(scope="module")
def container_database(postgres_url: str) -> Iterator[str]:
    """A database of its own, so the suite's test database is left alone."""
    name = f"phone_auth_container_{secrets.token_hex(4)}"
    _admin(postgres_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def image(postgres_url: str) -> Iterator[str]:
    """The image built from the Dockerfile (removed afterwards)."""
    flags = shlex.split(BUILD_FLAGS.read_text()) if BUILD_FLAGS.exists() else []
    try:
        podman("build", "--format", "docker", *flags, "-t", IMAGE, str(ROOT), timeout=BUILD_TIMEOUT)
        yield IMAGE
    finally:
        podman("rmi", "--force", IMAGE, check=False)


@pytest.fixture
def container_name() -> Iterator[str]:
    """A name for the test's service container, removed at the end whatever happened."""
    name = f"phone-auth-test-{secrets.token_hex(4)}"
    try:
        yield name
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)


def _run_args(database_url: str) -> list[str]:
    """How Kubernetes runs the pods: read-only root, /tmp writable, no capabilities."""
    return [
        "--network",
        "host",
        "--read-only",
        "--tmpfs",
        "/tmp",  # noqa: S108 - the container's own tmpfs
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "-e",
        f"DATABASE_URL={database_url}",
        "-e",
        f"JWT_SECRET_KEY={JWT_SECRET}",
    ]


def test_image_metadata(image: str) -> None:
    (config,) = json.loads(podman("image", "inspect", image))
    assert config["Config"]["User"] == "10001:10001"
    assert "8000/tcp" in config["Config"]["ExposedPorts"]
    assert config["Config"]["Entrypoint"] == ["python", "-m", "app"]
    assert config["Config"]["Cmd"] == ["serve"]
    # podman shows the HEALTHCHECK beside Config, docker inside it.
    healthcheck = config.get("Healthcheck") or config["Config"]["Healthcheck"]
    assert "/healthz" in " ".join(healthcheck["Test"])
    env = dict(item.split("=", 1) for item in config["Config"]["Env"])
    assert env["ENVIRONMENT"] == "production"
    assert env["LOG_FORMAT"] == "json"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["DATABASE_URL"].startswith("sqlite+aiosqlite:////tmp/")
    # The Deployment's preStop hook runs `sleep`; the tests, caches and secrets stay out.
    listing = podman(
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        image,
        "-c",
        "command -v sleep >/dev/null && ls -A /app",
    )
    assert listing.split() == ["alembic", "alembic.ini", "app"]


def _wait_ready(base: str, name: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        state = podman("inspect", "--format", "{{.State.Running}}", name).strip()
        if state != "true":
            pytest.fail(f"the container stopped before it was ready:\n{podman('logs', name)}")
        try:
            answer = httpx.get(f"{base}/readyz", timeout=2)
            if answer.status_code == 200:
                return
            last = f"{answer.status_code} {answer.text}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.5)
    pytest.fail(f"/readyz not 200 within {READY_TIMEOUT} s (last: {last})\n{podman('logs', name)}")


def _logs(name: str) -> str:
    assert PODMAN is not None
    result = subprocess.run(  # noqa: S603
        [PODMAN, "logs", name], capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )
    return result.stdout + result.stderr


def test_migrate_serve_login_and_stop(
    image: str, container_database: str, container_name: str
) -> None:
    run_args = _run_args(container_database)

    # The migration Job: the same image's migrate command, from any working directory.
    podman("run", "--rm", *run_args, "--workdir", "/", image, "migrate")
    # The retention CronJob's command works on the migrated schema.
    podman("run", "--rm", *run_args, image, "purge-verifications")
    # The sync CronJob's command runs in the image (no Twilio credentials: nothing to sync).
    podman("run", "--rm", *run_args, image, "sync-attempts")

    port = free_port()
    podman(
        "run",
        "--detach",
        "--name",
        container_name,
        *run_args,
        "-e",
        "HOST=127.0.0.1",
        "-e",
        f"PORT={port}",
        "-e",
        "ENVIRONMENT=development",
        "-e",
        "VERIFY_PROVIDER=console",
        "-e",
        "GRACEFUL_SHUTDOWN_SECONDS=5",
        image,
    )
    base = f"http://127.0.0.1:{port}"
    _wait_ready(base, container_name)

    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        sent = http.post("/api/v1/auth/send-verification", json={"phone": PHONE})
        assert sent.status_code == 200, sent.text
        deadline = time.monotonic() + 10
        while not (match := CODE_IN_LOG.search(_logs(container_name))):
            assert time.monotonic() < deadline, "no console code in the container's log"
            time.sleep(0.2)
        verified = http.post(
            "/api/v1/auth/verify-code", json={"phone": PHONE, "verification_code": match[1]}
        )
        assert verified.status_code == 200, verified.text
        token = verified.json()["access_token"]
        me = http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        assert me.json()["phone"] == PHONE
        metrics = http.get("/metrics")
        assert metrics.status_code == 200
        assert "# TYPE" in metrics.text

    # The image's HEALTHCHECK (exit 0 = healthy).
    podman("healthcheck", "run", container_name)

    # LOG_FORMAT=json from the image: one JSON object per line.
    lines = [line for line in _logs(container_name).splitlines() if line.startswith("{")]
    assert lines
    assert all("message" in json.loads(line) for line in lines)

    # SIGTERM: uvicorn drains and the process exits 0 well before podman would SIGKILL.
    started = time.monotonic()
    podman("stop", "--time", "30", container_name, timeout=STOP_TIMEOUT)
    assert time.monotonic() - started < 25
    exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", container_name).strip()
    assert exit_code == "0", _logs(container_name)
    assert "Stopped: HTTP client and database pool closed" in _logs(container_name)
