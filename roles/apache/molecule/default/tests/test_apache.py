"""The apache role on a converged web host: prefork sized from what the host can use, WSGI processes that
stay alive, the vhosts, files served without Python, and a reload under load that fails nothing."""

import os
import pathlib
import re
import sys

import pytest
import testinfra.utils.ansible_runner
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[5] / "molecule" / "resources" / "tests"))
from scenario import container_limits, hostvars, other_host, recap, run_playbook  # noqa: E402

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts(
    "webservers"
)

ROLE = pathlib.Path(__file__).parents[3]
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
# The playbook passes django_app's defaults through: the same names as the apache role's defaults.
APP = "scoreboard"
APP_ROOT = f"/srv/{APP}"
DOMAIN_VAR = "site_domain"


@pytest.fixture(scope="module")
def hvars(host):
    """The role's defaults with the scenario's inventory variables over them."""
    return {**DEFAULTS, **hostvars(host)}


# The web host's container limits (molecule.yml): the host is sized as the small machine they make.
CPUS, MEMORY_MB = container_limits("apache-web1", pathlib.Path(__file__).parents[1])


@pytest.fixture(scope="module")
def facts(host):
    return host.ansible("setup", "gather_subset=!all,hardware,network")["ansible_facts"]


@pytest.fixture(scope="module")
def usable(facts):
    """The CPUs and MiB the web host can use: the machine's, cut by the container's limits."""
    return min(int(facts["ansible_processor_vcpus"]), CPUS), min(int(facts["ansible_memtotal_mb"]), MEMORY_MB)


def test_sizing_follows_the_container_limits_not_the_machine(host, facts, usable):
    """processor_vcpus and memtotal_mb show the whole machine inside the container; the sizing
    must not: it reads the cgroup's CPU quota and memory limit. The prefork file says what it used."""
    if int(facts["ansible_memtotal_mb"]) <= MEMORY_MB:
        pytest.skip(f"this machine has no more than the container's {MEMORY_MB} MiB")
    config = host.file("/etc/apache2/conf-available/site-prefork.conf").content_string
    vcpus, memtotal_mb = usable
    assert f"# {memtotal_mb} MiB, from a memory limit of {MEMORY_MB} MiB." in config, config
    if int(facts["ansible_processor_vcpus"]) > CPUS:
        assert f"use: {vcpus} CPU(s), from a CPU quota of 1 CPU;" in config, config


