"""The Phone Auth benchmark: the service against a floor, per endpoint, DB and concurrency.

    .venv/bin/python bench/run.py            # full run, a few minutes
    .venv/bin/python bench/run.py --quick    # smoke run, under a minute

A fake Twilio Verify (nginx + echo, else tests/load/fake_twilio.py) answers after
50 ms. The service (`python -m app serve`, one uvicorn
worker) and the floor (bench/floor_app.py) run pinned to core 0; the fake and
wrk run on core 1. For every endpoint and concurrency the floor is measured
right before the service, so every figure is also given as a ratio to a floor
measured seconds apart. With `--baseline REV` the service of REV, checked out
into a temporary git worktree, is measured right before the current tree's in
every cell, and every current figure of req/s also has its ratio to it.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import timeit
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The tree whose app this process imports (settings, models for seeding): the
# current one, or a baseline's worktree in the child that seeds its database.
APP_ROOT = Path(os.environ.get("BENCH_APP_ROOT", ROOT)).resolve()
sys.path.insert(0, str(APP_ROOT))
BENCH = ROOT / "bench"
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVICE_CORE, LOAD_CORE = "0", "1"
ACCOUNT_SID, AUTH_TOKEN = "AC" + "1" * 32, "twilio-auth-token-for-tests"
SERVICE_SID = "VA" + "a" * 32
CELL_NUMBERS = 50_000  # numbers reserved per cell: [base, base+40000) main, the rest warm-up
RAISED = "100000000/hour"
# Limits the bench raises, said in its output: all load comes from 127.0.0.1.
LIMIT_SETTINGS = {
    "RATE_LIMIT_SEND_PER_IP": RAISED,
    "RATE_LIMIT_VERIFY_PER_IP": RAISED,
}
MARKETS = {
    "KG": {"region": "KG", "language": "ru", "channels": ["sms", "whatsapp"], "sms_budget": RAISED},
    "US": {"region": "US", "language": "en", "channels": ["sms", "call"], "sms_budget": RAISED},
}


def phone(k: int) -> str:
    """Number k, as bench/wrk/phone_auth.lua makes it."""
    if k % 2 == 0:
        return f"+996555{(k // 2) % 1_000_000:06d}"
    return f"+1212{2_000_000 + ((k - 1) // 2) % 8_000_000:07d}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, timeout: float = 2) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - 127.0.0.1
        return bytes(response.read())


def cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / CLK_TCK


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn's worker processes)."""
    pids, index = [pid], 0
    while index < len(pids):
        children = Path(f"/proc/{pids[index]}/task/{pids[index]}/children")
        with contextlib.suppress(OSError):
            pids += [int(child) for child in children.read_text().split()]
        index += 1
    return pids


def tree_cpu_ms(pid: int) -> float:
    total = 0.0
    for each in process_tree(pid):
        with contextlib.suppress(OSError):
            total += cpu_ms(each)
    return total


