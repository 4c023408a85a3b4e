# syntax=docker/dockerfile:1
# The pgqueue worker image: `docker build -t pgqueue .`, then run the worker (the default) or
# `migrate`, `status` and the other `pgqueue` commands. docs/deployment.md explains each choice.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: install pgqueue and its dependencies into a virtual environment ----------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/pgqueue
WORKDIR /src
COPY pyproject.toml README.md worker.py ./
COPY pgqueue ./pgqueue
COPY migrations ./migrations
# Every dependency ships as a wheel, so no compiler is needed here either. The `worker` extra
# brings the extractors, storage clients and metrics; the embedded PostgreSQL stays out.
RUN /opt/pgqueue/bin/pip install ".[worker]" \
    && /opt/pgqueue/bin/python -m compileall -q /opt/pgqueue/lib

# --- run: the virtual environment on a clean base, as an unprivileged user ---------------------
FROM ${PYTHON_IMAGE} AS run
# tini as PID 1 reaps the extraction children's orphans and passes SIGTERM to the worker alone.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 pgqueue \
    && useradd --system --uid 10001 --gid pgqueue --home-dir /home/pgqueue --create-home pgqueue
COPY --from=build /opt/pgqueue /opt/pgqueue
ENV PATH=/opt/pgqueue/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PGQUEUE_LOG_FORMAT=json \
    PGQUEUE_METRICS_PORT=9100 \
    PGQUEUE_DATA_DIR=/home/pgqueue/.pgqueue
WORKDIR /home/pgqueue
USER 10001:10001
EXPOSE 9100
# Liveness only: an unreachable database makes a worker unready, not unhealthy (it reconnects
# by itself), so nothing restarts it for that.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['PGQUEUE_METRICS_PORT'] + '/livez', timeout=4)"]
# The first SIGTERM stops claiming and gives running jobs PGQUEUE_SHUTDOWN_GRACE seconds; give
# the container more than that before it is killed (docker stop -t, compose stop_grace_period,
# Kubernetes terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["tini", "--", "pgqueue"]
CMD ["worker"]
