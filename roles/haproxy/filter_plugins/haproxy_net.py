"""Input checks for the haproxy role: addresses with Python's ipaddress (no netaddr on the controller),
HAProxy times, the static paths. The site plan (plugins/filter/sizing.py) runs haproxy_input_errors for
every balancer before any host changes; the role runs it again in its own validation."""

import ipaddress
import re

# Every variable of the role that HAProxy reads as a time (its configuration manual, 2.5 "Time format").
TIME_VARIABLES = ("haproxy_timeout_queue", "haproxy_timeout_connect", "haproxy_timeout_client",
                  "haproxy_timeout_server", "haproxy_timeout_http_request", "haproxy_timeout_http_keep_alive",
                  "haproxy_check_inter", "haproxy_check_fastinter", "haproxy_check_downinter",
                  "haproxy_check_timeout", "haproxy_slowstart")


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


def _too_wide(network):
    """True for a network wider than /8 (IPv4) or /16 (IPv6). An IPv4-mapped IPv6 network
    (::ffff:0:0/96) counts as the IPv4 network it maps: HAProxy matches IPv4 clients against it."""
    mapped = ipaddress.ip_network("::ffff:0:0/96")
    if network.version == 6 and network.subnet_of(mapped):
        return network.prefixlen - 96 < 8
    if network.version == 6 and mapped.subnet_of(network):
        return True
    return network.prefixlen < (8 if network.version == 4 else 16)


def haproxy_bad_networks(values):
    """Return the entries of a list that are not networks in CIDR notation (address/prefix)."""
    return [v for v in (values or []) if not _is_network(v)]


def haproxy_is_address(value):
    """True when the value is a single IPv4 or IPv6 address."""
    return _is_address(value)


def haproxy_input_errors(settings):
    """The role's inputs that argument_specs cannot judge, checked together.

    settings: {variable: value} with any of TIME_VARIABLES, haproxy_admin_networks, haproxy_static_paths,
    haproxy_admin_paths and haproxy_internal_response_headers (lists of str); a variable that is absent
    is not checked. Returns a list of
    messages (str), each naming the variable and the value; [] when every input holds:
    - a time needs its unit: HAProxy reads a bare number as milliseconds, so `60` meant as 60 s is 60 ms
      (HAProxy's configuration manual, 2.5 "Time format": us, ms, s, m, h, d);
    - an admin network must be CIDR (address/prefix) and not (nearly) the whole address space: wider
      than /8 for IPv4 or /16 for IPv6 (0.0.0.0/0, ::/0, 0.0.0.0/1, ::ffff:0:0/96), which would open the
      direct vhosts and the stats page to (nearly) every client;
    - a static path must start with / and must not be / alone, which would send every request (the app's
      pages, its health checks) to the static tier;
    - an admin path must start with /, an internal response header be a header name."""
    errors = []
    for name in TIME_VARIABLES:
        if name not in settings:
            continue
        value = str(settings[name]).strip()
        if re.fullmatch(r"[0-9]+", value):
            errors.append(f"{name} is {value} without a unit, which HAProxy reads as {value} ms; write the unit "
                          f"({value}s for seconds, {value}ms for milliseconds)")
        elif not re.fullmatch(r"[0-9]+(us|ms|s|m|h|d)", value):
            errors.append(f"{name} is '{value}', not an HAProxy time (a number with us, ms, s, m, h or d)")
    networks = settings.get("haproxy_admin_networks")
    if networks is not None:
        bad = haproxy_bad_networks(networks)
        if bad:
            errors.append(f"haproxy_admin_networks must list networks in CIDR notation (address/prefix, e.g. "
                          f"10.0.0.0/8 or 192.0.2.7/32); these are not: {bad}")
        everyone = [v for v in networks if v not in bad and _too_wide(ipaddress.ip_network(v.strip(), strict=False))]
        if everyone:
            errors.append(f"haproxy_admin_networks has {everyone}, every address or nearly (wider than /8 for IPv4, "
                          "/16 for IPv6): the direct vhosts and the stats page would answer anyone; list the networks "
                          "your operators and monitoring use")
    paths = settings.get("haproxy_static_paths")
    if paths is not None:
        for path in paths:
            if not re.fullmatch(r"/\S*", str(path)):
                errors.append(f"haproxy_static_paths entry '{path}' must be a path starting with /")
            elif str(path) == "/":
                errors.append("haproxy_static_paths has '/', which sends every request (the app's pages and its "
                              "health checks) to the static tier; list the static prefixes (/static/, /media/)")
    for path in settings.get("haproxy_admin_paths") or []:
        if not re.fullmatch(r"/\S*", str(path)):
            errors.append(f"haproxy_admin_paths entry '{path}' must be a path starting with /")
    for header in settings.get("haproxy_internal_response_headers") or []:
        if not re.fullmatch(r"[A-Za-z0-9-]+", str(header)):
            errors.append(f"haproxy_internal_response_headers entry '{header}' must be a header name "
                          "(letters, digits, -)")
    return errors


class FilterModule:
    def filters(self):
        return {"haproxy_bad_networks": haproxy_bad_networks, "haproxy_is_address": haproxy_is_address,
                "haproxy_input_errors": haproxy_input_errors}
