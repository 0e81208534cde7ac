"""The README stays true: its curl walkthrough runs against the app with the outputs it
shows, its status table lists every status the API documents, and its settings table
and `.env.example` name every setting.

The walkthrough's blocks follow an HTML comment `<!-- checked: … -->`. Each command
is a `curl` (optionally `| tee FILE`) or `NAME=$(jq -r .field FILE)`; the `# ` lines
right under a command are its output. Words are expanded by bash, as in the reader's
shell; curl and jq themselves are played by the test, so neither needs installing.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pydantic import AliasChoices

from app.core.config import Settings
from tests.conftest import ROOT, ClientFactory

README = ROOT / "README.md"
WALKTHROUGH = "<!-- checked: walkthrough -->"
AFTER_LOGIN = "<!-- checked: after the walkthrough's login -->"
CODE_IN_LOG = re.compile(r"\bcode (\d+)\b")
JQ_LINE = re.compile(r"([A-Z_]+)=\$\(jq -r \.([a-z_]+) (\S+)\)")
TEE = re.compile(r"\s*\|\s*tee (\S+)$")
# Values that depend on the database rather than on the service: compared by type.
VARYING = frozenset({"id"})
BASH = shutil.which("bash") or "/bin/bash"


def _section(text: str, heading: str) -> str:
    """The lines under a Markdown heading, up to the next heading of its level or above
    (code blocks, whose `#` lines are comments, are skipped over)."""
    level = len(heading.split(" ")[0])
    lines = text.splitlines()
    start = lines.index(heading) + 1
    in_code = False
    for end in range(start, len(lines)):
        line = lines[end]
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and re.match(rf"#{{1,{level}}} ", line):
            return "\n".join(lines[start:end])
    return "\n".join(lines[start:])


def _table_first_cells(section: str) -> list[str]:
    return [
        line.split("|")[1].strip()
        for line in section.splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]


# ---------------------------------------------------------------- the walkthrough


@dataclass
class Step:
    """One command of a block and the output the README shows under it."""

    command: str
    shown: list[str] = field(default_factory=list)


def checked_block(marker: str) -> list[Step]:
    """The commands of the ```sh block that follows `marker` in the README."""
    text = README.read_text(encoding="utf-8")
    assert marker in text, f"the README lost its checked block {marker}"
    after = text[text.index(marker) + len(marker) :].lstrip("\n")
    assert after.startswith("```sh\n"), f"{marker} must sit right above a ```sh block"
    body = after[len("```sh\n") : after.index("\n```", len("```sh"))]
    steps: list[Step] = []
    last: Step | None = None
    lines = iter(body.splitlines())
    for line in lines:
        if not line.strip():
            last = None  # a comment after a blank line is prose, not output
        elif line.startswith("#"):
            if last is not None:
                last.shown.append(line[1:].strip())
        else:
            command = line
            while command.endswith("\\"):
                command = command[:-1] + next(lines).strip()
            last = Step(command)
            steps.append(last)
    return steps


@dataclass
class Shell:
    """Runs the walkthrough's commands against the app: bash expands the words, the
    test plays curl (the options the README uses) and `jq -r .field`."""

    client: httpx.AsyncClient
    caplog: pytest.LogCaptureFixture
    variables: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    async def run(self, command: str) -> str:
        """Run one command and return what it prints."""
        if match := JQ_LINE.fullmatch(command):
            name, key, file = match.groups()
            value = json.loads(self.files[file])[key]
            assert isinstance(value, str), command
            self.variables[name] = value
            return ""
        tee = TEE.search(command)
        words = self._expand(command[: tee.start()] if tee else command)
        assert words[0] == "curl", f"the walkthrough test runs only curl and jq: {command}"
        output = await self._curl(words[1:])
        if tee:
            self.files[tee.group(1)] = output
        return output

    def _expand(self, command: str) -> list[str]:
        """The words bash makes of `command`, with the walkthrough's variables set."""
        result = subprocess.run(  # noqa: S603 - the README's own commands, printed, not run
            [BASH, "-c", f"printf '%s\\0' {command}"],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **self.variables},
            capture_output=True,
            check=True,
            text=True,
        )
        return result.stdout.split("\0")[:-1]

    async def _curl(self, args: list[str]) -> str:
        method: str | None = None
        headers: dict[str, str] = {}
        data: str | None = None
        write_out = ""
        url = None
        options = iter(args)
        for arg in options:
            if arg == "-s":
                continue
            if arg == "-X":
                method = next(options)
            elif arg == "-H":
                name, _, value = next(options).partition(":")
                headers[name.strip()] = value.strip()
            elif arg == "-d":
                data = next(options)
            elif arg == "-w":
                write_out = next(options)
            elif arg.startswith("-"):
                raise AssertionError(f"curl option {arg} is not played by this test")
            else:
                url = arg
        assert url is not None, args
        assert url.startswith("localhost:8000/"), url
        path = url.removeprefix("localhost:8000")
        if data is not None:
            # What curl does with -d: POST, and a form's content type unless one is given.
            method = method or "POST"
            if not any(name.lower() == "content-type" for name in headers):
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = self._with_logged_code(path, data)
        response = await self.client.request(
            method or "GET",
            path,
            headers=headers,
            content=None if data is None else data.encode(),
        )
        written = write_out.replace("%{http_code}", str(response.status_code))
        return response.text + written.replace("\\n", "\n")

    def _with_logged_code(self, path: str, data: str) -> str:
        """The reader types the code from the log where the README shows an example."""
        if not path.endswith("/verify-code"):
            return data
        body = json.loads(data)
        assert re.fullmatch(r"\d{6}", body["verification_code"]), "show a 6-digit code"
        codes = [
            match.group(1)
            for record in self.caplog.records
            if record.levelno == logging.WARNING
            for match in [CODE_IN_LOG.search(record.getMessage())]
            if match
        ]
        assert codes, "the console provider logged no code"
        return json.dumps({**body, "verification_code": codes[-1]})


