"""plugins/filter/sizing.py's site_plan: the lab's inventory and facts in, the plan out (no host)."""

import re
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins" / "filter"))
import sizing  # noqa: E402

DEFAULTS = sizing.role_defaults()
GROUPS = {"loadbalancers": ["lb"], "webservers": ["web1", "web2"], "staticservers": ["web1", "web2"],
          "dbservers": ["db"], "cacheservers": ["cache"]}
ADDRESSES = {"lb": "172.30.0.10", "web1": "172.30.0.11", "web2": "172.30.0.12", "db": "172.30.0.13",
             "cache": "172.30.0.14"}


def host(address, vcpus=1, memtotal_mb=2048, **inventory):
    """One host's hostvars: facts with a default IPv4 address, host_resources' answer, inventory vars."""
    return {"ansible_facts": {"default_ipv4": {"address": address}},
            "site_host_resources": {"vcpus": vcpus, "memtotal_mb": memtotal_mb,
                                    "cpu_source": "cgroup cpu.max", "memory_source": "cgroup memory.max"},
            **inventory}


def lab(**per_host):
    """The lab: five hosts of 1 CPU and 2 GiB each; per_host={host: {var: value}} overrides."""
    return {name: host(address, **per_host.get(name, {})) for name, address in ADDRESSES.items()}


def plan(hostvars=None, groups=None, peak=None):
    return sizing.site_plan(hostvars or lab(), groups or GROUPS, DEFAULTS, peak)


def test_prefork_proxies_follow_the_balancers_and_keep_alive():
    """Each balancer may keep a web host's maxconn connections in use and as many idle, each pinning a
    prefork process while Apache keeps it alive; without keep-alive one proxy per WSGI thread is enough."""
    groups = {**GROUPS, "loadbalancers": ["lb", "lb2"]}
    hostvars = {**lab(), "lb2": host("172.30.0.15")}
    assert plan(hostvars, groups)["web"]["web1"]["prefork_workers"] == 2 * 2 * 2 + 8
    closed = lab(web1={"apache_keepalive": False}, web2={"apache_keepalive": "false"})
    assert {h: w["prefork_workers"] for h, w in plan(closed)["web"].items()} == {"web1": 2 + 8, "web2": 2 + 8}
    # Embedded mode: the processes run the app themselves and keep no connection alive (the role turns
    # keep-alive off there).
    embedded = plan(lab(web1={"apache_wsgi_mode": "embedded"}))["web"]["web1"]
    assert (embedded["prefork_workers"], embedded["proxy_connections_per_thread"]) == (2, 1)


def test_the_lab_plan_carries_every_cross_tier_number():
    p = plan()
    # 1 CPU x 2 per CPU = 2 WSGI processes of 1 thread; with keep-alive from the one balancer, a prefork
    # proxy for each connection it may hold in use or idle (2 x 2) + 8 extra.
    assert {h: (w["processes"], w["threads"], w["prefork_workers"], w["maxconn"]) for h, w in p["web"].items()} == {
        "web1": (2, 1, 12, 2), "web2": (2, 1, 12, 2)}
    assert p["web_total"]["concurrency"] == 4
    assert p["web_total"]["concurrency_n_minus_1"] == 2
    db = p["database"]
    assert (db["host"], db["address"], db["port"], db["socket"]) == ("db", "172.30.0.13", 3306, "/run/mysqld/mysqld.sock")
    # 4 + 10 admin is below the floor of 100; CONN_MAX_AGE is wait_timeout 600 - margin 60.
    assert (db["max_connections"], db["wait_timeout"], db["conn_max_age"]) == (100, 600, 540)
    assert db["client_addresses"] == ["172.30.0.11", "172.30.0.12"]
    assert p["cache"]["servers"] == ["172.30.0.14:11211"]
    assert p["cache"]["sizing"]["cache"]["memory_mb"] == 2048 * 70 // 100
    assert p["static"] == {"port": 8081, "root": "/var/www/scoreboard/static", "health_path": "/nginx-health",
                           "servers": {"web1": "172.30.0.11", "web2": "172.30.0.12"}}
    b = p["balancer"]
    assert (b["http_port"], b["stats_port"], b["app_port"], b["app_check_path"]) == (80, 8404, 80, "/healthz")
    assert b["app_server_weight"] == 100
    assert b["runtime_api_socket"] == "/run/haproxy/admin.sock"
    assert b["backends"] == {"app": "app", "app_failopen": "app_failopen", "static": "static",
                             "static_failopen": "static_failopen"}
    assert b["app_servers"] == {"web1": {"address": "172.30.0.11", "maxconn": 2},
                                "web2": {"address": "172.30.0.12", "maxconn": 2}}
    assert p["floors"]["kernel_sem"] == "250 32000 100 128"
    assert p["floors"]["nofile"] == {"cache": 1024 + 1024}