@pytest.fixture(scope="module")
def sizing(hvars, usable):
    """What the role's formula gives for this host, computed here from the container's limits and the
    defaults."""
    vcpus, memtotal_mb = usable
    daemon = hvars["apache_wsgi_mode"] == "daemon"
    threads = int(hvars["apache_wsgi_threads"]) if daemon else 1
    proxy_mb = int(hvars["apache_prefork_process_memory_mb"]) if daemon else 0
    extra = int(hvars["apache_prefork_extra_workers"]) if daemon else 0
    # With keep-alive, the one balancer the role assumes alone may hold a connection in use and one idle
    # per WSGI thread, each pinning a prefork proxy.
    per_thread = 2 if keepalive_on(hvars) else 1
    available = memtotal_mb - int(hvars["apache_os_reserved_memory_mb"]) - int(hvars["apache_colocated_memory_mb"])
    cpu_limit = vcpus * int(hvars["apache_wsgi_processes_per_cpu"])
    per_process = int(hvars["apache_wsgi_process_memory_mb"]) + threads * per_thread * proxy_mb
    memory_limit = max((available - extra * proxy_mb) // per_process, 0)
    if hvars["apache_wsgi_processes"] is not None:
        processes = int(hvars["apache_wsgi_processes"])
    else:
        processes = max(min(cpu_limit, memory_limit), int(hvars["apache_wsgi_processes_min"]))
    if not daemon:
        prefork = processes
    elif hvars["apache_prefork_workers"] is not None:
        prefork = int(hvars["apache_prefork_workers"])
    else:
        prefork = processes * threads * per_thread + extra
    return {"daemon": daemon, "processes": processes, "threads": threads, "prefork": prefork}


@pytest.fixture(scope="module")
def domain(hvars):
    return hvars[DOMAIN_VAR]


def apache_parent(host):
    return host.file("/run/apache2/apache2.pid").content_string.strip()


def children(host):
    """PIDs of Apache's prefork processes and of its WSGI daemon processes."""
    out = host.check_output(f"ps --ppid {apache_parent(host)} -o pid=,args=")
    prefork, daemons = [], []
    for line in out.splitlines():
        pid, args = line.strip().split(None, 1)
        if args.startswith(f"(wsgi:{APP})"):
            daemons.append(int(pid))
        elif args.startswith("/usr/sbin/apache2"):
            prefork.append(int(pid))
    return sorted(prefork), sorted(daemons)


def curl(host, path, host_header=None, address="127.0.0.1", method="GET"):
    """Status, headers (name -> list of values, lower-case names) and body of one request."""
    header = f"-H 'Host: {host_header}'" if host_header else ""
    out = host.check_output(f"curl -sS -X {method} -D - {header} 'http://{address}{path}'")
    head, _, body = out.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return status, headers, body


def conf(host, name):
    return host.file(f"/etc/apache2/conf-enabled/{name}.conf").content_string


def site_conf(host):
    return host.file(f"/etc/apache2/sites-enabled/{APP}.conf").content_string


def directive(text, name):
    return re.search(rf"^\s*{name}\s+(\S+)\s*$", text, re.M).group(1)


def test_configuration_is_valid(host):
    assert host.run("apache2ctl -t").rc == 0


def test_mpm_is_prefork(host):
    modules = host.check_output("apache2ctl -M")
    assert "mpm_prefork_module" in modules
    assert "mpm_event_module" not in modules
    assert "mpm_worker_module" not in modules
    assert "wsgi_module" in modules


@pytest.mark.parametrize(
    "name", ["ServerLimit", "StartServers", "MinSpareServers", "MaxSpareServers", "MaxRequestWorkers"]
)
def test_prefork_number_follows_the_host(host, sizing, name):
    assert int(directive(conf(host, "site-prefork"), name)) == sizing["prefork"]


def test_prefork_leak_guard(host, hvars):
    value = int(directive(conf(host, "site-prefork"), "MaxConnectionsPerChild"))
    assert value == int(hvars["apache_max_connections_per_child"])


def test_every_prefork_process_runs_from_boot(host, sizing):
    prefork, _ = children(host)
    assert len(prefork) == sizing["prefork"]


def test_wsgi_daemon_settings_follow_the_host(host, hvars, sizing):
    if not sizing["daemon"]:
        pytest.skip("embedded mode: no daemon processes")
    line = re.search(r"^WSGIDaemonProcess .*$", site_conf(host), re.M).group(0)
    options = dict(opt.split("=", 1) for opt in line.split()[2:])
    assert int(options["processes"]) == sizing["processes"]
    assert int(options["threads"]) == sizing["threads"]
    assert int(options["maximum-requests"]) == int(hvars["apache_wsgi_maximum_requests"])
    assert "WSGIRestrictEmbedded On" in site_conf(host)


def test_wsgi_daemon_processes_run_with_their_counts(host, sizing):
    if not sizing["daemon"]:
        pytest.skip("embedded mode: no daemon processes")
    _, daemons = children(host)
    assert len(daemons) == sizing["processes"]
    for pid in daemons:
        status = host.file(f"/proc/{pid}/status").content_string
        # The request threads plus mod_wsgi's own (main, monitor, deadlock watch).
        assert int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1)) >= sizing["threads"]
        user = host.check_output(f"ps -o user= -p {pid}").strip()
        assert user == APP


def test_site_answers_through_python_with_the_host_name(host, domain):
    status, headers, _ = curl(host, "/", host_header=domain)
    assert status == 200
    assert headers["x-served-by"] == ["apache-web1"]
    assert "x-db-queries" in headers


def test_direct_vhost_answers_by_name(host, domain):
    status, headers, _ = curl(host, "/healthz", host_header=f"apache-web1.direct.{domain}")
    assert status == 200
    assert headers["x-served-by"] == ["apache-web1"]


def test_direct_vhost_answers_on_the_host_address(host, facts):
    address = facts["ansible_default_ipv4"]["address"]
    status, headers, _ = curl(host, "/healthz", address=address)
    assert status == 200
    assert headers["x-served-by"] == ["apache-web1"]


# One request from another host, its path sent as it is (no client normalises /x/../readyz): the status.
_STATUS = (
    "import http.client, sys\n"
    "c = http.client.HTTPConnection(sys.argv[1], 80, timeout=20)\n"
    "c.request('GET', sys.argv[2], headers={'Host': sys.argv[3]})\n"
    "print(c.getresponse().status)\n"
)


