#!/usr/bin/env bash
# The benchmark in one command: bench/run.sh [--quick] [bench/run.py options]
# Needs wrk and nginx + libnginx-mod-http-echo (Debian); without nginx the
# Python fake of tests/load/ is used.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh requirements-dev.txt
exec .venv/bin/python bench/run.py "$@"