def test_the_numbers_follow_each_hosts_resources():
    p = plan(lab(web1={"vcpus": 4, "memtotal_mb": 8192}))
    assert p["web"]["web1"]["concurrency"] == 8
    assert p["web"]["web2"]["concurrency"] == 2
    assert p["web_total"] == {"hosts": 2, "concurrency": 10, "largest_host": "web1", "concurrency_n_minus_1": 2,
                              "peak_concurrency": None, "holds_peak": None, "holds_peak_n_minus_1": None}


def test_a_busy_web_tier_raises_max_connections_and_memcached_connections():
    p = plan(lab(web1={"apache_wsgi_processes": 60, "vcpus": 8, "memtotal_mb": 16384},
                 web2={"apache_wsgi_processes": 60, "vcpus": 8, "memtotal_mb": 16384},
                 db={"memtotal_mb": 4096}))
    assert p["database"]["max_connections"] == 120 + 10
    assert p["database"]["sizing"]["db"]["web_concurrency"] == {"web1": 60, "web2": 60}
    assert p["cache"]["sizing"]["cache"]["client_connections"] == 120


def test_inventory_values_win_over_role_defaults():
    p = plan(lab(db={"mysql_wait_timeout": 300, "mysql_port": 3307}, cache={"memcached_memory_mb": 64}))
    assert (p["database"]["wait_timeout"], p["database"]["conn_max_age"], p["database"]["port"]) == (300, 240, 3307)
    assert p["cache"]["servers"] == ["172.30.0.14:11211"]
    assert p["cache"]["sizing"]["cache"]["memory_mb"] == 64


def test_the_web_tier_reads_the_database_ca_where_the_mysql_role_writes_it():
    p = plan(lab())
    assert p["database"]["tls"] == {"enabled": True, "ca_file": "/etc/mysql/tls/ca.pem"}
    assert plan(lab(db={"mysql_tls_enabled": False}))["database"]["tls"]["enabled"] is False


def test_site_private_address_is_the_one_address_rule():
    p = plan(lab(web1={"site_private_address": "10.0.0.5"}))
    assert p["hosts"]["web1"]["address"] == "10.0.0.5"
    assert p["hosts"]["web1"]["address_source"] == "site_private_address"
    assert p["hosts"]["web2"]["address_source"] == "default IPv4 address (facts)"
    assert p["balancer"]["app_servers"]["web1"]["address"] == "10.0.0.5"
    assert p["database"]["client_addresses"][0] == "10.0.0.5"


def test_n_minus_1_says_whether_the_peak_holds_with_the_largest_host_down():
    p = plan(peak=3)
    assert (p["web_total"]["holds_peak"], p["web_total"]["holds_peak_n_minus_1"]) == (True, False)
    p = plan(peak=2)
    assert (p["web_total"]["holds_peak"], p["web_total"]["holds_peak_n_minus_1"]) == (True, True)


def test_a_peak_that_is_not_a_number_is_named():
    with pytest.raises(AnsibleFilterError, match="site_peak_concurrency must be a whole number of requests, got 'lots'"):
        plan(peak="lots")


def test_an_empty_site_private_address_falls_back_to_the_facts():
    assert plan(lab(web1={"site_private_address": ""}))["hosts"]["web1"]["address"] == "172.30.0.11"