def test_the_direct_vhost_and_the_admin_paths_refuse_clients_outside_the_admin_networks(host, domain, facts):
    """Apache refuses them itself (the balancers do it first, and the firewall admits only the balancers
    and the admin networks; it is off in this scenario): from the data host, outside the admin networks
    (127.0.0.0/8 here), the direct vhost, by name or by address, and /readyz and /metrics however
    spelled get 403, the site's other pages their answer. From the host itself, they answer."""
    data = other_host("apache-data")
    address = facts["ansible_default_ipv4"]["address"]

    def status(path, vhost):
        return int(data.check_output("python3 -c %s %s %s %s", _STATUS, address, path, vhost))

    assert status("/healthz", f"apache-web1.direct.{domain}") == 403
    assert status("/healthz", address) == 403
    for path in ("/readyz", "/metrics", "/metrics/", "/x/../readyz", "/%72eadyz", "//metrics"):
        assert status(path, domain) == 403, path
    assert status("/healthz", domain) == 200
    assert status("/", domain) == 200
    assert curl(host, "/healthz", host_header=f"apache-web1.direct.{domain}")[0] == 200
    assert curl(host, "/metrics", host_header=domain)[0] == 200


@pytest.mark.parametrize("vhost", ["site", "direct"])
def test_static_files_come_from_disk_not_python(host, hvars, domain, vhost):
    name = domain if vhost == "site" else f"apache-web1.direct.{domain}"
    path = hvars["test_static_file"]
    status, headers, body = curl(host, f"/static/{path}", host_header=name)
    assert status == 200
    assert "x-db-queries" not in headers
    assert headers["x-served-by"] == ["apache-web1"]
    # (check_output drops the final newline)
    assert body == host.file(f"{APP_ROOT}/current/static/{path}").content_string.rstrip("\n")


@pytest.mark.parametrize("path", ["/static/no-such-file.css", "/media/no-such-file.png"])
def test_missing_files_are_apache_404s(host, domain, path):
    status, headers, _ = curl(host, path, host_header=domain)
    assert status == 404
    assert "x-db-queries" not in headers
    assert headers["x-served-by"] == ["apache-web1"]


def test_server_says_little(host, domain):
    status, headers, body = curl(host, "/static/no-such-file.css", host_header=domain)
    assert headers["server"] == ["Apache"]
    assert "Apache/" not in body
    status, _, _ = curl(host, "/", host_header=domain, method="TRACE")
    assert status == 405


def test_a_body_above_the_cap_gets_413_before_python(host, hvars, domain):
    """LimitRequestBody from apache_limit_request_body_mb: one byte more is refused by Apache itself."""
    cap = int(hvars["apache_limit_request_body_mb"]) * 1048576
    assert re.search(rf"^LimitRequestBody {cap}$", host.file("/etc/apache2/conf-available/site-server.conf").content_string,
                     re.M)
    code = "curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @/tmp/body " + f"-H 'Host: {domain}' http://127.0.0.1/"
    try:
        host.check_output(f"head -c {cap + 1} /dev/zero > /tmp/body")
        assert host.check_output(code) == "413"
        host.check_output("head -c 1000 /dev/zero > /tmp/body")
        assert host.check_output(code) != "413"
    finally:
        host.run("rm -f /tmp/body")


def keepalive_on(hvars):
    """Keep-alive as the role applies it: apache_keepalive, except in embedded mode with prefork."""
    wanted = str(hvars["apache_keepalive"]).strip().lower() in ("true", "yes", "on", "1")
    return wanted and (hvars["apache_wsgi_mode"] == "daemon" or hvars.get("apache_mpm", "prefork") != "prefork")


def test_keepalive_follows_the_setting(host, hvars, domain):
    _, headers, _ = curl(host, "/healthz", host_header=domain)
    if keepalive_on(hvars):
        assert headers.get("connection", ["keep-alive"]) != ["close"]
    else:
        assert headers["connection"] == ["close"]


def log_sizes(host):
    out = host.check_output("find /var/log/apache2 -name '*access*' -printf '%p %s\\n'")
    return dict(line.split() for line in out.splitlines())


def test_no_access_log_by_default(host, hvars, domain):
    if hvars["apache_access_log"]:
        pytest.skip("access log turned on")
    before = log_sizes(host)
    curl(host, "/healthz", host_header=domain)
    assert log_sizes(host) == before


