"""Prometheus metrics, one registry per application.

Run one uvicorn worker per pod (scale with replicas): each process serves its
own numbers at /metrics and Prometheus adds them up across pods. The delivery
gauges (`phone_auth_delivery_*`, `phone_auth_sms_spend_reported`) are the
exception: they are read from the database at scrape time, so every replica shows
the same values and PromQL takes `max by (market)` of them, never `sum`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Every metric the service exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.http_requests = Counter(
            "phone_auth_http_requests_total",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_latency = Histogram(
            "phone_auth_http_request_duration_seconds",
            "HTTP request latency by route and status",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.verifications_started = Counter(
            "phone_auth_verifications_started_total",
            "Send attempts by market, channel and outcome (sent, test_number, or why not)",
            ["market", "channel", "outcome"],
            registry=registry,
        )
        self.verifications_approved = Counter(
            "phone_auth_verifications_approved_total",
            "Codes approved by market and channel",
            ["market", "channel"],
            registry=registry,
        )
        self.verifications_failed = Counter(
            "phone_auth_verifications_failed_total",
            "Code checks that failed, by market, channel and outcome",
            ["market", "channel", "outcome"],
            registry=registry,
        )
        self.twilio_latency = Histogram(
            "phone_auth_twilio_request_duration_seconds",
            "Twilio API call latency by operation and HTTP status",
            ["operation", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.twilio_errors = Counter(
            "phone_auth_twilio_errors_total",
            "Twilio failures by operation and Twilio error code (or transport error)",
            ["operation", "code"],
            registry=registry,
        )
        self.rate_limit_refusals = Counter(
            "phone_auth_rate_limit_refusals_total",
            "Requests refused by a rate limit, by limit",
            ["limit"],
            registry=registry,
        )
        self.rate_limit_fallbacks = Counter(
            "phone_auth_rate_limit_fallbacks_total",
            "Times Redis could not be reached and the limits fell back to the process's "
            "memory (once per outage)",
            registry=registry,
        )
        self.rate_limit_storage_degraded = Gauge(
            "phone_auth_rate_limit_storage_degraded",
            "1 while Redis cannot be reached and the limits are this process's own, else 0",
            registry=registry,
        )
        self.rate_limit_storage_retries = Counter(
            "phone_auth_rate_limit_storage_retries_total",
            "Redis calls of the limits that failed while Redis answered a health ping, "
            "and were asked again",
            registry=registry,
        )
        self.rate_limit_storage_failovers = Counter(
            "phone_auth_rate_limit_storage_failovers_total",
            "Times the Sentinel master of the limits' Redis moved to another server, as "
            "seen by a health ping",
            registry=registry,
        )
        self.rate_limit_evictions = Counter(
            "phone_auth_rate_limit_evictions_total",
            "In-process rate-limit windows evicted at RATE_LIMIT_MEMORY_MAX_KEYS "
            "(their clients or numbers start afresh)",
            registry=registry,
        )
        self.sms_spend = Counter(
            "phone_auth_sms_spend_usd_total",
            "Estimated SMS spend in USD by market and the provider that sent "
            "(price per verification from MARKETS)",
            ["market", "provider"],
            registry=registry,
        )
        self.twilio_circuit_open = Gauge(
            "phone_auth_twilio_circuit_open",
            "1 while the Twilio circuit breaker fails calls fast, else 0",
            registry=registry,
        )
        # Account lifecycle.
        self.account_deletions = Counter(
            "phone_auth_account_deletions_total",
            "Accounts deleted, by who asked (self, or admin)",
            ["by"],
            registry=registry,
        )
        self.phone_changes = Counter(
            "phone_auth_phone_changes_total",
            "Number changes by outcome (changed, in_use, or why the code was refused)",
            ["outcome"],
            registry=registry,
        )
        self.admin_actions = Counter(
            "phone_auth_admin_actions_total",
            "Admin changes to accounts by action (disable, enable, revoke_sessions, delete, "
            "set_roles) and where they came from (api, cli)",
            ["action", "via"],
            registry=registry,
        )
        self.challenges = Counter(
            "phone_auth_challenges_total",
            "Sends that needed a bot challenge (outcome required) and what became of their "
            "tokens (passed, failed, errored: no verdict), by why the challenge was needed",
            ["outcome", "reason"],
            registry=registry,
        )
        self.challenge_fail_open = Counter(
            "phone_auth_challenge_fail_open_total",
            "Sends let through without a verdict because the challenge provider failed "
            "and CAPTCHA_FAIL_OPEN is on",
            registry=registry,
        )
        self.provider_circuit_open = Gauge(
            "phone_auth_provider_circuit_open",
            "1 while a provider's circuit breaker fails calls fast, else 0, by provider",
            ["provider"],
            registry=registry,
        )
        self.provider_latency = Histogram(
            "phone_auth_provider_request_duration_seconds",
            "Provider API call latency by provider, operation and HTTP status "
            "(Twilio's also in phone_auth_twilio_request_duration_seconds)",
            ["provider", "operation", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.provider_errors = Counter(
            "phone_auth_provider_errors_total",
            "Provider failures by provider, operation and error (provider code, HTTP "
            "status or transport error)",
            ["provider", "operation", "code"],
            registry=registry,
        )
        self.provider_failovers = Counter(
            "phone_auth_provider_failovers_total",
            "Sends passed on to the next provider of a market's order, by market, the "
            "provider that failed and the next one",
            ["market", "provider", "next_provider"],
            registry=registry,
        )
        # Delivery, conversion and reported spend: read from the database when /metrics
        # is scraped (app.services.delivery.stats), the same on every replica.
        self.delivery_attempts = Gauge(
            "phone_auth_delivery_attempts",
            "Codes sent (provider attempts) in the window, by market; from the database, "
            "the same on every replica (aggregate with max, not sum)",
            ["market", "window"],
            registry=registry,
        )
        self.delivery_messages = Gauge(
            "phone_auth_delivery_messages",
            "Attempts of the window whose message the provider reports delivered, "
            "undelivered or failed, by market and status",
            ["market", "window", "status"],
            registry=registry,
        )
        self.delivery_conversion_rate = Gauge(
            "phone_auth_delivery_conversion_rate",
            "Share of the window's attempts with a known conversion status whose code was "
            "used, by market (no series without such an attempt)",
            ["market", "window"],
            registry=registry,
        )
        self.delivery_conversion_samples = Gauge(
            "phone_auth_delivery_conversion_samples",
            "Attempts of the window with a known conversion status, by market",
            ["market", "window"],
            registry=registry,
        )
        self.sms_spend_reported = Gauge(
            "phone_auth_sms_spend_reported",
            "What the providers report they charged for the window's attempts, in "
            "`currency`, by market and provider (the estimate is "
            "phone_auth_sms_spend_usd_total)",
            ["market", "provider", "currency", "window"],
            registry=registry,
        )
        self.delivery_stats_refreshed = Gauge(
            "phone_auth_delivery_stats_refreshed_timestamp_seconds",
            "When the delivery gauges were last read from the database (epoch seconds)",
            registry=registry,
        )
        self.delivery_stats_errors = Counter(
            "phone_auth_delivery_stats_errors_total",
            "Reads of the delivery gauges that failed (the previous values stay)",
            registry=registry,
        )
