# Phone Auth service image.
#   docker build -t phone-auth .        (or: podman build --format docker -t phone-auth .)
#   docker run --rm -p 8000:8000 -e DATABASE_URL=… -e JWT_SECRET_KEY=… phone-auth
# Default command: `serve` (uvicorn, one worker). Other commands of the same image:
#   migrations:  phone-auth migrate
#   retention:   phone-auth purge-verifications

ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: a virtualenv with the pinned dependencies -----------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Only the lock file first: this layer is rebuilt only when requirements change.
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt \
    && pip uninstall --yes pip setuptools wheel

# --- runtime ------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="phone-auth" \
      org.opencontainers.image.description="Phone-number login over Twilio Verify"

# A fixed non-root uid/gid so Kubernetes can check runAsNonRoot.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# `python -m app migrate` finds the migrations beside the package: /app/alembic.
COPY alembic.ini ./
COPY alembic ./alembic
COPY app ./app

# Bytecode is compiled now, so nothing is written at run time
# (the root filesystem can be read-only).
RUN python -m compileall -q /app/app /app/alembic

# The image defaults are for production; every setting can be overridden.
# DATABASE_URL defaults to a SQLite file under /tmp (writable, e.g. an emptyDir),
# never under /app; a real deployment sets a PostgreSQL URL.
# PYTHONPATH: `python -m app` finds the package from any working directory (the
# migration Job runs from `/`, where `/app` alone would be an empty namespace package).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    ENVIRONMENT=production \
    LOG_FORMAT=json \
    DATABASE_URL=sqlite+aiosqlite:////tmp/phone_auth.db

USER 10001:10001
EXPOSE 8000

# Liveness only (no dependency touched); slim images have no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

ENTRYPOINT ["python", "-m", "app"]
CMD ["serve"]
