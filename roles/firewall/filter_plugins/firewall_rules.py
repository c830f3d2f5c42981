"""The firewall role's input checks and the rule set it renders, with Python's ipaddress (no netaddr
on the controller). Unit-tested in tests/test_firewall_rules.py."""

import ipaddress

PROTOCOLS = ("tcp", "udp")


def _network(value):
    """An address or a network (str) as an ip_network, or None when it is neither."""
    try:
        return ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        return None


def _rule_errors(rule, where):
    if not isinstance(rule, dict):
        return [f"{where} must be a mapping with port, proto, sources and service, got {rule!r}"]
    errors = []
    unknown = sorted(set(rule) - {"port", "proto", "sources", "service"})
    if unknown:
        errors.append(f"{where} has unknown keys {unknown} (port, proto, sources, service)")
    port = rule.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        errors.append(f"{where}: port must be a whole number 1-65535, got {port!r}")
    if rule.get("proto", "tcp") not in PROTOCOLS:
        errors.append(f"{where}: proto must be one of {list(PROTOCOLS)}, got {rule.get('proto')!r}")
    sources = rule.get("sources")
    if sources is not None:
        if not isinstance(sources, list):
            errors.append(f"{where}: sources must be a list of addresses or networks (CIDR), or null for "
                          f"anyone, got {sources!r}")
        else:
            bad = [s for s in sources if _network(s) is None]
            if bad:
                errors.append(f"{where}: sources has {bad}, neither an address nor a network (CIDR)")
    return errors


def firewall_input_errors(rules, extra_rules, ssh_networks, ssh_port, ssh_connection=None):
    """Every problem with the role's inputs, as a list of messages naming the variable (str); [] when
    they hold.

    rules, extra_rules: firewall_rules and firewall_extra_rules, lists of {port (int), proto ("tcp" or
    "udp", default tcp), sources (list of addresses or CIDR networks, or None for anyone), service (str)}.
    ssh_networks: firewall_ssh_networks, CIDR networks (str) that may open SSH (at least one).
    ssh_port: firewall_ssh_port (int).
    ssh_connection: the SSH_CONNECTION of Ansible's own session on the host ("client_ip client_port
    server_ip server_port", as sshd sets it), or None/"" when Ansible does not connect over SSH. The
    rules must admit it again, or the next connection after the firewall applies would be refused:
    its client address must be in ssh_networks and its server port must be ssh_port.
    """
    errors = []
    for variable, values in (("firewall_rules", rules), ("firewall_extra_rules", extra_rules)):
        if not isinstance(values, list):
            errors.append(f"{variable} must be a list of rules, got {values!r}")
            continue
        for index, rule in enumerate(values):
            errors.extend(_rule_errors(rule, f"{variable}[{index}]"))
    networks = [_network(n) for n in (ssh_networks or [])]
    bad = [n for n, parsed in zip(ssh_networks or [], networks) if parsed is None]
    if not ssh_networks or bad:
        errors.append(f"firewall_ssh_networks must list the networks (CIDR) that may open SSH, got {ssh_networks!r}")
    if isinstance(ssh_port, bool) or not isinstance(ssh_port, int) or not 1 <= ssh_port <= 65535:
        errors.append(f"firewall_ssh_port must be a port (1-65535), got {ssh_port!r}")
    fields = str(ssh_connection or "").split()
    if len(fields) == 4 and not bad and ssh_networks:
        client, server_port = _network(fields[0]), fields[3]
        if client is not None and not any(client.version == n.version and client.subnet_of(n) for n in networks):
            errors.append(f"Ansible connects from {fields[0]}, which firewall_ssh_networks {list(ssh_networks)} "
                          "does not admit: the next connection would be refused; add its network")
        if server_port != str(ssh_port):
            errors.append(f"Ansible connects to SSH on port {server_port}, but firewall_ssh_port is {ssh_port!r}: "
                          "the next connection would be refused; set firewall_ssh_port")
    return errors


def firewall_ruleset(rules):
    """The rules as nftables renders them: a list of {port, proto, service, anyone (bool), ip, ip6},
    ip and ip6 the sources of each family as the fewest CIDR networks (str), collapsed: an nftables
    set refuses overlapping intervals. A rule whose sources are [] admits nobody and is kept, with
    empty ip and ip6, so the file says so. Input as firewall_input_errors takes it (checked first)."""
    rendered = []
    for rule in rules:
        sources = rule.get("sources")
        networks = [_network(s) for s in (sources or [])]
        rendered.append({
            "port": rule["port"], "proto": rule.get("proto", "tcp"), "service": str(rule.get("service", "")),
            "anyone": sources is None,
            "ip": [str(n) for n in ipaddress.collapse_addresses(n for n in networks if n and n.version == 4)],
            "ip6": [str(n) for n in ipaddress.collapse_addresses(n for n in networks if n and n.version == 6)]})
    return rendered


class FilterModule:
    """Ansible's entry point for the filters above."""

    def filters(self):
        return {"firewall_input_errors": firewall_input_errors, "firewall_ruleset": firewall_ruleset}