def run_load(host, path, requests, concurrency):
    """ab (apache2-utils, which apache2 depends on): complete and failed requests."""
    out = host.check_output(f"ab -q -n {requests} -c {concurrency} http://127.0.0.1{path} 2>&1")
    complete = int(re.search(r"^Complete requests:\s+(\d+)", out, re.M).group(1))
    failed = int(re.search(r"^Failed requests:\s+(\d+)", out, re.M).group(1))
    non2xx = re.search(r"^Non-2xx responses:\s+(\d+)", out, re.M)
    return complete, failed, int(non2xx.group(1)) if non2xx else 0


def test_no_process_churn_under_requests(host):
    before = children(host)
    complete, failed, non2xx = run_load(host, "/healthz", 2000, 8)
    assert (complete, failed, non2xx) == (2000, 0, 0)
    assert children(host) == before


def test_log_rotation_under_load_fails_no_request_and_restarts_nothing(host):
    """The daily rotation (forced here) under load: no failed request, the same main, prefork and WSGI
    processes before and after (Debian's own rule reloads Apache, which restarts every daemon process),
    and the log was rotated."""
    main_before, before = apache_parent(host), children(host)
    # notifempty: make sure there is something to rotate.
    host.check_output("echo '[test] before the rotation' >> /var/log/apache2/error.log")
    out = host.check_output(
        "wrk -t2 -c16 -d10s --timeout 15s http://127.0.0.1/ > /tmp/wrk-rotate.out 2>&1 & "
        "sleep 3; logrotate --force /etc/logrotate.d/apache2; echo rotate-rc=$?; wait; cat /tmp/wrk-rotate.out"
    )
    assert "rotate-rc=0" in out, out
    assert int(re.search(r"(\d+) requests in", out).group(1)) > 0, out
    assert "Socket errors" not in out, out
    assert "Non-2xx or 3xx responses" not in out, out
    assert (apache_parent(host), children(host)) == (main_before, before)
    assert "[test] before the rotation" in host.file("/var/log/apache2/error.log.1").content_string
    assert "[test] before the rotation" not in host.file("/var/log/apache2/error.log").content_string


def test_reload_under_load_fails_no_request(host, hvars, sizing):
    _, daemons_before = children(host)
    prefork_before, _ = children(host)
    # Load for 40 s; the reload starts 4 s in and must end before the load does. What is asserted is that
    # no request fails: a request that waits for the new daemon processes while the machine is busy (the
    # suite runs two scenarios at once) may take up to wrk's timeout, 30 s, and one that never ends is
    # still caught (started by 4 s + the reload, timed out before the load ends).
    out = host.check_output(
        "wrk -t2 -c16 -d40s --timeout 30s http://127.0.0.1/ > /tmp/wrk-reload.out 2>&1 & "
        f"sleep 4; {hvars['apache_wsgi_reload_command'].replace('{{ apache_app_name }}', APP)}; "
        "echo reload-rc=$?; wait; cat /tmp/wrk-reload.out"
    )
    assert "reload-rc=0" in out, out
    total = int(re.search(r"(\d+) requests in", out).group(1))
    assert total > 0, out
    assert "Socket errors" not in out, out
    assert "Non-2xx or 3xx responses" not in out, out
    prefork_after, daemons_after = children(host)
    if sizing["daemon"]:
        # Every daemon process was replaced, the prefork processes were not touched.
        assert len(daemons_after) == sizing["processes"]
        assert not set(daemons_before) & set(daemons_after)
        assert prefork_after == prefork_before
    else:
        assert not set(prefork_before) & set(prefork_after)


def test_converge_repairs_the_mpm_and_modules_switched_off(host, domain, request):
    """An operator (or a package) switched back to mpm_event and off a module the site needs: the next
    converge, which reads mods-enabled once, switches both back, restarts Apache, and the site answers."""
    host.check_output("a2dismod -q -f headers mpm_prefork && a2enmod -q mpm_event")
    rc, output = run_playbook(
        pathlib.Path(__file__).parents[1] / "converge.yml",
        inventory=request.config.option.ansible_inventory,
        limit=host.backend.get_hostname(),
        env_extra={"ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
        timeout=900,
    )
    assert rc == 0, output[-4000:]
    assert recap(output)[host.backend.get_hostname()][0] > 0
    modules = host.check_output("apache2ctl -M")
    assert "mpm_prefork_module" in modules and "mpm_event_module" not in modules
    assert "headers_module" in modules
    status, headers, _ = curl(host, "/", host_header=domain)
    assert status == 200
    assert headers["x-served-by"] == ["apache-web1"]
