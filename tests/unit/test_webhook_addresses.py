"""Which addresses a webhook may go to: public unicast only (outside dev), judged through the
IPv6 forms that carry an IPv4 address, and never a cloud metadata service."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from control_plane.webhooks.addresses import allowed, private_urls_allowed
from shared.settings import ControlPlaneSettings, Environment


@pytest.mark.parametrize(
    "address",
    ["93.184.215.14", "1.1.1.1", "2606:4700::1111", "64:ff9b::808:808", "2002:808:808::1"],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert allowed(ip_address(address), allow_private=False)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",  # carrier-grade NAT
        "169.254.1.1",  # link-local
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd12:3456::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1, which plain is_global calls global
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1, likewise
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "::7f00:1",  # IPv4-compatible, deprecated
        "233.252.0.1",  # multicast, which is_global calls global
        "ff0e::1",
    ],
)
def test_internal_addresses_are_refused_unless_private_urls_are_allowed(address: str) -> None:
    assert not allowed(ip_address(address), allow_private=False)
    assert allowed(ip_address(address), allow_private=True)


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",  # AWS, GCP, Azure
        "fd00:ec2::254",  # AWS IPv6
        "169.254.170.2",  # AWS ECS task credentials
        "168.63.129.16",  # Azure wireserver, which is_global calls global
        "100.100.100.200",  # Alibaba
        "192.0.0.192",  # Oracle, which is_global calls global
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    ],
)
def test_metadata_services_are_refused_everywhere(address: str) -> None:
    assert not allowed(ip_address(address), allow_private=False)
    assert not allowed(ip_address(address), allow_private=True)


@pytest.mark.parametrize(
    ("environment", "override", "expected"),
    [
        ("dev", None, True),
        ("test", None, False),
        ("prod", None, False),
        ("prod", True, True),
        ("dev", False, False),
    ],
)
def test_private_urls_are_allowed_only_in_dev_unless_set(
    environment: Environment, override: bool | None, expected: bool
) -> None:
    settings = ControlPlaneSettings.model_construct(
        environment=environment, webhook_allow_private_urls=override
    )
    assert private_urls_allowed(settings) is expected
