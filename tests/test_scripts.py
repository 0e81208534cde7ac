"""The developer scripts: each sets up the `.venv` it runs from, the README's layout
lists every one of them, and `scripts/export-openapi` reports what it wrote."""

from __future__ import annotations

import re
import subprocess
from importlib.metadata import distributions
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPTS = ROOT / "scripts"
# Scripts outside scripts/ that run from .venv too.
OTHER_ENTRY_POINTS = [ROOT / "bench" / "run.sh"]
SETUP = re.compile(r"(?m)^source scripts/_venv\.sh (\S+)$")
VENV_TOOL = re.compile(r"\.venv/bin/([\w.-]+)")


def _entry_scripts() -> list[Path]:
    scripts = [path for path in SCRIPTS.iterdir() if not path.name.startswith("_")]
    return sorted(scripts) + OTHER_ENTRY_POINTS


def _pinned(requirements: Path) -> set[str]:
    """Distribution names pinned in a requirements file, normalised."""
    names = re.findall(r"(?m)^([A-Za-z0-9_.-]+)==", requirements.read_text())
    return {re.sub(r"[-_.]+", "-", name).lower() for name in names}


def _distribution_of(tool: str) -> str | None:
    """The distribution that installs `tool` into bin/ (an entry point or a binary, like
    ruff's); None for python itself."""
    if re.fullmatch(r"python[\d.]*", tool):
        return None
    owners = {
        dist.metadata["Name"]
        for dist in distributions()
        for file in dist.files or []
        if file.parts[-2:] == ("bin", tool)
    }
    assert len(owners) == 1, f"{tool} is installed by {owners or 'nothing'}"
    return re.sub(r"[-_.]+", "-", owners.pop()).lower()


@pytest.mark.parametrize("script", _entry_scripts(), ids=lambda path: path.name)
def test_every_script_sets_up_the_venv_it_runs_from(script: Path) -> None:
    """A fresh clone has no .venv, and `scripts/run` installs only the app's requirements:
    a script that uses a tool from .venv first installs the requirements that pin it."""
    text = script.read_text()
    tools = set(VENV_TOOL.findall(text))
    assert tools, f"{script.name} uses nothing from .venv: say why it needs no set-up"
    setup = SETUP.search(text)
    assert setup, f"{script.name} must `source scripts/_venv.sh <requirements>` first"
    first_use = text.index(".venv/bin/")
    assert setup.start() < first_use, f"{script.name} uses .venv before setting it up"
    pinned = _pinned(ROOT / setup.group(1))
    for tool in sorted(tools):
        distribution = _distribution_of(tool)
        assert distribution is None or distribution in pinned, (
            f"{script.name} runs {tool} ({distribution}), not in {setup.group(1)}"
        )


def test_the_readme_layout_lists_every_script_with_one_line() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = readme.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("scripts/ ")))
    listed: list[str] = []
    for line in lines[start + 1 :]:
        entry = re.match(r"  (\S+)\s{2,}\S", line)
        if not entry:
            break
        listed.append(entry.group(1))

    assert sorted(listed) == sorted(path.name for path in SCRIPTS.iterdir())


def test_export_openapi_reports_the_bytes_it_wrote(tmp_path: Path) -> None:
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("no .venv: the script would first install every requirement")
    target = tmp_path / "openapi.json"

    result = subprocess.run(  # noqa: S603 - the project's own script
        [str(SCRIPTS / "export-openapi"), "openapi.json"],
        cwd=tmp_path,  # a relative FILE is where the script was started
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    data = target.read_bytes()
    # The document holds non-ASCII text (e.g. "…"), so characters and bytes differ.
    assert len(data) != len(data.decode("utf-8"))
    assert result.stdout == f"wrote {target} ({len(data)} bytes)\n"
    check = subprocess.run(  # noqa: S603 - the project's own script
        [str(SCRIPTS / "export-openapi"), "--check", str(target)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert check.returncode == 0, check.stderr
