"""deploy/prometheus/alerts.yaml: a valid rule file whose expressions name only metrics
the service exports, and whose conversion alert fires as its unit tests say (promtool,
when it is on PATH)."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.main import Clocks
from app.models.delivery_attempt import DeliveryAttempt
from tests.conftest import ROOT, ClientFactory, FakeClock

RULES = ROOT / "deploy" / "prometheus"
ALERTS = RULES / "alerts.yaml"
UNIT_TESTS = RULES / "alerts_test.yaml"
METRIC_NAME = re.compile(r"\b(phone_auth_[a-z0-9_]+)\b")


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_conversion_alert_has_a_duration_labels_and_what_to_do() -> None:
    (rule,) = [r for r in _rules() if r.get("alert") == "PhoneAuthSmsConversionDropWhileSendsRise"]

    assert rule["for"] == "15m"
    assert rule["labels"]["severity"]
    assert "What to do" in rule["annotations"]["description"]
    # Every replica shows the same gauges: summed, they would count each replica.
    assert "sum" not in rule["expr"]
    assert rule["expr"].count("max by (market)") == 6


async def test_every_metric_the_rules_name_is_exported(
    client_for: ClientFactory, db_engine: AsyncEngine, clock: FakeClock
) -> None:
    async with db_engine.begin() as connection:
        await connection.execute(
            insert(DeliveryAttempt),
            {
                "provider": "twilio",
                "attempt_sid": "VL" + "a" * 32,
                "verification_sid": "VE" + "a" * 32,
                "market": "KG",
                "channel": "sms",
                "converted": True,
                "price_micros": 5000,
                "price_currency": "USD",
                "attempted_at": datetime.fromtimestamp(clock.now - 60, UTC),
                "synced_at": datetime.fromtimestamp(clock.now, UTC),
            },
        )
    async with client_for(clocks=Clocks(wall=clock)) as client:
        text = (await client.get("/metrics")).text
    # Every sample's name, and every declared family (a labelled counter shows its
    # `# TYPE` line before its first sample).
    exported = {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    } | set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))

    named = {
        name
        for rule in _rules()
        for text_part in (rule["expr"], *rule.get("annotations", {}).values())
        for name in METRIC_NAME.findall(text_part)
    }

    assert named >= {
        "phone_auth_delivery_conversion_rate",
        "phone_auth_delivery_conversion_samples",
        "phone_auth_delivery_attempts",
    }
    assert named <= exported, named - exported


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not on PATH (it comes with Prometheus)")
    return path


def test_promtool_checks_the_rules() -> None:
    result = subprocess.run(  # noqa: S603 - promtool from PATH, our own files
        [_promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = subprocess.run(  # noqa: S603 - promtool from PATH, our own files
        [_promtool(), "test", "rules", UNIT_TESTS.name],
        cwd=RULES,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
