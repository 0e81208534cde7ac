"""The real server bounds what a connection may buffer and how long it may take: header
size (431), idle, slow headers and slow bodies (closed, 408), and open connections per
worker (503)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import SEND
from tests.ops.conftest import Server, ServerFactory

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"
# The bounds of the shared server: short, so that every test ends in seconds.
MAX_HEADER_BYTES = 4096
HEADER_TIMEOUT = 1.5
BODY_TIMEOUT = 1.5
KEEPALIVE_TIMEOUT = 1
# Time for the server's event loop on a busy machine, beyond a timeout.
SLACK = 1.5


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: str) -> Iterator[Server]:
    """One server with short bounds, shared by the tests that do not change them."""
    server = Server(
        {
            "DATABASE_URL": migrated_sqlite,
            "VERIFY_PROVIDER": "console",
            "HTTP_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
            "HTTP_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
            "HTTP_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
            "HTTP_KEEPALIVE_TIMEOUT_SECONDS": str(KEEPALIVE_TIMEOUT),
        },
        cwd=Path(tmp_path_factory.mktemp("bounded")),
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.kill()


# ---------------------------------------------------------------- raw HTTP


def _connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response: status, headers (lower-case names) and the body of its Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        assert chunk, "closed inside the body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def _until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and the seconds that took; fails
    when the connection is still open after `timeout`."""
    start = time.monotonic()
    received = b""
    while True:
        left = timeout - (time.monotonic() - start)
        if left <= 0:
            pytest.fail(f"the connection was still open after {timeout}s: {received!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        except TimeoutError:
            continue
        if not chunk:
            return received, time.monotonic() - start
        received += chunk


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def _body(raw: bytes) -> object:
    return json.loads(raw.partition(b"\r\n\r\n")[2])


def _trickle(sock: socket.socket, data: bytes, interval: float, stop: threading.Event) -> None:
    """Send `data` one byte per `interval` until it is sent, `stop` is set or sending fails."""
    for byte in data:
        try:
            sock.send(bytes([byte]))
        except OSError:
            return
        if stop.wait(interval):
            return


# ---------------------------------------------------------------- header size


def _request_with_header_of(size: int) -> bytes:
    """GET /healthz whose request line and headers take exactly `size` bytes."""
    head = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Pad: "
    return head + b"a" * (size - len(head) - 4) + b"\r\n\r\n"


def test_headers_within_the_bound_are_served(bounded: Server) -> None:
    with _connect(bounded) as sock:
        sock.sendall(_request_with_header_of(MAX_HEADER_BYTES))
        status, _, body = _read_response(sock)
    assert status == 200
    assert json.loads(body) == {"status": "ok"}


def test_headers_over_the_bound_are_431_and_the_connection_closes(bounded: Server) -> None:
    with _connect(bounded) as sock:
        sock.sendall(_request_with_header_of(MAX_HEADER_BYTES + 1))
        raw, _ = _until_closed(sock, timeout=5)
    assert _status(raw) == 431
    assert _body(raw) == {"detail": "Request headers are too large."}


def test_a_second_request_over_the_bound_on_a_kept_alive_connection_is_431(
    bounded: Server,
) -> None:
    with _connect(bounded) as sock:
        sock.sendall(HEALTHZ)
        assert _read_response(sock)[0] == 200
        sock.sendall(_request_with_header_of(MAX_HEADER_BYTES * 2))
        raw, _ = _until_closed(sock, timeout=5)
    assert _status(raw) == 431


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_unterminated_200_mb_header_lines_leave_the_rss_flat(
    start_server: ServerFactory, migrated_sqlite: str
) -> None:
    """Three connections each send a 200 MB header line that never ends (the default
    bound, 16 KiB): each is refused or closed early and the server's RSS barely moves."""
    server = start_server(DATABASE_URL=migrated_sqlite, VERIFY_PROVIDER="console")
    pid = server.process.pid
    for _ in range(20):  # warm up: the first requests allocate what every request reuses
        with _connect(server) as sock:
            sock.sendall(HEALTHZ)
            _read_response(sock)
    before = _rss_kib(pid)
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, _rss_kib(pid))

    line_bytes = 200 * 1024 * 1024
    chunk = b"a" * (1024 * 1024)
    results: list[tuple[int, bytes]] = []

    def attack() -> None:
        sent = 0
        with _connect(server) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Pad: ")
            deadline = time.monotonic() + 20
            try:
                while sent < line_bytes and time.monotonic() < deadline:
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass
            try:
                raw, _ = _until_closed(sock, timeout=5)
            except pytest.fail.Exception:
                raw = b"still open"
        results.append((sent, raw))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    attackers = [threading.Thread(target=attack) for _ in range(3)]
    for thread in attackers:
        thread.start()
    for thread in attackers:
        thread.join(timeout=60)
    done.set()
    sampler.join()

    assert len(results) == 3
    for sent, raw in results:
        # The server stopped reading long before the line's end; what it answered, if
        # the reset did not overtake it, is 431.
        assert sent < line_bytes, "the server read a whole 200 MB header line"
        assert raw == b"" or raw.startswith(b"HTTP/1.1 431 "), raw[:100]
    growth_mib = (peak - before) / 1024
    assert growth_mib < 16, f"RSS grew by {growth_mib:.0f} MiB under the header attack"
    with _connect(server) as sock:
        sock.sendall(HEALTHZ)
        assert _read_response(sock)[0] == 200


# ---------------------------------------------------------------- timeouts


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    bounded: Server,
) -> None:
    with _connect(bounded) as sock:
        raw, elapsed = _until_closed(sock, timeout=HEADER_TIMEOUT + SLACK)
    assert raw == b""  # nothing was asked, so nothing is answered
    assert elapsed >= HEADER_TIMEOUT - 0.1


