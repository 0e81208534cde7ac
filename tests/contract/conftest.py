"""Stoplight Prism serving Twilio's Verify spec, for the conformance tests.

Prism (`@stoplight/prism-cli`) is installed with npm into `.cache/prism/` at the
project root (or `$PRISM_CACHE_DIR`) the first time and reused afterwards. The
tests skip with a reason when Node or npm is missing or the npm registry cannot
be reached. Each Prism runs with `--errors`, so a request that breaks the spec
gets an error answer (422, 401, 415) instead of an example.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from tests.helpers import free_port
from tests.npm import npm_install

SPEC = Path(__file__).resolve().parent / "twilio_verify_v2.yaml"
PRISM_PACKAGE = "@stoplight/prism-cli@5"
START_TIMEOUT_SECONDS = 60

START = "/v2/Services/{ServiceSid}/Verifications"
CHECK = "/v2/Services/{ServiceSid}/VerificationCheck"


def prism_dir() -> Path:
    """Where npm installs Prism: kept between runs, ignored by git."""
    return Path(os.environ.get("PRISM_CACHE_DIR") or ROOT / ".cache" / "prism")


def prism_entry(directory: Path) -> Path:
    return directory / "node_modules" / "@stoplight" / "prism-cli" / "dist" / "index.js"


@pytest.fixture(scope="session")
def prism_cli() -> Path:
    """The Prism CLI script, installed on first use; skips when that is impossible."""
    directory = npm_install(
        prism_dir(),
        [PRISM_PACKAGE],
        [prism_entry(prism_dir())],
        needed_for="to run Stoplight Prism",
    )
    return prism_entry(directory)


@dataclass
class Prism:
    """A running Prism mock."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    # Prism was started in its own process group: end that group, which is ours alone.
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def start_prism(cli: Path, spec: Path, workdir: Path) -> Prism:
    """Start `prism mock --errors` on `spec` and wait until it accepts connections."""
    node = shutil.which("node") or "node"
    port = free_port()
    log = workdir / f"prism-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603
            [node, str(cli), "mock", "--errors", "-h", "127.0.0.1", "-p", str(port), str(spec)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    prism = Prism(url=f"http://127.0.0.1:{port}", process=process, log=log)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Prism exited with {process.returncode}:\n{prism.log_text()}")
        if _listening(port) and b"Prism is listening" in log.read_bytes():
            return prism
        time.sleep(0.2)
    _stop(process)
    pytest.fail(
        f"Prism did not listen on port {port} in {START_TIMEOUT_SECONDS}s:\n{prism.log_text()}"
    )


@pytest.fixture(scope="session")
def prism(prism_cli: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prism]:
    """Prism serving the unmodified copy of Twilio's spec."""
    server = start_prism(prism_cli, SPEC, tmp_path_factory.mktemp("prism"))
    yield server
    _stop(server.process)


# --- a copy of the spec with the examples Twilio's spec lacks --------------------------------

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "code": {"type": "integer", "format": "int32"},
        "message": {"type": "string"},
        "more_info": {"type": "string"},
        "status": {"type": "integer", "format": "int32"},
    },
}


def twilio_error(code: int, status: int, message: str) -> dict[str, Any]:
    return {
        "value": {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
    }


# status -> example name -> example, added to the start operation
START_ERROR_EXAMPLES: dict[str, dict[str, Any]] = {
    "400": {
        "invalidTo": twilio_error(21211, 400, "Invalid parameter `To`"),
        "invalidParameter": twilio_error(60200, 400, "Invalid parameter"),
        "trialUnverified": twilio_error(21608, 400, "The number is unverified"),
        "channelDisabled": twilio_error(60223, 400, "Delivery channel disabled"),
        "geoNotEnabled": twilio_error(21408, 400, "Permission to send an SMS has not been enabled"),
        "notMobile": twilio_error(21614, 400, "'To' number is not a valid mobile number"),
    },
    "401": {"authFailed": twilio_error(20003, 401, "Authenticate")},
    "403": {
        "landline": twilio_error(60205, 403, "SMS is not supported by landline phone number"),
        "fraudGuard": twilio_error(60410, 403, "Verification delivery attempt blocked"),
        "suspectedFraud": twilio_error(60412, 403, "Suspected fraud"),
        "geoBlocked": twilio_error(60605, 403, "Verification delivery to this country is blocked"),
    },
    "404": {"serviceNotFound": twilio_error(20404, 404, "The requested resource was not found")},
    "503": {"serviceUnavailable": twilio_error(20503, 503, "Service unavailable")},
}
START_429_EXAMPLES: dict[str, Any] = {
    "maxSendAttempts": twilio_error(60203, 429, "Max send attempts reached"),
}
CHECK_ERROR_EXAMPLES: dict[str, dict[str, Any]] = {
    "404": {
        "verificationNotFound": twilio_error(20404, 404, "The requested resource was not found")
    },
    "429": {
        "maxCheckAttempts": twilio_error(60202, 429, "Max check attempts reached"),
        "tooManyConcurrent": twilio_error(20429, 429, "Too many requests"),
    },
    "503": {"serviceUnavailable": twilio_error(20503, 503, "Service unavailable")},
}
WRONG_CODE_EXAMPLE = "verificationCheckPending"


def _error_response(examples: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": ERROR_SCHEMA, "examples": examples}},
    }


def extended_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Twilio's spec plus error examples and a wrong-code (pending) check example."""
    spec = copy.deepcopy(spec)
    start = spec["paths"][START]["post"]["responses"]
    for status, examples in START_ERROR_EXAMPLES.items():
        start[status] = _error_response(examples, f"Twilio error {status}")
    start["429"]["content"]["application/json"]["examples"].update(START_429_EXAMPLES)

    check = spec["paths"][CHECK]["post"]["responses"]
    for status, examples in CHECK_ERROR_EXAMPLES.items():
        check[status] = _error_response(examples, f"Twilio error {status}")
    ok = check["200"]["content"]["application/json"]["examples"]
    (approved,) = ok.values()
    ok[WRONG_CODE_EXAMPLE] = {"value": {**approved["value"], "status": "pending", "valid": False}}
    return spec


@pytest.fixture(scope="session")
def prism_extended(prism_cli: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prism]:
    """Prism serving a copy of the spec written at test time with the extra examples."""
    workdir = tmp_path_factory.mktemp("prism-extended")
    spec = extended_spec(yaml.safe_load(SPEC.read_text()))
    path = workdir / "twilio_verify_v2_extended.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    server = start_prism(prism_cli, path, workdir)
    yield server
    _stop(server.process)
