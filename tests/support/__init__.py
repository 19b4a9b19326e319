"""Shared helpers of the tests, by area: env (broker URL, secret, free ports),
databases, waiting, mqtt (the one device publisher, a collector, private brokers),
processes, ingest, simulation, webhooks (the one webhook receiver), alerts, api,
browser, reliability. Test modules import from here or from these modules, never from
a conftest or another test module.

The names below stay importable as `from tests.support import ...` (other branches
add tests that do).
"""

from tests.support.env import MQTT_URL, TEST_SECRET, free_port
from tests.support.mqtt import Broker, Collector, Device, Publisher, private_broker, publisher
from tests.support.processes import child_pids, tree_rss_kb
from tests.support.waiting import count, wait_until

__all__ = [
    "MQTT_URL",
    "TEST_SECRET",
    "Broker",
    "Collector",
    "Device",
    "Publisher",
    "child_pids",
    "count",
    "free_port",
    "private_broker",
    "publisher",
    "tree_rss_kb",
    "wait_until",
]