def test_two_balancers_must_send_alike():
    hostvars = {**lab(lb={"haproxy_app_server_maxconn": 7}), "lb2": host("172.30.0.20", haproxy_app_server_weight=50)}
    with pytest.raises(AnsibleFilterError) as err:
        plan(hostvars, {**GROUPS, "loadbalancers": ["lb", "lb2"]})
    assert "the balancers set different haproxy_app_server_maxconn (lb: 7, lb2: None)" in str(err.value)
    assert "the balancers set different haproxy_app_server_weight (lb: 100, lb2: 50)" in str(err.value)


def test_the_balancer_override_sets_every_servers_maxconn():
    assert {w["maxconn"] for w in plan(lab(lb={"haproxy_app_server_maxconn": 1}))["web"].values()} == {1}
    # Above the concurrency, only when no kept-alive connection pins a prefork process.
    closed = lab(lb={"haproxy_app_server_maxconn": 7}, web1={"apache_keepalive": False}, web2={"apache_keepalive": False})
    assert {w["maxconn"] for w in plan(closed)["web"].values()} == {7}
    event = {"apache_mpm": "event"}
    assert {w["maxconn"] for w in plan(lab(lb={"haproxy_app_server_maxconn": 0}, web1=event, web2=event))["web"].values()} == {0}


@pytest.mark.parametrize("maxconn", [7, 0])
def test_a_maxconn_above_what_the_prefork_sizing_holds_is_refused(maxconn):
    with pytest.raises(AnsibleFilterError, match=rf"web1: haproxy_app_server_maxconn {maxconn} .* pins one of its 12 prefork"):
        plan(lab(lb={"haproxy_app_server_maxconn": maxconn}))


def test_roles_sharing_a_host_share_its_memory():
    groups = {**GROUPS, "cacheservers": ["db"]}
    hostvars = lab(db={"memtotal_mb": 8192, "memcached_memory_mb": 1024})
    p = plan(hostvars, groups)
    assert p["hosts"]["db"]["memory_mb"] == {"mysql": p["database"]["sizing"]["db"]["buffer_pool_mb"]
                                             + p["database"]["sizing"]["db"]["connections_mb"], "memcached": 1024}
    with pytest.raises(AnsibleFilterError) as err:
        plan(lab(db={"memtotal_mb": 8192, "memcached_memory_mb": 4096}), groups)
    # pool 4224 (0.6 of 7168, in 128 MiB steps) + 363 of connections, the cache 4096, 1024 reserved.
    assert "db: its roles together take mysql 4587 MiB + memcached 4096 MiB + 1024 MiB reserved = 9707 MiB, " \
           "above its 8192 MiB" in str(err.value)


