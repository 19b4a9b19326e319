# PostgreSQL from Debian's package, for hosts without a registry (scripts/images).
# Takes the official image's variables (POSTGRES_USER, POSTGRES_DB, POSTGRES_PASSWORD)
# and data directory, so docker-compose.yml serves both. Debian 12 ships PostgreSQL 15:
# a volume made by postgres:16 cannot be opened by it (or the reverse).
ARG BASE=checkpoint-monitor-base:bookworm
FROM ${BASE}
ARG DEBIAN_FRONTEND=noninteractive

ENV PG_MAJOR=15
ENV PATH=/usr/lib/postgresql/${PG_MAJOR}/bin:$PATH \
    PGDATA=/var/lib/postgresql/data

# uid 999 as in the official image; no cluster from the package: the entrypoint makes
# one in the volume on first start.
RUN groupadd --system --gid 999 postgres \
    && useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql \
       --shell /bin/sh postgres \
    && mkdir -p /etc/postgresql-common/createcluster.d \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/cpm.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-${PG_MAJOR} \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && mkdir -p "$PGDATA" /run/postgresql \
    && chown -R 999:999 /var/lib/postgresql /run/postgresql \
    && chmod 700 "$PGDATA"

COPY postgres-entrypoint.sh /usr/local/bin/cpm-postgres-entrypoint
USER 999:999
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/cpm-postgres-entrypoint"]
