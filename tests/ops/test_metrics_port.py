"""METRICS_PORT on the real server: /metrics leaves the API's port for its own port,
which serves nothing else and shows the same process's numbers."""

from __future__ import annotations

import httpx

from tests.helpers import ME, free_port
from tests.ops.conftest import Server, ServerFactory, matching, parse_metrics


def _requests_counted(samples_text: str, status: str) -> float:
    samples = parse_metrics(samples_text)
    return sum(
        value for _, value in matching(samples, "phone_auth_http_requests_total", status=status)
    )


def test_without_metrics_port_metrics_are_served_on_the_api_port(
    start_server: ServerFactory, migrated_sqlite: str
) -> None:
    server = start_server(DATABASE_URL=migrated_sqlite, VERIFY_PROVIDER="console")
    assert httpx.get(f"{server.base_url}{ME}").status_code == 401
    answer = httpx.get(f"{server.base_url}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert _requests_counted(answer.text, "401") == 1


def _check_split(server: Server, metrics_url: str) -> None:
    api = server.base_url
    assert httpx.get(f"{api}/metrics").status_code == 404
    assert httpx.get(f"{api}/metrics").json() == {"detail": "Not Found"}
    assert httpx.get(f"{api}/healthz").status_code == 200
    # The metrics port serves /metrics and nothing else.
    for path in ("/healthz", "/readyz", ME, "/docs", "/openapi.json", "/metrics/"):
        assert httpx.get(f"{metrics_url}{path}").status_code == 404, path
    answer = httpx.get(f"{metrics_url}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")


def test_with_metrics_port_metrics_leave_the_api_port(
    start_server: ServerFactory, migrated_sqlite: str
) -> None:
    metrics_port = free_port()
    server = start_server(
        DATABASE_URL=migrated_sqlite, VERIFY_PROVIDER="console", METRICS_PORT=str(metrics_port)
    )
    metrics_url = f"http://127.0.0.1:{metrics_port}"
    _check_split(server, metrics_url)
    # One process, one registry: what the API port answered is counted on the metrics port.
    for _ in range(3):
        assert httpx.get(f"{server.base_url}{ME}").status_code == 401
    assert _requests_counted(httpx.get(f"{metrics_url}/metrics").text, "401") == 3


def test_with_two_workers_each_accepts_on_both_ports(
    start_server: ServerFactory, migrated_sqlite: str
) -> None:
    metrics_port = free_port()
    server = start_server(
        DATABASE_URL=migrated_sqlite,
        VERIFY_PROVIDER="console",
        RATE_LIMIT_ENABLED="false",
        METRICS_PORT=str(metrics_port),
        WORKERS="2",
    )
    metrics_url = f"http://127.0.0.1:{metrics_port}"
    _check_split(server, metrics_url)
