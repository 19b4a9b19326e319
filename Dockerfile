# The application image: every service runs from it with a different `cpmon` command
# (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CPM_LOG_JSON=true

WORKDIR /app
# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p services devices migrations \
    && touch services/__init__.py devices/__init__.py migrations/__init__.py \
    && pip install . \
    && pip uninstall -y checkpoint-monitor
COPY services ./services
COPY devices ./devices
COPY migrations ./migrations
COPY alembic.ini ./
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /app cpm \
    && mkdir -p /app/var && chown cpm /app/var

USER cpm
EXPOSE 8000
CMD ["cpmon", "--help"]
