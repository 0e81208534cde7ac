"""The OpenAPI document is a contract: committed as openapi.json, and usable from TypeScript.

`scripts/export-openapi` writes the file; the first test fails when the app's
schema drifts from it. The second generates TypeScript types from it with
`openapi-typescript` and type-checks a small frontend-style usage file with
`tsc`; both npm packages are installed on first use into `.cache/npm/` at the
project root (or `$OPENAPI_TS_CACHE_DIR`), ignored by git. It skips with a
reason where Node or npm is missing or the npm registry cannot be reached.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from app.core.config import Settings
from app.main import create_app
from tests.conftest import JWT_SECRET, ROOT
from tests.npm import npm_install

CONTRACT = ROOT / "openapi.json"
REGENERATE = "run scripts/export-openapi and commit openapi.json with the API change"
PACKAGES = ["openapi-typescript@7.13.0", "typescript@5.9.3"]


def render(document: dict[str, Any]) -> str:
    """openapi.json as scripts/export-openapi writes it."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def app_document(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"environment": "test", "jwt_secret_key": JWT_SECRET, **overrides}
    return create_app(Settings(_env_file=None, **values)).openapi()  # type: ignore[call-arg]


def test_committed_openapi_matches_the_app() -> None:
    assert CONTRACT.is_file(), f"openapi.json is missing: {REGENERATE}"
    committed = CONTRACT.read_text(encoding="utf-8")
    current = render(app_document())
    if committed != current:
        diff = "".join(
            list(
                difflib.unified_diff(
                    committed.splitlines(keepends=True),
                    current.splitlines(keepends=True),
                    "openapi.json (committed)",
                    "create_app(settings).openapi()",
                    n=2,
                )
            )[:80]
        )
        pytest.fail(f"The app's OpenAPI schema drifted from openapi.json: {REGENERATE}.\n{diff}")


def test_document_does_not_depend_on_settings() -> None:
    """One committed document serves every deployment."""
    assert app_document(
        verify_provider="console",
        cors_allow_origins=["https://shop.example"],
        jwt_algorithm="HS256",
        access_token_expire_seconds=2592000,
        rate_limit_enabled=False,
    ) == json.loads(CONTRACT.read_text(encoding="utf-8"))


def test_operation_ids_are_stable_names() -> None:
    """Generated clients name their methods after these."""
    document = json.loads(CONTRACT.read_text(encoding="utf-8"))
    ids = {
        operation["operationId"]
        for path in document["paths"].values()
        for operation in path.values()
    }
    assert {
        "send_verification",
        "verify_code",
        "refresh_tokens",
        "logout",
        "read_me",
        "update_me",
    } <= ids


# ---------------------------------------------------------------------------- TypeScript
USAGE = """\
import type { components, operations, paths } from "./api";

type Json<T> = T extends { content: { "application/json": infer B } } ? B : never;

type SendPost = paths["/api/v1/auth/send-verification"]["post"];
type SendBody = Json<SendPost["requestBody"]>;
type Sent = Json<SendPost["responses"][200]>;
type SendFailed = Json<SendPost["responses"][502]>;
type SendLimited = Json<SendPost["responses"][429]>;

type VerifyPost = operations["verify_code"];
type VerifyBody = Json<VerifyPost["requestBody"]>;
type Verified = Json<VerifyPost["responses"][200]>;

type Me = Json<paths["/api/v1/users/me"]["get"]["responses"][200]>;
type Unauthorized = Json<operations["read_me"]["responses"][401]>;
type User = components["schemas"]["UserOut"];

type RefreshBody = Json<operations["refresh_tokens"]["requestBody"]>;
type Refreshed = Json<operations["refresh_tokens"]["responses"][200]>;

export const send: SendBody = { phone: "+996555123456", channel: "sms" };
export const sendDefaultChannel: SendBody = { phone: "+1 (202) 555-0143" };

export function onSent(answer: Sent): string {
  const ok: boolean = answer.success ?? true;
  return `${ok} ${answer.message} ${answer.phone} ${answer.market} ${answer.language}` +
    ` ${answer.expires_in_minutes.toFixed(0)} ${answer.channel}`;
}

export function onSendFailed(answer: SendFailed | SendLimited): string {
  return "retry_after" in answer ? `${answer.detail} ${answer.retry_after}` : answer.detail;
}

export const verify: VerifyBody = { phone: send.phone, verification_code: "123456" };

export function onVerified(answer: Verified): [string, string, number, boolean, User] {
  const kind: string = answer.token_type ?? "bearer";
  return [answer.access_token + kind, answer.refresh_token, answer.expires_in,
    answer.is_new_user, answer.user];
}

export function showUser(user: Me): string {
  const active: boolean = user.is_active && user.is_verified;
  return `${user.id} ${user.name} ${user.phone} ${user.full_name} ${active}`;
}

export function onUnauthorized(answer: Unauthorized): string {
  return answer.detail;
}

type AuthSettings = Json<operations["auth_settings"]["responses"][200]>;

// The frontend flow: render the challenge the settings name, send again with its token.
export const sendWithToken: SendBody = {
  phone: "+996555123456", captcha_token: "0.token", app_hash: "FA+9qCX9VSu",
};
export function challengeToRender(settings: AuthSettings): [string, string | null, boolean] {
  const markets = settings.markets.map((m) => `${m.name}${m.country_code}${m.channels.join()}`);
  return [settings.captcha.provider + markets.join() + settings.code_length,
    settings.captcha.site_key, settings.captcha.may_be_required && settings.one_tap_supported];
}

export const refresh: RefreshBody = { refresh_token: "opaque" };
export function onRefreshed(answer: Refreshed): User {
  return answer.user;
}

// The contract's names and shapes, checked the other way round:
// @ts-expect-error phone is required
export const noPhone: SendBody = {};
// @ts-expect-error the user id is a string, not a number
export const numericId: User["id"] = 1;
// @ts-expect-error the challenge providers are named, not any string
export const unknownProvider: AuthSettings["captcha"]["provider"] = "funcaptcha";
// @ts-expect-error verify-code needs the code
export const noCode: VerifyBody = { phone: "+996555123456" };
"""


def _cache_dir() -> Path:
    return Path(os.environ.get("OPENAPI_TS_CACHE_DIR") or ROOT / ".cache" / "npm")


def _bin(directory: Path, name: str) -> Path:
    return directory / "node_modules" / ".bin" / name


@pytest.fixture(scope="session")
def ts_tools() -> Path:
    """The npm prefix with openapi-typescript and tsc, installed on first use."""
    directory = _cache_dir()
    return npm_install(
        directory,
        PACKAGES,
        [_bin(directory, "openapi-typescript"), _bin(directory, "tsc")],
        needed_for="for the TypeScript client test",
    )


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(  # noqa: S603
        command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"


@pytest.mark.node
def test_typescript_client_type_checks(ts_tools: Path, tmp_path: Path) -> None:
    generated = tmp_path / "api.d.ts"
    _run(
        [
            str(_bin(ts_tools, "openapi-typescript")),
            str(CONTRACT),
            "-o",
            str(generated),
            # A field with a default is optional in a request (`channel`), not required.
            "--default-non-nullable=false",
        ],
        tmp_path,
    )
    assert "send_verification" in generated.read_text()
    (tmp_path / "usage.ts").write_text(USAGE)
    _run(
        [
            str(_bin(ts_tools, "tsc")),
            "--noEmit",
            "--strict",
            "--exactOptionalPropertyTypes",
            "--target",
            "es2020",
            "--module",
            "es2020",
            "--moduleResolution",
            "bundler",
            "usage.ts",
        ],
        tmp_path,
    )
