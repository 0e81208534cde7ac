#!/usr/bin/env bash
# The benchmark in one command: bench/run.sh [--quick] [bench/run.py options]
# Needs wrk and nginx + libnginx-mod-http-echo (Debian); without nginx the
# Python fake of tests/load/ is used. Installs the bench-only packages
# (aiohttp, httpx-aiohttp) into .cache/bench-deps, never into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh requirements-dev.txt
deps=.cache/bench-deps
if [ ! -d "$deps/httpx_aiohttp" ]; then
    echo "Installing httpx-aiohttp and aiohttp into $deps (bench only)" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --target "$deps" \
        -r bench/requirements.txt
    # Keep the .venv's own httpx, httpcore, anyio…: remove what the app already has.
    for pkg in httpx httpcore anyio h11 idna certifi sniffio typing_extensions; do
        rm -rf "$deps/$pkg" "$deps/$pkg"-*.dist-info "$deps/$pkg.py"
    done
    rm -rf "$deps/bin"
fi
exec .venv/bin/python bench/run.py "$@"