def postgres_cpu() -> dict[int, float]:
    """CPU ms of every PostgreSQL process on the machine, by pid."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            if text.split("(", 1)[1].split(")", 1)[0] == "postgres":
                found[int(stat.parent.name)] = cpu_ms(int(stat.parent.name))
    return found


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def reset_peak_rss(pid: int) -> None:
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS


class Process:
    """A child process with its log, stopped on exit."""

    def __init__(
        self, name: str, command: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT
    ) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(  # noqa: S603 - our own commands
                command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def wait_ready(url: str, process: Process, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            sys.exit(f"{process.name} exited:\n{process.tail()}")
        try:
            get(url)
            return
        except OSError:
            time.sleep(0.2)
    process.stop()
    sys.exit(f"{process.name} not ready in {seconds:.0f}s:\n{process.tail()}")


class Fake:
    """The fake Twilio on the load core: nginx + echo if installed, else the Python fake."""

    def __init__(self, kind: str, latency: float, workdir: Path) -> None:
        self.port = free_port()
        self.kind = kind
        env = dict(os.environ)
        if kind == "nginx":
            conf = (BENCH / "fake_twilio" / "nginx.conf").read_text()
            conf = conf.replace("127.0.0.1:18480", f"127.0.0.1:{self.port}")
            conf = conf.replace("echo_sleep 0.05;", f"echo_sleep {latency};")
            prefix = workdir / "nginx"
            prefix.mkdir()
            (prefix / "nginx.conf").write_text(conf)
            command = ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf")]
            command += ["-g", "daemon off;"]
            self.stats_url = f"http://127.0.0.1:{self.port}/__nginx_status"
        else:
            command = [PYTHON, "-m", "tests.load.fake_twilio", "--port", str(self.port)]
            command += ["--latency", str(latency)]
            self.stats_url = f"http://127.0.0.1:{self.port}/__stats"
        command = ["taskset", "-c", LOAD_CORE, *command]
        self.process = Process(f"fake Twilio ({kind})", command, env, workdir / "fake.log")
        wait_ready(self.stats_url, self.process)
        self.url = f"http://127.0.0.1:{self.port}"

    def connections(self) -> int:
        text = get(self.stats_url).decode()
        if self.kind == "nginx":  # "server accepts handled requests\n 3 3 3"
            return int(text.splitlines()[2].split()[0])
        return int(json.loads(text)["connections"])

    def cpu_ms(self) -> float:
        pids = [self.process.pid]
        if self.kind == "nginx":  # the master forks one worker
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            pids += [int(p) for p in children.read_text().split()]
        return sum(cpu_ms(pid) for pid in pids)


@dataclass
class Server:
    """A server under test: the floor or a service variant."""

    name: str
    process: Process
    url: str
    database_url: str = ""  # seeded before its verify cells
    root: Path = ROOT  # the tree whose app it runs
    baseline: str = ""  # the server measured right before it for "x baseline"


def service_cores(workers: int) -> str:
    """One worker has core 0 to itself; more share every core with the load."""
    return SERVICE_CORE if workers == 1 else f"0-{(os.cpu_count() or 2) - 1}"


def start_uvicorn(name: str, app: str, env: dict[str, str], workdir: Path, workers: int) -> Server:
    """`app` on uvicorn with the service's cores, ready when `/healthz` answers."""
    port = free_port()
    command = ["taskset", "-c", service_cores(workers), PYTHON, "-m", "uvicorn"]
    command += [app, "--workers", str(workers)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    command += ["--no-access-log", "--no-server-header"]
    process = Process(name, command, env, workdir / f"{name}.log")
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/healthz", process)
    return Server(name, process, url)


def start_floor(fake: Fake, workdir: Path, workers: int) -> Server:
    env = dict(os.environ, FAKE_TWILIO_URL=fake.url)
    return start_uvicorn("floor", "bench.floor_app:app", env, workdir, workers)


EXTRA_SETTINGS: dict[str, str] = {}  # --set KEY=VALUE


def in_tree(env: dict[str, str], root: Path) -> dict[str, str]:
    """`env` for a child importing `root`'s app (a baseline's worktree: its PYTHONPATH)."""
    if root == ROOT:
        return env
    return dict(env, PYTHONPATH=str(root), BENCH_APP_ROOT=str(root))


def run_child(command: list[str], root: Path, env: dict[str, str]) -> str:
    """`command` run in `root` with its app: its output, or exit with it."""
    done = subprocess.run(  # noqa: S603 - our own commands
        command, cwd=root, env=in_tree(env, root), capture_output=True, text=True, check=False
    )
    if done.returncode:
        output = (done.stdout + done.stderr).strip().splitlines()[-15:]
        sys.exit(f"{' '.join(command)} failed in {root}:\n" + "\n".join(output))
    return done.stdout


@functools.cache
def setting_names(root: Path) -> frozenset[str]:
    """The service's settings (lower case) as `root`'s app names them."""
    if root == APP_ROOT:
        from app.core.config import Settings

        return frozenset(Settings.model_fields)
    code = (
        "import json; from app.core.config import Settings; "
        "print(json.dumps([*Settings.model_fields]))"
    )
    return frozenset(json.loads(run_child([PYTHON, "-c", code], root, dict(os.environ))))


def service_env(
    database_url: str, fake: Fake, port: int, transport: str, workers: int, root: Path = ROOT
) -> dict[str, str]:
    names = setting_names(root)
    env = {k: v for k, v in os.environ.items() if k.lower() not in names}
    env.update(
        ENVIRONMENT="production",
        HOST="127.0.0.1",
        PORT=str(port),
        DATABASE_URL=database_url,
        VERIFY_PROVIDER="twilio",
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_VERIFY_SERVICE_SID=SERVICE_SID,
        TWILIO_VERIFY_BASE_URL=fake.url,
        JWT_SECRET_KEY="bench-secret-key-that-is-long-enough-0123456789abcdef",  # noqa: S106
        RATE_LIMIT_STORAGE_URL="memory://",
        MARKETS=json.dumps(MARKETS),
        TWILIO_HTTP_TRANSPORT=transport,
        WORKERS=str(workers),
        **LIMIT_SETTINGS,
    )
    env.update(EXTRA_SETTINGS)
    return in_tree(env, root)


def start_service(
    name: str,
    transport: str,
    database_url: str,
    fake: Fake,
    workdir: Path,
    workers: int,
    root: Path = ROOT,
) -> Server:
    """`python -m app serve` of `root` (the current tree or a baseline's worktree)."""
    port = free_port()
    env = service_env(database_url, fake, port, transport, workers, root)
    command = ["taskset", "-c", service_cores(workers), PYTHON, "-m", "app", "serve"]
    process = Process(name, command, env, workdir / f"{name}.log", cwd=root)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/readyz", process)
    return Server(name, process, url, database_url, root)


SHAPES = ("fastapi-aiohttp", "fastapi-httpx", "fastapi-httpx-db")


def start_shape(name: str, database_url: str, fake: Fake, workdir: Path, workers: int) -> Server:
    """The shape's floor (bench/shape_app.py), named after its stack (one of SHAPES)."""
    env = dict(os.environ, FAKE_TWILIO_URL=fake.url, DATABASE_URL=database_url)
    env["SHAPE_DB"] = "1" if name.endswith("-db") else "0"
    env["SHAPE_CLIENT"] = "aiohttp" if "aiohttp" in name else "httpx"
    server = start_uvicorn(name, "bench.shape_app:app", env, workdir, workers)
    server.database_url = database_url
    return server


def prepare_database(url: str, root: Path = ROOT) -> None:
    """An empty schema at head (alembic downgrade base, upgrade head) by `root`'s alembic."""
    env = dict(os.environ, DATABASE_URL=url)
    for step in (["downgrade", "base"], ["upgrade", "head"]):
        run_child([PYTHON, "-m", "alembic", *step], root, env)


async def _create_database(url: str, via: str) -> bool:
    from sqlalchemy import make_url, text
    from sqlalchemy.ext.asyncio import create_async_engine

    name = make_url(url).database or ""
    engine = create_async_engine(via, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            query = text("SELECT 1 FROM pg_database WHERE datname = :name")
            if await connection.scalar(query, {"name": name}):
                return False
            quoted = '"' + name.replace('"', '""') + '"'
            await connection.execute(text(f"CREATE DATABASE {quoted}"))
            return True
    finally:
        await engine.dispose()


def create_database(url: str, via: str) -> bool:
    """Create PostgreSQL database `url` unless it exists, connected through `via`."""
    return asyncio.run(_create_database(url, via))


async def _seed(url: str, first: int, count: int) -> None:
    from sqlalchemy import insert
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.models.base import utcnow
    from app.models.verification import Verification

    now = utcnow()
    rows = [
        {
            "phone": phone(k),
            "market": "KG" if k % 2 == 0 else "US",
            "channel": "sms",
            "provider": "twilio",
            "provider_sid": f"VE{k:032x}",
            "code_hash": None,
            "status": "pending",
            "failed_attempts": 0,
            "created_at": now,
            "expires_at": now + dt.timedelta(minutes=30),
            "updated_at": now,
        }
        for k in range(first, first + count)
    ]
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            for start in range(0, len(rows), 5000):
                await connection.execute(insert(Verification), rows[start : start + 5000])
    finally:
        await engine.dispose()


def seed_verifications(url: str, first: int, count: int, root: Path = ROOT) -> None:
    """A pending verification for numbers first … first+count-1, as if a send had run.

    Written with `root`'s models: a baseline's, in a child (`run.py --seed`) importing them.
    """
    if root == APP_ROOT:
        asyncio.run(_seed(url, first, count))
        return
    command = [PYTHON, str(Path(__file__).resolve()), "--seed", url, str(first), str(count)]
    run_child(command, root, dict(os.environ))


@dataclass
class Cell:
    """One measurement."""

    db: str
    endpoint: str
    connections: int
    server: str
    rps: float = 0.0  # logins/s for the login scenario
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    non2xx: int = 0
    socket_errors: int = 0
    cpu_ms_per_req: float = 0.0
    peak_rss_mb: float = 0.0
    conn_per_req: float = 0.0
    fake_cpu_pct: float = 0.0
    db_cpu_ms_per_req: float = 0.0
    requests: int = 0
    ratios: dict[str, float] = field(default_factory=dict)
    rps_x_baseline: float | None = None  # req/s over the baseline's in the same cell


def ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else 0.0


def run_wrk(url: str, mode: str, base: int, connections: int, seconds: float) -> dict[str, Any]:
    duration = f"-d{max(1, round(seconds))}s"  # wrk takes whole seconds
    command = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", duration]
    command += ["--timeout", "10s", "-s", str(BENCH / "wrk" / "phone_auth.lua"), url]
    command += ["--", mode, str(base)]
    done = subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, timeout=seconds + 60, check=True
    )
    for line in done.stdout.splitlines():
        if line.startswith("WRK "):
            return dict(json.loads(line[4:]))
    raise RuntimeError(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")


def measure(
    server: Server, fake: Fake, cell: Cell, base: int, seconds: float, warmup: float
) -> Cell:
    mode = cell.endpoint
    if warmup > 0:  # warm the pools with sends to numbers of the warm-up range
        run_wrk(server.url, "send", base + 40_000, cell.connections, warmup)
    pids = process_tree(server.process.pid)
    for pid in pids:
        reset_peak_rss(pid)
    cpu0, fake_cpu0, conns0 = tree_cpu_ms(pids[0]), fake.cpu_ms(), fake.connections()
    db0 = postgres_cpu() if cell.db == "postgres" else {}
    result = run_wrk(server.url, mode, base, cell.connections, seconds)
    cpu1, fake_cpu1, conns1 = tree_cpu_ms(pids[0]), fake.cpu_ms(), fake.connections()
    db1 = postgres_cpu() if cell.db == "postgres" else {}
    elapsed = result["duration_us"] / 1e6
    requests = result["requests"]
    cell.requests = requests
    cell.rps = (result["logins"] if mode == "login" else requests) / elapsed
    cell.p50_ms = result["p50_us"] / 1000
    cell.p99_ms = result["p99_us"] / 1000
    cell.non2xx = result["status_errors"]
    cell.socket_errors = result["socket_errors"] + result["timeouts"]
    cell.cpu_ms_per_req = (cpu1 - cpu0) / max(requests, 1)
    # Per process: the largest worker (the master of several workers serves nothing).
    cell.peak_rss_mb = max(status_kb(pid, "VmHWM") for pid in pids) / 1024
    cell.conn_per_req = (conns1 - conns0) / max(requests, 1)
    cell.fake_cpu_pct = (fake_cpu1 - fake_cpu0) / 10 / elapsed
    db_ms = sum(ms - db0.get(pid, 0.0) for pid, ms in db1.items())
    cell.db_cpu_ms_per_req = db_ms / max(requests, 1)
    if server.process.popen.poll() is not None:
        sys.exit(f"{server.name} died:\n{server.process.tail()}")
    return cell


def add_ratios(cell: Cell, floor: Cell) -> None:
    cell.ratios = {
        "rps": ratio(cell.rps, floor.rps),
        "p50": ratio(cell.p50_ms, floor.p50_ms),
        "p99": ratio(cell.p99_ms, floor.p99_ms),
        "cpu": ratio(cell.cpu_ms_per_req, floor.cpu_ms_per_req),
        "rss": ratio(cell.peak_rss_mb, floor.peak_rss_mb),
    }


def table(cells: list[Cell], baseline: bool = False) -> str:
    """Markdown; with `baseline`, an "x baseline" column after req/s."""
    head = (
        "| db | endpoint | conns | server | req/s (x floor) "
        + ("| x baseline " if baseline else "")
        + "| p50 ms (x) | p99 ms (x) | non-2xx "
        "| CPU ms/req (x) | PostgreSQL CPU ms/req | peak RSS MB | new conns/req | fake CPU % |\n"
        + "|---" * (14 if baseline else 13)
        + "|\n"
    )
    rows = []
    for c in cells:

        def x(key: str, ratios: dict[str, float] = c.ratios) -> str:
            return f" ({ratios[key]:.2f}x)" if ratios else ""

        non2xx = f"{c.non2xx}" + (f" +{c.socket_errors} sock" if c.socket_errors else "")
        pg_cpu = f"{c.db_cpu_ms_per_req:.2f}" if c.db == "postgres" else "-"
        vs_baseline = "-" if c.rps_x_baseline is None else f"{c.rps_x_baseline:.2f}x"
        rows.append(
            f"| {c.db} | {c.endpoint} | {c.connections} | {c.server} | {c.rps:.0f}{x('rps')} "
            + (f"| {vs_baseline} " if baseline else "")
            + f"| {c.p50_ms:.0f}{x('p50')} | {c.p99_ms:.0f}{x('p99')} | {non2xx} "
            f"| {c.cpu_ms_per_req:.2f}{x('cpu')} | {pg_cpu} | {c.peak_rss_mb:.0f} "
            f"| {c.conn_per_req:.3f} "
            f"| {c.fake_cpu_pct:.0f} |"
        )
    return head + "\n".join(rows) + "\n"


@contextmanager
def stopping(*processes: Process) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            process.stop()


def git(*args: str, check: bool = True) -> str:
    """`git -C ROOT *args`: its output, or exit with its error (if `check`)."""
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0")  # never the index lock of a commit under way
    done = subprocess.run(  # noqa: S603
        ["git", "-C", str(ROOT), *args],  # noqa: S607 - git from PATH
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if check and done.returncode:
        sys.exit(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip() if done.returncode == 0 else ""


def resolve_baseline(rev: str) -> str:
    """The commit `rev` names, or exit with a one-line error."""
    sha = git(
        "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False
    )
    if not sha:
        sys.exit(f"--baseline: {rev!r} is not a commit of {ROOT}")
    return sha


@contextmanager
def worktree(sha: str, path: Path) -> Iterator[Path]:
    """Commit `sha` checked out at `path` (a detached git worktree), removed on exit."""
    git("worktree", "add", "--detach", str(path), sha)
    try:
        for needed in ("app/__main__.py", "alembic.ini"):
            if not (path / needed).exists():
                sys.exit(f"--baseline: {sha[:12]} has no {needed}: it cannot be run or migrated")
        if (ROOT / ".env").exists():  # the same settings: both read it from their cwd
            shutil.copy(ROOT / ".env", path / ".env")
        yield path
    finally:
        git("worktree", "remove", "--force", str(path), check=False)


def requirements_differ(root: Path) -> list[str]:
    """The requirements files whose content differs between the current tree and `root`."""
    names = {p.name for tree in (ROOT, root) for p in tree.glob("requirements*.txt")}
    differ = []
    for name in sorted(names):
        ours, theirs = ROOT / name, root / name
        if not (ours.exists() and theirs.exists()) or ours.read_bytes() != theirs.read_bytes():
            differ.append(name)
    return differ


def baseline_database(postgres_url: str) -> str:
    """The baseline's PostgreSQL database: the bench's, its name + `_baseline`."""
    from sqlalchemy import make_url

    url = make_url(postgres_url)
    return url.set(database=f"{url.database}_baseline").render_as_string(hide_password=False)


def machine() -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python "
        f"{platform.python_version()}; load average at start {load[0]:.1f}; "
        f"Python speed: {python_speed_us():.1f} µs per sum(range(1000))"
    )


def python_speed_us() -> float:
    """Best of 5 for a pure-Python loop: how fast this machine runs Python today.

    Shared VMs differ from day to day, and Python-heavy code (the service) slows
    more than the floor, whose hot path is mostly C; runs are comparable only at
    a similar speed.
    """
    loops = 2000
    timer = timeit.Timer("sum(range(1000))")
    return min(timer.repeat(repeat=5, number=loops)) / loops * 1e6


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 s cells, 64 conns")
    parser.add_argument("--seconds", type=float, default=8, help="length of a cell")
    parser.add_argument("--warmup", type=float, default=2, help="warm-up before a cell")
    parser.add_argument("--connections", default="64,256")
    parser.add_argument("--endpoints", default="send,verify,login")
    parser.add_argument("--dbs", default="sqlite,postgres")
    parser.add_argument(
        "--transports",
        default="aiohttp",
        help="service variants by TWILIO_HTTP_TRANSPORT: aiohttp (the default), httpx; "
        "empty for none",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn workers of the service and the floor (1: pinned to core 0; more: all cores)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SETTING=VALUE",
        help="a setting for the service, e.g. TWILIO_MAX_CONNECTIONS=400 (repeatable)",
    )
    parser.add_argument(
        "--shape",
        default="",
        help="also measure the shape's floor (bench/shape_app.py), a comma-separated list "
        "of its stacks: fastapi-aiohttp, fastapi-httpx, fastapi-httpx-db",
    )
    parser.add_argument("--fake", choices=["auto", "nginx", "python"], default="auto")
    parser.add_argument("--latency", type=float, default=0.05, help="fake Twilio latency, s")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/phone_auth_bench"
        ),
        help="an empty database the bench may wipe (BENCH_DATABASE_URL)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also measure the service of git revision REV (a temporary worktree) right "
        "before the current tree's in every cell; adds the column x baseline",
    )
    parser.add_argument(
        "--baseline-postgres-url",
        default=os.environ.get("BENCH_BASELINE_DATABASE_URL"),
        help="the baseline's database, wiped and created if missing (BENCH_BASELINE_DATABASE_URL;"
        " default: --postgres-url's name + _baseline)",
    )
    parser.add_argument("--json", type=Path, help="also write the cells as JSON here")
    parser.add_argument(
        "--seed", nargs=3, metavar=("URL", "FIRST", "COUNT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup, args.connections = 3, 1, "64"
    return args


def print_baseline(rev: str, sha: str, root: Path) -> None:
    """What the baseline is, and whether its requirements differ from the current tree's."""
    changed = git("status", "--porcelain", "--untracked-files=no", check=False).splitlines()
    print(
        f"baseline: {rev} = {git('log', '-1', '--format=%h %s', sha)}, from a git worktree "
        "(its own app, alembic and database), measured right before the current tree "
        f"(HEAD {git('rev-parse', '--short', 'HEAD')} + {len(changed)} changed files) in every cell"
    )
    differ = requirements_differ(root)
    if differ:
        print(
            f"note: the baseline's {', '.join(differ)} differ from the current tree's; "
            f"it runs in the same interpreter ({PYTHON})"
        )


def start_services(
    db: str,
    args: argparse.Namespace,
    fake: Fake,
    workdir: Path,
    baseline: Path | None,
    running: contextlib.ExitStack,
) -> list[Server]:
    """A db's servers besides the floor, on fresh databases, in the order they are measured.

    Per transport the baseline's service (with --baseline) right before the current tree's,
    then the shapes. Each is stopped when `running` closes.
    """
    sqlite = db == "sqlite"
    url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}" if sqlite else args.postgres_url
    prepare_database(url)
    baseline_url = ""
    if baseline:
        baseline_url = (
            f"sqlite+aiosqlite:///{workdir / 'baseline.db'}"
            if sqlite
            else args.baseline_postgres_url or baseline_database(args.postgres_url)
        )
        if not sqlite and create_database(baseline_url, via=url):
            print(f"created the baseline's database {baseline_url}")
        prepare_database(baseline_url, baseline)

    def started(server: Server) -> Server:
        running.callback(server.process.stop)
        return server

    servers = []
    for t in transports_of(args):
        if baseline:
            servers.append(
                started(
                    start_service(
                        f"baseline-{t}", t, baseline_url, fake, workdir, args.workers, baseline
                    )
                )
            )
        service = started(start_service(f"service-{t}", t, url, fake, workdir, args.workers))
        service.baseline = f"baseline-{t}" if baseline else ""
        servers.append(service)
    for name in shapes_of(args):
        servers.append(started(start_shape(name, url, fake, workdir, args.workers)))
    return servers


def measure_cell(
    cell: Cell, servers: list[Server], fake: Fake, args: argparse.Namespace, first: int
) -> list[Cell]:
    """`cell` for each of `servers` in turn (the floor first), each its own numbers
    from measurement number `first` on; printed as they come."""
    cells: list[Cell] = []
    for number, server in enumerate(servers, first):
        base = number * CELL_NUMBERS
        if cell.endpoint == "verify" and server.database_url:
            count = int(min(40_000, args.seconds * 2500))
            seed_verifications(server.database_url, base, count, server.root)
        result = measure(
            server,
            fake,
            Cell(cell.db, cell.endpoint, cell.connections, server.name),
            base,
            args.seconds,
            args.warmup,
        )
        if cells:
            add_ratios(result, cells[0])
        if server.baseline:
            reference = next(c for c in cells if c.server == server.baseline)
            result.rps_x_baseline = ratio(result.rps, reference.rps)
        cells.append(result)
        print(table([result], bool(args.baseline)).splitlines()[-1], flush=True)
    return cells


def transports_of(args: argparse.Namespace) -> list[str]:
    return [t for t in args.transports.split(",") if t]


def shapes_of(args: argparse.Namespace) -> list[str]:
    return [name for name in args.shape.split(",") if name]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.seed:  # the child that seeds a baseline's database with its models
        url, first, count = args.seed
        seed_verifications(url, int(first), int(count), APP_ROOT)
        return
    for tool in ("wrk", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed (Debian: apt-get install wrk util-linux)")
    for name in shapes_of(args):
        if name not in SHAPES:
            sys.exit(f"--shape: {name!r} is not one of {', '.join(SHAPES)}")
    baseline_sha = resolve_baseline(args.baseline) if args.baseline is not None else ""
    if baseline_sha and not transports_of(args):
        sys.exit("--baseline: no service variant to compare (--transports is empty)")
    for pair in args.set:
        key, _, value = pair.partition("=")
        EXTRA_SETTINGS[key.strip().upper()] = value
    fake_kind = args.fake
    if fake_kind == "auto":
        echo = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so").exists()
        fake_kind = "nginx" if shutil.which("nginx") and echo else "python"
    started = dt.datetime.now(dt.UTC)
    print(f"# Phone Auth benchmark, {started:%Y-%m-%d %H:%M} UTC")
    print(f"machine: {machine()}")
    print(
        f"fake Twilio: {fake_kind}, {args.latency * 1000:.0f} ms; service and floor: "
        f"{args.workers} worker(s) on core(s) {service_cores(args.workers)}, fake and wrk on "
        f"core {LOAD_CORE}; {args.seconds:g} s per cell after {args.warmup:g} s warm-up"
    )
    print(
        "limits raised for the bench (all load comes from 127.0.0.1): "
        + ", ".join(f"{k}={v}" for k, v in LIMIT_SETTINGS.items())
        + f", sms_budget={RAISED} per market; per-phone limits unchanged (one number per request)"
    )
    if EXTRA_SETTINGS:
        print(
            "settings given with --set: " + ", ".join(f"{k}={v}" for k, v in EXTRA_SETTINGS.items())
        )
    cells: list[Cell] = []
    with (
        tempfile.TemporaryDirectory(prefix="phone-auth-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(tmp)
        baseline = None
        if baseline_sha:
            baseline = stack.enter_context(worktree(baseline_sha, workdir / "baseline"))
            print_baseline(args.baseline, baseline_sha, baseline)
        fake = Fake(fake_kind, args.latency, workdir)
        floor = start_floor(fake, workdir, args.workers)
        with stopping(fake.process, floor.process):
            for db in args.dbs.split(","):
                with contextlib.ExitStack() as running:
                    services = start_services(db, args, fake, workdir, baseline, running)
                    for endpoint in args.endpoints.split(","):
                        for connections in [int(c) for c in args.connections.split(",")]:
                            cells += measure_cell(
                                Cell(db, endpoint, connections, "floor"),
                                [floor, *services],
                                fake,
                                args,
                                first=len(cells) + 1,
                            )
    print()
    print(table(cells, bool(baseline_sha)))
    print(
        "req/s is logins/s (send + verify) for `login`; p50/p99 are per request; CPU is "
        "the server's processes' utime+stime per request; new conns/req counts connections "
        "the fake accepted; fake CPU % is of one core (100 = saturated); PostgreSQL CPU is "
        "every postgres process's, per request."
        + (
            f" x baseline: a service's req/s over that of baseline-* ({args.baseline} = "
            f"{baseline_sha[:12]}), measured right before it in the same cell."
            if baseline_sha
            else ""
        )
    )
    if args.json:
        args.json.write_text(json.dumps([asdict(c) for c in cells], indent=1))


if __name__ == "__main__":
    main()