def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout(
    bounded: Server,
) -> None:
    with _connect(bounded) as sock:
        sock.sendall(HEALTHZ)
        assert _read_response(sock)[0] == 200
        # Within the timeout the connection is reused ...
        time.sleep(KEEPALIVE_TIMEOUT / 2)
        sock.sendall(HEALTHZ)
        assert _read_response(sock)[0] == 200
        # ... idle past it, it is closed.
        raw, elapsed = _until_closed(sock, timeout=KEEPALIVE_TIMEOUT + SLACK)
    assert raw == b""
    assert elapsed >= KEEPALIVE_TIMEOUT - 0.1


@pytest.mark.parametrize("kept_alive", [False, True], ids=["first request", "kept alive"])
def test_headers_at_one_byte_a_second_are_cut_off(bounded: Server, kept_alive: bool) -> None:
    stop = threading.Event()
    with _connect(bounded) as sock:
        if kept_alive:
            sock.sendall(HEALTHZ)
            assert _read_response(sock)[0] == 200
        start = time.monotonic()
        sender = threading.Thread(
            target=_trickle, args=(sock, _request_with_header_of(1000), 1.0, stop)
        )
        sender.start()
        try:
            raw, _ = _until_closed(sock, timeout=HEADER_TIMEOUT + SLACK + 1)
        finally:
            stop.set()
            sender.join()
    assert time.monotonic() - start >= HEADER_TIMEOUT - 0.1
    assert _status(raw) == 408
    assert _body(raw) == {"detail": "The request was not received in time."}


def test_headers_that_arrive_in_pieces_within_the_timeout_are_served(bounded: Server) -> None:
    request = _request_with_header_of(1000)
    with _connect(bounded) as sock:
        for start in range(0, len(request), 250):
            sock.sendall(request[start : start + 250])
            time.sleep(HEADER_TIMEOUT / 8)
        assert _read_response(sock)[0] == 200


def test_a_body_at_one_byte_a_second_is_cut_off(bounded: Server) -> None:
    body = json.dumps({"phone": "+996555123456"}).encode()
    head = (
        f"POST {SEND} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    stop = threading.Event()
    with _connect(bounded) as sock:
        sock.sendall(head + body[:2])
        start = time.monotonic()
        sender = threading.Thread(target=_trickle, args=(sock, body[2:], 1.0, stop))
        sender.start()
        try:
            raw, _ = _until_closed(sock, timeout=BODY_TIMEOUT + SLACK + 1)
        finally:
            stop.set()
            sender.join()
    assert time.monotonic() - start >= BODY_TIMEOUT - 0.1
    assert _status(raw) == 408


def test_a_chunked_body_with_endless_trailers_is_refused(bounded: Server) -> None:
    """httptools keeps trailers like headers: a chunked body's bytes are bounded too."""
    head = (
        f"POST {SEND} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    body = b'{"phone": "+996555123456"}'
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\nX-Trailer: "
    sent = 0
    with _connect(bounded) as sock:
        sock.sendall(head + chunked)
        try:
            while sent < 50 * 1024 * 1024:
                sock.sendall(b"a" * 65536)
                sent += 65536
        except OSError:
            pass
        raw, _ = _until_closed(sock, timeout=5)
    assert sent < 50 * 1024 * 1024
    assert raw == b"" or raw.startswith(b"HTTP/1.1 413 "), raw[:100]


# ---------------------------------------------------------------- open connections


def test_limit_concurrency_refuses_the_connection_over_it_with_503(
    start_server: ServerFactory, migrated_sqlite: str
) -> None:
    limit = 3
    server = start_server(
        DATABASE_URL=migrated_sqlite,
        VERIFY_PROVIDER="console",
        LIMIT_CONCURRENCY=str(limit),
        HTTP_KEEPALIVE_TIMEOUT_SECONDS="30",
    )
    held = [_connect(server) for _ in range(limit)]
    try:
        for sock in held:
            sock.sendall(HEALTHZ)
            assert _read_response(sock)[0] == 200
        with _connect(server) as over:
            over.sendall(HEALTHZ)
            raw, _ = _until_closed(over, timeout=5)
        assert _status(raw) == 503
        assert _body(raw) == {"detail": "Too many connections; try again."}
        # The ones within the limit keep working.
        held[0].sendall(HEALTHZ)
        assert _read_response(held[0])[0] == 200
    finally:
        for sock in held:
            sock.close()
    # Once they close, a new connection is served again.
    deadline = time.monotonic() + 5
    while True:
        with _connect(server) as sock:
            sock.sendall(HEALTHZ)
            status, _, _ = _read_response(sock)
        if status == 200:
            break
        assert time.monotonic() < deadline, f"still {status} after the connections closed"
        time.sleep(0.1)


def test_a_silent_connection_over_the_limit_is_closed_at_once(
    start_server: ServerFactory, migrated_sqlite: str
) -> None:
    """Idle connections over the limit do not pile up until the header timeout."""
    server = start_server(
        DATABASE_URL=migrated_sqlite,
        VERIFY_PROVIDER="console",
        LIMIT_CONCURRENCY="2",
        HTTP_HEADER_TIMEOUT_SECONDS="30",
    )
    held = [_connect(server) for _ in range(2)]
    try:
        for sock in held:
            sock.sendall(HEALTHZ)
            assert _read_response(sock)[0] == 200
        with _connect(server) as over:
            raw, elapsed = _until_closed(over, timeout=5)
        assert raw == b""
        assert elapsed < 5
    finally:
        for sock in held:
            sock.close()
