"""A pure-Python MQTT broker (amqtt) for `cpmon up` on a machine without Mosquitto.

Run as `python -m services.deploy.embedded_broker --host 127.0.0.1 --port 1883`.
What it lacks, measured against amqtt 0.12 (see docs/architecture.md, "The broker"):
MQTT 3.1.1 only (a v5 CONNECT is refused), no shared subscriptions (`$share/...` is
taken as a literal topic filter), nothing kept across its own restart, and messages of
an anonymous session are never queued: services must log in with a user name (any
password is accepted here; bind it to loopback only).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

log = logging.getLogger("services.deploy.embedded_broker")


def broker_config(host: str, port: int) -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {
            # A user name is required: amqtt keeps nothing for anonymous sessions.
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": False},
        },
    }


async def serve(host: str, port: int) -> None:
    from amqtt.broker import Broker

    broker = Broker(broker_config(host, port))
    await broker.start()
    log.info("embedded MQTT broker (amqtt, MQTT 3.1.1) on %s:%d", host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await broker.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    # amqtt logs every connection at INFO, and at ERROR each TCP probe that sends
    # nothing (`cpmon up` checks the port that way).
    logging.getLogger("amqtt").setLevel(logging.CRITICAL)
    logging.getLogger("transitions").setLevel(logging.WARNING)
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
