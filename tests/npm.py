"""Node packages for the tests, installed with npm on first use into a cache directory
(kept between runs, ignored by git) and reused afterwards.

`npm_install` skips the test with a reason when Node or npm is missing or the npm
registry cannot be reached, and fails it when npm fails for another reason.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

INSTALL_TIMEOUT_SECONDS = 600

# What npm's output says when the registry cannot be reached.
UNREACHABLE = (
    "ENOTFOUND",
    "EAI_AGAIN",
    "ECONNREFUSED",
    "ECONNRESET",
    "ETIMEDOUT",
    "ENETUNREACH",
    "EHOSTUNREACH",
    "network",
    "proxy",
    "certificate",
)


def install_command(directory: Path, packages: Sequence[str]) -> list[str]:
    """The npm command that installs `packages` into `directory` (printed in messages)."""
    npm = shutil.which("npm") or "npm"
    return [
        npm,
        "install",
        "--prefix",
        str(directory),
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        *packages,
    ]


def npm_install(
    directory: Path, packages: Sequence[str], installed: Sequence[Path], needed_for: str
) -> Path:
    """`directory` with `packages` installed: npm runs unless every path of `installed`
    exists already. Skips (saying what Node is `needed_for`) without Node or npm, or
    when the registry is unreachable."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip(f"Node.js and npm are needed {needed_for} (not found on PATH)")
    if all(path.exists() for path in installed):
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    command = install_command(directory, packages)
    try:
        done = subprocess.run(  # noqa: S603
            command,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(
            f"npm did not install {list(packages)} in {INSTALL_TIMEOUT_SECONDS}s: {command}"
        )
    output = f"{done.stdout}\n{done.stderr}"
    if done.returncode != 0 or not all(path.exists() for path in installed):
        if any(marker.lower() in output.lower() for marker in UNREACHABLE):
            pytest.skip(
                f"npm registry unreachable, cannot install {list(packages)}: {output[-500:]}"
            )
        pytest.fail(f"{' '.join(command)} failed ({done.returncode}):\n{output[-2000:]}")
    return directory