@pytest.mark.parametrize(("hostvars", "groups", "message"), [
    (lab(web2={"site_private_address": "172.30.0.11"}), GROUPS,
     "address 172.30.0.11 is the address of 2 inventory hosts (web1, web2)"),
    (lab(web1={"nginx_static_port": 80}), GROUPS, "web1: port 80 is used twice (apache_listen_port, nginx_static_port)"),
    (lab(web2={"apache_listen_port": 8080}), GROUPS, "the web hosts listen on different ports (apache_listen_port: 80, 8080)"),
    (lab(db={"memtotal_mb": 1024}), GROUPS, "db: MariaDB cannot take the web tier's concurrency on this host's memory"),
    (lab(db={"mysql_max_connections": 3}), GROUPS, "db: max_connections 3 (mysql_max_connections) is below the web "
     "tier's concurrency 4"),
    (lab(db={"mysql_conn_max_age": 600}), GROUPS, "db: the app's CONN_MAX_AGE 600 s (mysql_conn_max_age) must be "
     "0 (a connection per request) or more and below mysql_wait_timeout 600 s"),
    (lab(db={"mysql_wait_timeout": 30}), GROUPS, "db: the app's CONN_MAX_AGE -30 s (mysql_wait_timeout - "
     "mysql_conn_max_age_margin 60) must be 0 (a connection per request) or more"),
    (lab(web1={"apache_wsgi_processes": 40}), GROUPS, "web1: 40 WSGI processes (apache_wsgi_processes) do not fit"),
    (lab(cache={"memcached_memory_mb": 4000}), GROUPS, "cache: memcached's 4000 MiB (memcached_memory_mb) do not fit"),
    (lab(cache={"memcached_max_connections": 5}, web1={"apache_wsgi_processes": 6}), GROUPS,
     "cache: memcached's max connections 5 (memcached_max_connections) are below the 8 the web tier opens"),
    (lab(cache={"site_private_address": "not-an-address"}), GROUPS, "cache: no usable private address"),
    # The time budget: each bound below the one in front of it.
    (lab(db={"mysql_app_max_statement_time": 15}), GROUPS, "db: mysql_app_max_statement_time 15 s must be below "
     "mysql_app_read_timeout 15 s"),
    (lab(web2={"apache_wsgi_request_timeout": 15}), GROUPS, "web2: apache_wsgi_request_timeout 15 s must be above "
     "mysql_app_read_timeout 15 s (db)"),
    (lab(lb={"haproxy_timeout_server": "30s"}), GROUPS, "web1: apache_wsgi_request_timeout 30 s must be below "
     "haproxy_timeout_server 30 s (lb)"),
    # mod_wsgi averages over a process's threads: one request alone may run threads x request-timeout.
    (lab(web2={"apache_wsgi_threads": 3}), GROUPS, "web2: apache_wsgi_request_timeout 30 s x 3 WSGI threads = 90 s "
     "must be below haproxy_timeout_server 60 s (lb)"),
    (lab(web1={"apache_wsgi_request_timeout": 0}, lb={"haproxy_timeout_server": "10s"}), GROUPS,
     "web1: mysql_app_read_timeout 15 s must be below haproxy_timeout_server 10 s (lb)"),
    (lab(lb={"haproxy_timeout_server": "1 minute"}), GROUPS, "lb: haproxy_timeout_server: '1 minute' is not an HAProxy time"),
    # The balancer's own inputs, refused here too: before any host changes.
    (lab(lb={"haproxy_timeout_client": 60}), GROUPS, "lb: haproxy_timeout_client is 60 without a unit, which HAProxy "
     "reads as 60 ms; write the unit (60s for seconds, 60ms for milliseconds)"),
    (lab(lb={"haproxy_check_inter": "2 s"}), GROUPS, "lb: haproxy_check_inter is '2 s', not an HAProxy time"),
    (lab(lb={"haproxy_admin_networks": ["10.0.0.0/8", "0.0.0.0/0"]}), GROUPS,
     "lb: haproxy_admin_networks has ['0.0.0.0/0'], every address"),
    (lab(lb={"haproxy_admin_networks": ["::/0"]}), GROUPS, "lb: haproxy_admin_networks has ['::/0'], every address"),
    # Nearly every address, or every IPv4 client through the IPv4-mapped IPv6 space.
    (lab(lb={"haproxy_admin_networks": ["0.0.0.0/1", "128.0.0.0/1", "10.0.0.0/8"]}), GROUPS,
     "lb: haproxy_admin_networks has ['0.0.0.0/1', '128.0.0.0/1'], every address or nearly"),
    (lab(lb={"haproxy_admin_networks": ["::ffff:0:0/96"]}), GROUPS, "has ['::ffff:0:0/96'], every address"),
    (lab(lb={"haproxy_max_request_body_mb": 2048}), GROUPS, "lb: haproxy_max_request_body_mb must be 0 (no cap) to 953"),
    (lab(lb={"haproxy_admin_networks": ["10.1.2.3"]}), GROUPS, "these are not: ['10.1.2.3']"),
    (lab(lb={"haproxy_static_paths": ["/static/", "/"]}), GROUPS, "lb: haproxy_static_paths has '/', which sends "
     "every request"),
    (lab(lb={"haproxy_static_paths": ["static/"]}), GROUPS, "lb: haproxy_static_paths entry 'static/' must be a path"),
    (lab(lb={"haproxy_stats_port": 80}), GROUPS, "lb: port 80 is used twice"),
    (lab(lb={"haproxy_max_request_body_mb": -1}), GROUPS, "lb: haproxy_max_request_body_mb must be 0 (no cap) to 953 "
     "MiB"),
    # The data tier listens on the plan's address: never everywhere, nowhere reachable, or on the Internet.
    (lab(cache={"site_private_address": "0.0.0.0"}), GROUPS, "cache: memcached would listen on 0.0.0.0 "
     "(site_private_address), a wildcard"),
    (lab(db={"site_private_address": "127.0.0.1"}), GROUPS, "db: MariaDB would listen on 127.0.0.1 "
     "(site_private_address), loopback"),
    (lab(db={"site_private_address": "8.8.4.4"}), GROUPS, "db: MariaDB would listen on 8.8.4.4 "
     "(site_private_address), a public address"),
    (lab(cache={"site_private_address": "2001:4860::8844"}), GROUPS, "cache: memcached would listen on "
     "2001:4860::8844 (site_private_address), a public address"),
    (lab(), {**GROUPS, "dbservers": ["db", "ghost"]}, "ghost"),
])
def test_a_plan_that_cannot_hold_names_the_host_and_the_numbers(hostvars, groups, message):
    with pytest.raises((AnsibleFilterError, KeyError)) as err:
        sizing.site_plan(hostvars, groups, DEFAULTS, None)
    assert message in str(err.value)


