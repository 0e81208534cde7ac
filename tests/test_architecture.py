"""The import-linter contracts in pyproject.toml hold for `app`, and break on a planted import.

Each planted case copies `app` and pyproject.toml to a temporary directory, appends one
forbidden import to one module and runs `lint-imports` there, so the copy is what is analysed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _contract_name(contract_id: str) -> str:
    """The name of the contract with `contract_id` in pyproject.toml."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for contract in config["tool"]["importlinter"]["contracts"]:
        if contract["id"] == contract_id:
            return str(contract["name"])
    raise LookupError(contract_id)


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `lint-imports` in `cwd` on the `app` package found there, without a cache."""
    env = {**os.environ, "PYTHONPATH": str(cwd), "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(  # noqa: S603 - fixed executable and arguments
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_real_tree_keeps_every_contract() -> None:
    """The working tree's `app` keeps all the contracts."""
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "contract_id"),
    [
        pytest.param(
            "app/core/phone.py", "import app.services.login.service", "layers", id="core->service"
        ),
        pytest.param(
            "app/services/login/service.py",
            "import app.services.verification.repository",
            "domain-verification",
            id="domain->other-domain-internals",
        ),
        pytest.param(
            "app/schemas/users.py",
            "import app.services.users.service",
            "schemas",
            id="schema->service",
        ),
    ],
)
def test_planted_import_breaks_contract(
    tmp_path: Path, module: str, planted: str, contract_id: str
) -> None:
    """A forbidden import appended to a copy of `app` fails `lint-imports`, naming the contract."""
    shutil.copytree(ROOT / "app", tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(f"{target.read_text(encoding='utf-8')}\n{planted}\n", encoding="utf-8")

    result = _lint_imports(tmp_path)

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"{_contract_name(contract_id)} BROKEN" in output
    assert planted.removeprefix("import ") in output
