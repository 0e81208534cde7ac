"""Fixtures of the operations tests: the real server as a subprocess, a fake Twilio
on a local port, a migrated SQLite file, and Prometheus text parsing."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from alembic import command
from tests.conftest import JWT_SECRET, ROOT, alembic_config
from tests.helpers import free_port
from tests.twilio_fixtures import ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID

PYTHON = ROOT / ".venv" / "bin" / "python"
if not PYTHON.exists():  # a venv elsewhere (e.g. the image): the running interpreter
    PYTHON = Path(sys.executable)

STARTUP_TIMEOUT = 45.0
EXIT_TIMEOUT = 30.0
FAKE_TWILIO_CODE = "480913"


# ---------------------------------------------------------------- Prometheus text


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    """Every sample of a /metrics answer, keyed by name and labels."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of one sample, or None when it is not there."""
    return samples.get((name, frozenset(labels.items())))


def matching(samples: Samples, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """Samples of `name` whose labels include `labels`."""
    found = []
    for (sample_name, sample_labels), value in samples.items():
        as_dict = dict(sample_labels)
        if sample_name == name and all(as_dict.get(k) == v for k, v in labels.items()):
            found.append((as_dict, value))
    return found


# ---------------------------------------------------------------- fake Twilio


class FakeTwilio:
    """Twilio Verify on 127.0.0.1: starts answer 201 after `start_delay` seconds, checks
    approve `FAKE_TWILIO_CODE` and answer `pending` for any other code."""

    def __init__(self) -> None:
        self.start_delay = 0.0
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.start_received = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                fields = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                fake.requests.append((self.path, fields))
                if self.path.endswith("/Verifications"):
                    fake.start_received.set()
                    time.sleep(fake.start_delay)
                    status, body = 201, _verification(fields["To"], fields["Channel"], "pending")
                elif self.path.endswith("/VerificationCheck"):
                    verdict = "approved" if fields.get("Code") == FAKE_TWILIO_CODE else "pending"
                    status, body = 200, _verification("+0", "sms", verdict)
                else:
                    status, body = 404, {"code": 20404, "message": "not found", "status": 404}
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _verification(to: str, channel: str, status: str) -> dict[str, Any]:
    return {
        "sid": "VE" + uuid.uuid4().hex,
        "service_sid": SERVICE_SID,
        "account_sid": ACCOUNT_SID,
        "to": to,
        "channel": channel,
        "status": status,
        "valid": status == "approved",
    }


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    """A fresh fake Twilio for one test."""
    fake = FakeTwilio()
    yield fake
    fake.close()


# ---------------------------------------------------------------- the real server


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite file at the head migration, for servers run as subprocesses."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('ops-db') / 'server.db'}"
    command.upgrade(alembic_config(url), "head")
    return url


class Server:
    """`python -m app serve` in a subprocess, its stderr collected line by line."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        full_env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("TWILIO_", "DATABASE_", "RATE_LIMIT_", "LOG_", "TEST_"))
        }
        full_env.update(
            {
                "PYTHONPATH": str(ROOT),
                "PYTHONUNBUFFERED": "1",
                "HOST": "127.0.0.1",
                "PORT": str(self.port),
                "ENVIRONMENT": "test",
                "JWT_SECRET_KEY": JWT_SECRET,
                "LOG_LEVEL": "INFO",
            }
        )
        full_env.update(env)
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self.process = subprocess.Popen(  # noqa: S603
            [str(PYTHON), "-m", "app", "serve"],
            cwd=cwd,
            env=full_env,
            # Its own process group, so that `kill` also ends the workers it forks.
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self._lines.append(line.rstrip("\n"))

    @property
    def lines(self) -> list[str]:
        """Every line the server wrote so far (stdout and stderr)."""
        with self._lock:
            return list(self._lines)

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Wait until /healthz answers; fail with the server's output if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"the server did not answer /healthz within {timeout}s:\n{self.output()}")

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float = 10.0) -> str:
        """The first output line for which `predicate` holds, waiting for it to appear."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                if predicate(line):
                    return line
            if time.monotonic() > deadline:
                pytest.fail(f"no such line within {timeout}s:\n{self.output()}")
            time.sleep(0.05)

    def terminate(self) -> int:
        """SIGTERM, then the exit code (bounded)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=EXIT_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL the server and every worker process it started."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=EXIT_TIMEOUT)
        self._reader.join(timeout=5)


ServerFactory = Callable[..., Server]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """`start_server(ENV=value, ...)`: a running server (ready on /healthz), killed at the end."""
    servers: list[Server] = []

    def factory(**env: str) -> Server:
        server = Server(env, cwd=tmp_path)
        servers.append(server)
        server.wait_ready()
        return server

    yield factory
    for server in servers:
        server.kill()


def twilio_env(fake: FakeTwilio, database_url: str) -> dict[str, str]:
    """Environment for a server that talks to `fake`."""
    return {
        "DATABASE_URL": database_url,
        "VERIFY_PROVIDER": "twilio",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_VERIFY_SERVICE_SID": SERVICE_SID,
        "TWILIO_VERIFY_BASE_URL": fake.base_url,
    }
