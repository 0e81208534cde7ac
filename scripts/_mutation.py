"""Mutation testing of the security core with mutmut 3 (run through `scripts/mutation`).

Each group below is a set of modules and the test directories that cover them. A
group runs in a work directory of its own (`.mutation/<group>/`, a fresh copy of
the project), where mutmut copies the code into `mutants/`, plants one change at a
time in the group's modules and runs, for each, the group's tests that call the
changed function. Then the score per module (killed / mutants) and every mutant
that survived, with its diff.

A group's tests are its directories only, so that a mutant in a module that every
request passes through (`mask_phone`) meets the tests written for it rather than
the whole suite.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
# What a work directory holds: the code, the tests and what the tests read.
COPIED = ("app", "tests", "alembic", "alembic.ini", "pyproject.toml", "openapi.json")


@dataclass(frozen=True)
class Group:
    """Modules mutated together, and the test directories (or files) that cover them."""

    modules: tuple[str, ...]
    tests: tuple[str, ...]
    # Tests left out: ones that start Redis Cluster or Sentinel processes take half a
    # minute each and would run for every mutant they call; the single-server Redis
    # tests cover the same code.
    ignored: tuple[str, ...] = ()


HA_REDIS_TESTS = ("tests/limits/test_redis_cluster.py", "tests/limits/test_redis_sentinel.py")


# The modules under mutation testing, and their tests: the one list to change.
GROUPS: dict[str, Group] = {
    "phone": Group(("app/core/phone.py",), ("tests/core",)),
    "sessions": Group(
        (
            "app/services/sessions/service.py",
            "app/services/sessions/tokens.py",
            "app/services/sessions/repository.py",
        ),
        # Revoking all, counting and keeping one session are the admin's and the number
        # change's; reauthentication guards deletion: their tests cover those functions.
        (
            "tests/sessions",
            "tests/admin/test_admin_api.py",
            "tests/lifecycle/test_phone_change.py",
            "tests/lifecycle/test_delete.py",
        ),
    ),
    "limits": Group(
        (
            "app/services/limits/windows.py",
            "app/services/limits/local.py",
            "app/services/limits/redis.py",
            "app/services/limits/steps.py",
            "app/services/limits/service.py",
        ),
        ("tests/limits", "tests/hardening/test_redis_failures.py"),
        HA_REDIS_TESTS,
    ),
    "twilio": Group(
        ("app/services/verification/providers/twilio.py",),
        (
            "tests/verification/test_twilio_adapter.py",
            "tests/verification/test_twilio_errors.py",
            "tests/verification/test_app_hash.py",
            "tests/delivery/test_twilio_attempts.py",
            "tests/verification/test_twilio_not_configured.py",
            "tests/verification/test_send.py",
        ),
    ),
    # The services are called by the tests of every flow that sends or checks a code:
    # test numbers and app hashes (verification), challenges, phone changes (lifecycle),
    # the second provider's delivery status, the counters on /metrics, the attempt a check
    # refused by the number's limit gives back.
    "verification": Group(
        ("app/services/verification/service.py",),
        (
            "tests/verification",
            "tests/login",
            "tests/lifecycle",
            "tests/delivery/test_vonage_delivery.py",
            "tests/ops/test_metrics.py",
            "tests/limits/test_verify_limits.py",
        ),
    ),
    "login": Group(
        ("app/services/login/service.py",),
        ("tests/login", "tests/limits", "tests/verification", "tests/challenge", "tests/lifecycle"),
        HA_REDIS_TESTS,
    ),
}

# mutmut's exit codes (mutmut.stats.status_by_exit_code), as this report names them.
KILLED = {1, 3, 24, -24, 152, 255, 36, 37}  # a failing test, a timeout, the type check
SKIPPED = {34}  # `# pragma: no mutate`


def _mutmut_config(group: Group) -> str:
    def toml_list(values: tuple[str, ...] | list[str]) -> str:
        return "[" + ", ".join(json.dumps(value) for value in values) + "]"

    return (
        "\n\n[tool.mutmut]\n"
        'source_paths = ["app"]\n'
        f"only_mutate = {toml_list(group.modules)}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(group.tests)}\n"
        # The tests' own options (pyproject's addopts) still apply; no cache in the copies.
        "pytest_add_cli_args = "
        f"{toml_list(['-p', 'no:cacheprovider', *(f'--ignore={t}' for t in group.ignored)])}\n"
        'also_copy = ["alembic", "alembic.ini", "openapi.json"]\n'
    )


def _prepare(name: str, group: Group) -> Path:
    """A fresh copy of the project for the group, configured for mutmut."""
    work = WORK / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for item in COPIED:
        source = ROOT / item
        if source.is_dir():
            shutil.copytree(source, work / item, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, work / item)
    with (work / "pyproject.toml").open("a") as config:
        config.write(_mutmut_config(group))
    return work


def _results(work: Path, module: str) -> dict[str, int | None]:
    meta = work / "mutants" / f"{module}.meta"
    if not meta.exists():
        return {}
    exit_codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    return exit_codes


def _diff(work: Path, mutant: str) -> str:
    shown = subprocess.run(  # noqa: S603
        [str(ROOT / ".venv/bin/mutmut"), "show", mutant],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = shown.stdout.splitlines()
    return "\n".join(
        line for line in lines if line.startswith(("+", "-")) and line[:3] not in ("+++", "---")
    )


def _run_group(
    name: str, group: Group, env: dict[str, str], only: list[str]
) -> list[tuple[str, int, int]]:
    print(
        f"\n=== {name}: {', '.join(group.modules)}\n    tests: {' '.join(group.tests)}", flush=True
    )
    work = _prepare(name, group)
    started = time.monotonic()
    run = subprocess.run(  # noqa: S603
        [str(ROOT / ".venv/bin/mutmut"), "run", *only],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        print(run.stdout[-4000:])
        raise SystemExit(f"mutmut failed on group {name} (exit {run.returncode})")
    print(f"    {time.monotonic() - started:.0f} s", flush=True)
    scores = []
    for module in group.modules:
        results = _results(work, module)
        if only:
            results = {
                key: code
                for key, code in results.items()
                if any(fnmatch.fnmatch(key, pattern) for pattern in only)
            }
        counted = {key: code for key, code in results.items() if code not in SKIPPED}
        killed = sum(1 for code in counted.values() if code in KILLED)
        scores.append((module, killed, len(counted)))
        for mutant, code in sorted(counted.items()):
            if code not in KILLED:
                status = "survived" if code == 0 else f"not killed (mutmut exit {code})"
                print(f"\n  {status}: {mutant}\n{_diff(work, mutant)}")
    return scores


def _own_redis() -> tuple[subprocess.Popen[bytes], str] | None:
    """A redis-server of this run, for the Redis windows' tests; None without the binary."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(  # noqa: S603
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    server.kill()
    return None


