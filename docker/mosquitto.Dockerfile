# Mosquitto from Debian's package, for hosts without a registry (scripts/images).
# Same layout as the eclipse-mosquitto image, so docker-compose.yml and mosquitto.conf
# serve both: config in /mosquitto/config, state in /mosquitto/data, uid 1883.
ARG BASE=checkpoint-monitor-base:bookworm
FROM ${BASE}
ARG DEBIAN_FRONTEND=noninteractive

# The user first, so the package's postinst keeps uid 1883 (the secrets directory on the
# host is chown'ed to it, docs/operations.md).
RUN groupadd --system --gid 1883 mosquitto \
    && useradd --system --uid 1883 --gid 1883 --home-dir /mosquitto --no-create-home \
       --shell /usr/sbin/nologin mosquitto \
    && apt-get update \
    && apt-get install -y --no-install-recommends mosquitto mosquitto-clients \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    # mosquitto.conf names the plugin where eclipse-mosquitto has it; Debian keeps it
    # under /usr/lib/<arch>/.
    && plugin=$(dpkg -L mosquitto | grep '/mosquitto_dynamic_security\.so$') \
    && ln -s "$plugin" /usr/lib/mosquitto_dynamic_security.so \
    && mkdir -p /mosquitto/config /mosquitto/data /mosquitto/secrets \
    && chown 1883:1883 /mosquitto/data /mosquitto/secrets

USER 1883:1883
EXPOSE 1883 8883
CMD ["/usr/sbin/mosquitto", "-c", "/mosquitto/config/mosquitto.conf"]