def test_a_slow_request_is_ended_by_the_database_first_then_mod_wsgi_then_the_balancer():
    p = plan()
    assert p["time_budget"] == {"server_timeout_s": {"lb": 60}, "request_timeout_s": {"web1": 30, "web2": 30},
                                "read_timeout_s": 15, "max_statement_time_s": 10}
    # The web tier reads the driver's timeout from the database's entry (playbooks/vars/web_tier.yml).
    assert (p["database"]["read_timeout"], p["database"]["max_statement_time"]) == (15, 10)
    # 0 switches a bound off; the others still keep their order.
    off = plan(lab(db={"mysql_app_max_statement_time": 0, "mysql_app_read_timeout": 0}))
    assert off["time_budget"]["read_timeout_s"] == 0
    # Embedded mode has no daemon process to restart: no WSGI bound.
    assert plan(lab(web1={"apache_wsgi_mode": "embedded"}))["time_budget"]["request_timeout_s"]["web1"] == 0


@pytest.mark.parametrize(("text", "seconds"), [("60s", 60), ("1m", 60), ("500ms", 0.5), ("30000", 30), ("2h", 7200)])
def test_haproxy_times_are_read_in_its_units(text, seconds):
    assert sizing.haproxy_seconds(text) == seconds


def test_a_tier_playbook_plans_with_the_groups_it_has():
    p = plan(groups={"webservers": ["web1", "web2"], "dbservers": ["db"]})
    assert (p["database"]["max_connections"], p["cache"]["servers"], p["static"], p["balancer"]["hosts"]) == (
        100, [], None, [])


def test_a_static_tier_alone_plans_without_a_web_tier():
    p = plan(groups={"staticservers": ["web1"]})
    assert (p["web"], p["web_total"]["concurrency"], p["static"]["port"], p["database"]) == ({}, 0, 8081, None)


@pytest.mark.parametrize(("host_name", "variable", "value", "what"), [
    ("db", "mysql_wait_timeout", "ten minutes", "a whole number (int)"),
    ("web1", "apache_wsgi_threads", "many", "a whole number (int)"),
    ("db", "mysql_innodb_buffer_pool_ratio", "most", "a number (float)"),
])
def test_a_value_of_the_wrong_type_is_named_by_its_variable(host_name, variable, value, what):
    with pytest.raises(AnsibleFilterError, match=rf"site_plan: {host_name}: {variable} must be {re.escape(what)}"):
        plan(lab(**{host_name: {variable: value}}))


def test_every_problem_is_listed_at_once():
    with pytest.raises(AnsibleFilterError) as err:
        plan(lab(db={"mysql_max_connections": 3}, cache={"memcached_memory_mb": 4000}))
    assert "db: max_connections 3" in str(err.value) and "cache: memcached's 4000 MiB" in str(err.value)


def test_the_bundles_own_role_defaults_are_the_default():
    assert sizing.site_plan(lab(), GROUPS, None, None) == plan()


def test_a_template_default_the_plan_needs_is_refused():
    defaults = {**DEFAULTS, "nginx_static": {**DEFAULTS["nginx_static"], "nginx_static_root": "{{ x }}"}}
    with pytest.raises(AnsibleFilterError, match="nginx_static_root is a template"):
        sizing.site_plan(lab(), GROUPS, defaults, None)