def main() -> int:
    """Run the chosen groups and print the scores and survivors."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", help=f"of {', '.join(GROUPS)}; default: all")
    parser.add_argument("--list", action="store_true", help="print the groups and exit")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only the mutants whose names match (mutmut's names, * as wildcard), e.g. "
        "'app.services.sessions.service.*refresh*'",
    )
    args = parser.parse_args()
    if args.list:
        for name, group in GROUPS.items():
            ignored = f"\n    left out: {' '.join(group.ignored)}" if group.ignored else ""
            print(f"{name}: {' '.join(group.modules)}\n    tests: {' '.join(group.tests)}{ignored}")
        return 0
    unknown = [name for name in args.groups if name not in GROUPS]
    if unknown:
        parser.error(f"unknown groups {unknown}; the groups are {list(GROUPS)}")
    chosen = args.groups or list(GROUPS)

    env = {**os.environ, "TEST_DATABASE_URL": ""}  # SQLite: a database per test process
    redis = None
    if not env.get("TEST_REDIS_URL"):
        redis = _own_redis()
        if redis is None:
            print("No TEST_REDIS_URL and no redis-server: the Redis windows go untested")
        else:
            env["TEST_REDIS_URL"] = redis[1]
    try:
        scores = [
            score for name in chosen for score in _run_group(name, GROUPS[name], env, args.only)
        ]
    finally:
        if redis is not None:
            redis[0].send_signal(signal.SIGTERM)
            redis[0].wait(10)

    print("\nmodule                                              killed / mutants   score")
    all_killed = all_total = 0
    for module, killed, total in scores:
        all_killed, all_total = all_killed + killed, all_total + total
        score = f"{100 * killed / total:5.1f} %" if total else "    -"
        print(f"{module:<52}{killed:>6} / {total:<9}{score}")
    if all_total:
        print(f"{'all':<52}{all_killed:>6} / {all_total:<9}{100 * all_killed / all_total:5.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
