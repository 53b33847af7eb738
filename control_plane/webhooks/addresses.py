"""Which addresses a webhook may be sent to.

Outside ``dev`` an endpoint must be a public unicast address: a tenant's URL must not become a
way into our own network (loopback, private ranges, link-local, the cloud metadata services).
IPv6 forms that carry an IPv4 address (mapped, 6to4, NAT64) are judged by the address they
carry. Metadata addresses are refused everywhere, even where private URLs are allowed: nothing
legitimate listens there, and the credentials they hand out are the ones worth stealing.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

from shared.settings import ControlPlaneSettings

IPAddress = IPv4Address | IPv6Address

# AWS (IMDS, ECS task metadata, DNS, NTP; IPv4 and Nitro IPv6), Azure's wireserver, Alibaba,
# Oracle. GCP and Azure IMDS use 169.254.169.254 too.
METADATA = frozenset(
    ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.169.253",
        "169.254.169.123",
        "fd00:ec2::254",
        "fd00:ec2::253",
        "fd00:ec2::123",
        "168.63.129.16",
        "100.100.100.200",
        "192.0.0.192",
    )
)
_NAT64 = ip_network("64:ff9b::/96")


def private_urls_allowed(settings: ControlPlaneSettings) -> bool:
    """``PODIUM_WEBHOOK_ALLOW_PRIVATE_URLS`` when set, else only in ``dev``."""
    allow = settings.webhook_allow_private_urls
    return allow if allow is not None else settings.environment == "dev"


def _carried(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one stands for, if it stands for one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def _metadata(address: IPAddress) -> bool:
    carried = _carried(address) if isinstance(address, IPv6Address) else None
    return address in METADATA or carried in METADATA


def is_public(address: IPAddress) -> bool:
    """A globally routable unicast address that is no metadata service."""
    if isinstance(address, IPv6Address) and (carried := _carried(address)) is not None:
        return is_public(carried)
    return (
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and not _metadata(address)
    )


def allowed(address: IPAddress, *, allow_private: bool) -> bool:
    if _metadata(address):
        return False
    return allow_private or is_public(address)
