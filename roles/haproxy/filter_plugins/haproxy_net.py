"""Address checks for the haproxy role, with Python's ipaddress (no netaddr on the controller)."""

import ipaddress


def _is_network(value):
    if not isinstance(value, str) or "/" not in value:
        return False
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return False
    return True


def _is_address(value):
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_address(value.strip())
    except ValueError:
        return False
    return True


def haproxy_bad_networks(values):
    """Return the entries of a list that are not networks in CIDR notation (address/prefix)."""
    return [v for v in (values or []) if not _is_network(v)]


def haproxy_is_address(value):
    """True when the value is a single IPv4 or IPv6 address."""
    return _is_address(value)


class FilterModule:
    def filters(self):
        return {"haproxy_bad_networks": haproxy_bad_networks, "haproxy_is_address": haproxy_is_address}