def test_a_public_data_tier_address_needs_the_host_to_allow_it():
    allowed = lab(db={"site_private_address": "8.8.4.4", "site_allow_public_address": True})
    assert plan(allowed)["database"]["address"] == "8.8.4.4"
    # Private, shared (RFC 6598) and unique-local addresses need nothing.
    for address in ("10.1.2.3", "192.168.7.7", "100.64.0.9", "fd00::5"):
        assert plan(lab(cache={"site_private_address": address}))["hosts"]["cache"]["address"] == address


def test_the_request_body_cap_is_the_balancers_for_apache_too():
    assert plan()["balancer"]["max_request_body_mb"] == DEFAULTS["haproxy"]["haproxy_max_request_body_mb"] == 20
    assert plan(lab(lb={"haproxy_max_request_body_mb": "100"}))["balancer"]["max_request_body_mb"] == 100
    # Two balancers must agree: Apache gets one number.
    groups = {**GROUPS, "loadbalancers": ["lb", "lb2"]}
    hostvars = {**lab(lb={"haproxy_max_request_body_mb": 5}), "lb2": host("172.30.0.15")}
    with pytest.raises(AnsibleFilterError, match=r"the balancers set different haproxy_max_request_body_mb \(lb: 5, lb2: 20\)"):
        plan(hostvars, groups)


@pytest.mark.parametrize("address,problem", [
    ("0.0.0.0", "a wildcard"), ("::", "a wildcard"), ("0:0:0:0:0:0:0:0", "a wildcard"),
    ("::ffff:0.0.0.0", "a wildcard"), ("127.0.0.1", "loopback"), ("::ffff:127.0.0.1", "loopback"), ("::1", "loopback"),
    ("8.8.4.4", "a public address"), ("10.0.0.5", None), ("fd12::5", None), ("db.internal", None),
])
def test_listen_address_problem(address, problem):
    found = sizing.listen_address_problem(address)
    assert (re.split(r"[:,]", found)[0] if found else None) == problem
    assert sizing.listen_address_problem("8.8.4.4", allow_public=True) is None


def _rules(p, host):
    return {r["port"]: r["sources"] for r in p["firewall"][host]}


def test_firewall_admits_each_port_from_who_needs_it_only():
    """Each tier's ports open to the hosts that use them (docs/security.md, "Who may reach what"):
    memcached and MariaDB to the web hosts, Apache and nginx to the balancer and the admin networks,
    the site to anyone, the stats page to the admin networks only."""
    p = plan(lab(lb={"haproxy_admin_networks": ["10.8.0.0/16", "10.8.3.0/24", "2001:db8::/48"]}))
    web_sources = ["10.8.0.0/16", "172.30.0.10/32", "2001:db8::/48"]
    assert _rules(p, "web1") == {80: web_sources, 8081: web_sources}
    assert _rules(p, "cache") == {11211: ["172.30.0.11/32", "172.30.0.12/32"]}
    assert _rules(p, "db") == {3306: ["172.30.0.11/32", "172.30.0.12/31"]}
    assert _rules(p, "lb") == {80: None, 8404: ["10.8.0.0/16", "2001:db8::/48"]}
    assert all(r["proto"] == "tcp" and r["service"] for rules in p["firewall"].values() for r in rules)


def test_firewall_follows_tls_the_stats_switch_and_hosts_in_several_groups():
    """The HTTPS port opens when a certificate is set, the stats port closes with the page; a host that
    is web and cache host at once gets both tiers' ports; without web hosts the data tier admits nobody
    but itself."""
    p = plan(lab(lb={"haproxy_tls_certificate": "/etc/haproxy/site.pem", "haproxy_stats_enabled": False}))
    assert _rules(p, "lb") == {80: None, 443: None}
    both = plan(lab(web2={"memcached_memory_mb": 256}), {**GROUPS, "cacheservers": ["web2"]})
    assert set(_rules(both, "web2")) == {80, 8081, 11211}
    assert _rules(both, "web2")[11211] == ["172.30.0.11/32", "172.30.0.12/32"]
    alone = plan(groups={**GROUPS, "webservers": [], "staticservers": []})
    assert _rules(alone, "cache") == {11211: []}
    assert _rules(alone, "db") == {3306: ["172.30.0.13/32"]}


