# The application image: every service runs from it with a different `cpmon` command
# (see docker-compose.yml). BASE is the public Python image on an ordinary host, or the
# Debian base that scripts/images makes without a registry (Python from Debian's
# python3 package, 3.11 in bookworm).
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG DEBIAN_FRONTEND=noninteractive
# pip trusts the system's CAs (the Debian base adds the host's local ones, e.g. a proxy's)
ARG PIP_CERT=/etc/ssl/certs/ca-certificates.crt

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CPM_LOG_JSON=true \
    PATH=/opt/venv/bin:$PATH

RUN if ! command -v python3 >/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends python3 python3-venv \
        && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin; \
    fi \
    && python3 -m venv /opt/venv \
    && useradd --uid 10001 --no-create-home --home-dir /app --shell /usr/sbin/nologin cpm

WORKDIR /app
# Dependencies first, exactly the locked versions (requirements/lock.txt, hashes
# checked), so a code change does not reinstall them.
COPY requirements/lock.txt /tmp/lock.txt
RUN pip install --require-hashes --no-deps -r /tmp/lock.txt && rm /tmp/lock.txt
COPY pyproject.toml README.md alembic.ini ./
COPY services ./services
COPY devices ./devices
COPY migrations ./migrations
RUN pip install --no-deps . \
    && mkdir -p /app/var && chown cpm /app/var

USER 10001:10001
EXPOSE 8000
CMD ["cpmon", "--help"]
