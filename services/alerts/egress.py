"""Where webhooks may go: public addresses only, unless the operator allows more.

A webhook URL is typed by an admin, but its host decides what our network sends to:
without a rule the delivery log answers "is port 6379 open on 10.0.0.5?" (issue 14).
Refused: loopback, private (RFC 1918, unique local), link-local (the cloud metadata
address 169.254.169.254 and fd00:ec2::254 among them), CGNAT 100.64/10, multicast,
unspecified, reserved and documentation ranges, in every spelling the resolver accepts
(`0x7f000001`, `2130706433`, `0177.0.0.1`, `127.1`, `::ffff:127.0.0.1`, 6to4, NAT64).
`CPM_WEBHOOK_ALLOW_HOSTS` names host names and CIDRs that are allowed anyway (a
receiver on the LAN).

The check runs twice: when a route is saved (`check_url`: scheme, host, literal
addresses) and before each request (`pin`): the name is resolved, every address is
checked, and the request goes to that checked address (the Host header and TLS name
stay the host's), so a DNS answer that changes between the check and the connection
(rebinding) cannot redirect it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA = {
    ipaddress.ip_address("169.254.169.254"): "a cloud metadata address",
    ipaddress.ip_address("fd00:ec2::254"): "a cloud metadata address",
}
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")

Resolver = Callable[[str, int], Sequence[str]]


class RefusedTarget(ValueError):
    """The URL's host is not an address webhooks may be sent to."""


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def literal_address(host: str) -> IPAddress | None:
    """The address a host written as a number stands for, in any form the C resolver
    accepts (`inet_aton`: hex, octal, decimal, shortened); None for a name."""
    text = host.strip("[]").split("%", 1)[0]  # an IPv6 zone id changes nothing here
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if text and all(ch in "0123456789abcdefxABCDEFX." for ch in text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr in NAT64 or (int(addr) >> 32 == 0 and int(addr) > 1):  # NAT64, ::a.b.c.d
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def refusal(addr: IPAddress) -> str | None:
    """Why webhooks may not go to `addr`, or None for a public address."""
    if isinstance(addr, ipaddress.IPv6Address):
        inner = _embedded_ipv4(addr)
        if inner is not None:
            reason = refusal(inner)
            return f"{reason} (inside {addr})" if reason else None
    if addr in METADATA:
        return METADATA[addr]
    for name in ("unspecified", "loopback", "link_local", "multicast", "private", "reserved"):
        if getattr(addr, f"is_{name}"):
            return f"a {name.replace('_', '-')} address"
    if isinstance(addr, ipaddress.IPv4Address) and addr in CGNAT:
        return "a carrier-grade NAT (100.64/10) address"
    if not addr.is_global:
        return "not a public address"
    return None


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """The addresses that are refused, and the operator's exceptions."""

    allow_hosts: frozenset[str] = frozenset()
    allow_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, setting: str) -> EgressPolicy:
        """`CPM_WEBHOOK_ALLOW_HOSTS`: comma-separated host names and CIDRs (or single
        addresses), e.g. `127.0.0.0/8,::1,receiver.lan`."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for item in (part.strip() for part in setting.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
            except ValueError:
                if not all(ch.isalnum() or ch in "-._" for ch in item):
                    raise ValueError(
                        f"CPM_WEBHOOK_ALLOW_HOSTS: {item!r} is neither a host name nor a CIDR"
                    ) from None
                hosts.add(item.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows_address(self, addr: IPAddress) -> bool:
        return any(addr.version == net.version and addr in net for net in self.allow_networks)

    def check_address(self, addr: IPAddress) -> None:
        reason = refusal(addr)
        if reason and not self.allows_address(addr):
            raise RefusedTarget(
                f"webhook target {addr} is {reason}; allow it with CPM_WEBHOOK_ALLOW_HOSTS"
            )

    def check_url(self, url: str) -> str:
        """Scheme and host of a URL to be stored; literal addresses checked now, names
        when the request is made. Returns the host."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:  # e.g. an unclosed [IPv6 bracket
            raise RefusedTarget("url is not a valid URL") from None
        try:
            parts.port  # noqa: B018  (raises on a bad port)
        except ValueError:
            raise RefusedTarget("url has an invalid port") from None
        if parts.scheme not in ("http", "https") or not host:
            raise RefusedTarget("url must be an http(s) URL with a host")
        if any(ch.isspace() or not ch.isprintable() for ch in url):
            raise RefusedTarget("url must not contain spaces or control characters")
        host = host.rstrip(".")
        if host in self.allow_hosts:
            return host
        addr = literal_address(host)
        if addr is not None:
            self.check_address(addr)
        elif host in LOCAL_NAMES or host.endswith(LOCAL_SUFFIXES):
            raise RefusedTarget(
                f"webhook host {host!r} is a local name; allow it with CPM_WEBHOOK_ALLOW_HOSTS"
            )
        elif not all(ch.isalnum() or ch in "-._" for ch in host):
            raise RefusedTarget(f"webhook host {host!r} is not a valid host name")
        return host

    def pin(self, url: str, resolver: Resolver = _system_resolver) -> PinnedTarget:
        """Resolve the host, check every address it has, and aim at the first: the
        connection goes to an address that was checked (no second lookup)."""
        host = self.check_url(url)
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        literal = literal_address(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                found = resolver(host, port)
            except (OSError, UnicodeError) as exc:  # IDNA errors are UnicodeErrors
                raise RefusedTarget(f"cannot resolve the webhook host: {exc}") from None
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
            if not addresses:
                raise RefusedTarget("the webhook host has no address")
            if host not in self.allow_hosts:
                for addr in addresses:  # one bad answer spoils the name (rebinding)
                    self.check_address(addr)
        target = addresses[0]
        shown = f"[{target}]" if target.version == 6 else str(target)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = (f"{userinfo}@" if userinfo else "") + f"{shown}:{port}"
        pinned = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        host_header = host if parts.port is None else f"{host}:{parts.port}"
        return PinnedTarget(pinned, host_header, host, target)


@dataclass(frozen=True, slots=True)
class PinnedTarget:
    url: str  # the URL with the checked address in place of the name
    host_header: str
    tls_name: str  # what the certificate must name (SNI)
    address: IPAddress

    def post(self, client: httpx.Client, content: bytes, headers: dict[str, str]) -> Any:
        return client.post(
            self.url,
            content=content,
            headers={**headers, "Host": self.host_header},
            extensions={"sni_hostname": self.tls_name},
        )


STRICT = EgressPolicy()