def test_backups_follow_the_schedule_and_the_binary_log():
    """The bundle's defaults: one backup a day at 03:15, kept 7 days, the binary log kept 8 days (it
    reaches back to the oldest kept backup: 7 d + 24 h); a point in time up to 8 days back restores."""
    b = plan()["backups"]["db"]
    assert b["on_calendar"] == "*-*-* 03:15:00"
    assert (b["interval_hours"], b["retention_days"], b["window_hours"], b["restorable_hours"]) == (24, 7, 192, 144)
    assert b["binlog"] == {"enabled": True, "basename": "/var/log/mysql/mariadb-bin", "retention_hours": 192}
    assert b["alert_age_hours"] == 26
    four = plan(lab(db={"mysql_backup_interval_hours": 4, "mysql_backup_start_time": "01:30",
                        "mysql_backup_retention_days": 2, "mysql_binlog_retention_hours": 52}))["backups"]["db"]
    assert four["on_calendar"] == "*-*-* 01/4:30:00"
    assert four["window_hours"] == 52


@pytest.mark.parametrize(("db", "message"), [
    ({"mysql_backup_interval_hours": 5}, "db: mysql_backup_interval_hours 5 must divide a day"),
    ({"mysql_backup_interval_hours": 12, "mysql_backup_retention_days": 0.25},
     "db: mysql_backup_retention_days 0.25 (6 h) is shorter than the backup interval mysql_backup_interval_hours 12 h"),
    ({"mysql_backup_retention_days": 14},
     "db: mysql_binlog_retention_hours 192 h does not reach back to the oldest kept backup "
     "(mysql_backup_retention_days 14 d + mysql_backup_interval_hours 24 h = 360 h): raise it to 360"),
    ({"mysql_backup_keep_min": 5, "mysql_backup_keep_max": 3}, "db: mysql_backup_keep_min 5 must be at least 1"),
    ({"mysql_backup_alert_age_hours": 12}, "db: mysql_backup_alert_age_hours 12 is below the backup interval"),
    ({"mysql_backup_interval_hours": 1, "mysql_binlog_retention_hours": 200},
     "db: mysql_backup_keep_max 30 would prune backups the retention keeps: 7 d every 1 h is 169 backups"),
    ({"mysql_backup_start_time": "3am"}, "db: mysql_backup_start_time must be HH:MM (got '3am')"),
    ({"mysql_backup_retention_days": "a week"}, "db: the backup settings must be numbers"),
])
def test_a_backup_schedule_that_cannot_keep_its_promise_is_refused(db, message):
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        plan(lab(db=db))


def test_backups_off_or_without_binary_log_check_less():
    """With backups off nothing is checked; with the binary log off, its retention is not either."""
    assert plan(lab(db={"mysql_backup_enabled": False, "mysql_backup_interval_hours": 5}))["backups"]["db"]["enabled"] is False
    off = plan(lab(db={"mysql_binlog_enabled": False, "mysql_backup_retention_days": 30,
                       "mysql_backup_keep_max": 40}))["backups"]["db"]
    assert off["binlog"]["enabled"] is False


def test_backup_hosts_pull_copies_over_ssh_from_the_database_hosts_only():
    """With a backupservers group, each database host's SSH port opens to the backup hosts (their
    rrsync account), and each backup host gets its list of sources; without one, nothing opens."""
    groups = {**GROUPS, "backupservers": ["store"]}
    hostvars = {**lab(), "store": host("172.30.0.20")}
    p = plan(hostvars, groups)
    ssh = [r for r in p["firewall"]["db"] if r["port"] == 22]
    assert [r["sources"] for r in ssh] == [["172.30.0.20/32"]]
    assert p["backup_copies"]["store"] == [{"source": "db", "address": "172.30.0.13", "ssh_port": 22,
                                            "reader": "mysql-backup-reader", "remote_dir": "/var/backups/mariadb",
                                            "alert_age_hours": 26, "retention_days": 7}]
    assert p["firewall"]["store"] == []
    assert not [r for r in plan()["firewall"]["db"] if r["port"] == 22]