def assert_shown(shown: Any, actual: Any, where: str) -> None:
    """`actual` has the shape and values the README shows; `…` in a shown string stands
    for any text there."""
    if isinstance(shown, dict):
        assert isinstance(actual, dict), where
        assert list(actual) == list(shown), f"{where}: fields {list(actual)}"
        for key in shown:
            if key in VARYING:
                assert type(actual[key]) is type(shown[key]), f"{where}.{key}"
            else:
                assert_shown(shown[key], actual[key], f"{where}.{key}")
    elif isinstance(shown, str) and "…" in shown:
        prefix, _, suffix = shown.partition("…")
        assert isinstance(actual, str), where
        assert actual.startswith(prefix), f"{where}: {actual!r}"
        assert actual.endswith(suffix), f"{where}: {actual!r}"
        assert len(actual) > len(prefix) + len(suffix), f"{where}: {actual!r}"
    else:
        assert actual == shown, f"{where}: {actual!r}"


def check_output(step: Step, output: str) -> None:
    """What `step` printed is what the README shows under it."""
    assert step.shown, f"the README shows no output for: {step.command}"
    try:
        actual = json.loads(output)
    except ValueError:
        raise AssertionError(f"{step.command} printed {output!r}") from None
    assert_shown(json.loads(" ".join(step.shown)), actual, step.command)


async def run_checked(shell: Shell, steps: list[Step]) -> None:
    """Run `steps` in order; every curl's output must match what the README shows."""
    for step in steps:
        output = await shell.run(step.command)
        if not JQ_LINE.fullmatch(step.command):
            check_output(step, output)


def login_steps(steps: list[Step]) -> list[Step]:
    """The walkthrough up to the capture of the tokens after verify-code."""
    captures = [i for i, step in enumerate(steps) if JQ_LINE.fullmatch(step.command)]
    first = captures[0]
    end = first
    while end + 1 < len(steps) and JQ_LINE.fullmatch(steps[end + 1].command):
        end += 1
    return steps[: end + 1]


async def test_the_walkthrough_runs_as_the_readme_shows(
    client_for: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    steps = checked_block(WALKTHROUGH)
    commands = " ".join(step.command for step in steps)
    for endpoint in ("send-verification", "verify-code", "users/me", "refresh", "logout"):
        assert endpoint in commands
    assert "PATCH" in commands
    assert [step.command.split("=")[0] for step in login_steps(steps)[-2:]] == [
        "ACCESS_TOKEN",
        "REFRESH_TOKEN",
    ]

    async with client_for(verify_provider="console", environment="development") as client:
        await run_checked(Shell(client, caplog), steps)


async def test_the_global_logout_example_runs_as_the_readme_shows(
    client_for: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    login = login_steps(checked_block(WALKTHROUGH))
    example = checked_block(AFTER_LOGIN)
    assert '"scope": "global"' in example[0].command

    async with client_for(verify_provider="console", environment="development") as client:
        await run_checked(Shell(client, caplog), login + example)


async def test_the_walkthrough_check_notices_a_missing_content_type(
    client_for: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Played curl sends a form's content type with -d, as curl does: the README's
    global logout without its `Content-Type` would answer 415, and the check fails."""
    login = login_steps(checked_block(WALKTHROUGH))
    [logout, *_] = checked_block(AFTER_LOGIN)
    without = Step(logout.command.replace("-H 'Content-Type: application/json' ", ""), logout.shown)
    assert without.command != logout.command

    async with client_for(verify_provider="console", environment="development") as client:
        shell = Shell(client, caplog)
        await run_checked(shell, login)
        output = await shell.run(without.command)

    assert output.endswith("415\n")
    with pytest.raises(AssertionError, match="Unsupported media type"):
        check_output(without, output)


# ---------------------------------------------------------------- statuses and settings


def test_the_status_table_lists_every_status_the_api_documents() -> None:
    document = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
    documented = {
        int(status)
        for operation in document["paths"].values()
        for answer in operation.values()
        for status in answer["responses"]
        if int(status) >= 400
    }
    errors = _section(README.read_text(encoding="utf-8"), "### Errors")
    in_table = {int(cell) for cell in _table_first_cells(errors) if cell.isdigit()}

    assert {413, 415} <= documented
    assert documented - in_table == set()


def _environment_names() -> set[str]:
    names = set()
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, str):
            names.add(alias.upper())
        elif isinstance(alias, AliasChoices):
            names.update(str(choice).upper() for choice in alias.choices)
        else:
            names.add(name.upper())
    return names


def test_every_setting_is_in_the_readme_settings_table() -> None:
    settings = _section(README.read_text(encoding="utf-8"), "## Settings")
    in_table = {
        name for cell in _table_first_cells(settings) for name in re.findall(r"`(\w+)`", cell)
    }

    assert _environment_names() - in_table == set(), "add them to the README settings table"
    assert in_table - _environment_names() == set(), "the README lists settings that are gone"


def test_every_setting_is_in_env_example() -> None:
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    assigned = set(re.findall(r"(?m)^([A-Z][A-Z0-9_]*)=", text))

    assert _environment_names() - assigned == set(), "add them to .env.example"
    assert assigned - _environment_names() == set(), ".env.example sets settings that are gone"


@pytest.mark.usefixtures("clean_settings_env")
def test_env_example_is_a_valid_env_file() -> None:
    """Copied to `.env` it starts the service as the defaults do."""
    from_example = Settings(_env_file=ROOT / ".env.example")

    assert from_example == Settings(_env_file=None)
