# Backprop Service: `docker build -t backprop-service .` then
# `docker run -p 8000:8000 -v backprop-data:/data backprop-service` (or `docker compose up`).
# tests/packaging/ checks this file with hadolint and replays its CMD and ENV against the wheel.

# --- builder: turn the source tree into a wheel (no dependencies: those come in at install) ---
FROM python:3.12-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY model/ model/
COPY service/ service/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- runtime: the wheel in a venv, run as an unprivileged user ---
FROM python:3.12-slim AS runtime

LABEL org.opencontainers.image.title="backprop-service" \
      org.opencontainers.image.description="Builds, trains and serves L-layer neural networks in numpy over REST." \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    BACKPROP_DATABASE_URL=sqlite:////data/backprop.db

COPY --from=builder /wheels /wheels
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels

# A fixed uid/gid (10001), so a bind-mounted host directory can be chown'ed to match.
# /data is created and owned here, before VOLUME, so a new named volume starts out writable.
RUN groupadd --system --gid 10001 backprop \
    && useradd --system --uid 10001 --gid backprop --home-dir /app --create-home \
       --shell /usr/sbin/nologin backprop \
    && mkdir /data \
    && chown backprop:backprop /data
VOLUME /data
WORKDIR /app
USER 10001:10001

EXPOSE 8000
# slim has no curl: probe with the standard library (urlopen raises, so exits 1, on non-2xx).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["backprop-service", "--host", "0.0.0.0", "--port", "8000"]
