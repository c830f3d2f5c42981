"""Test helpers the bundle's Molecule scenarios share: the whole-site scenario (molecule/site) and each
role's (roles/<role>/molecule/default).

A test module (or conftest.py) puts this folder on sys.path first, then imports what it needs:

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[5] / "molecule" / "resources" / "tests"))
    from scenario import http_get, other_host  # noqa: E402

(parents[5] is the repository from roles/<role>/molecule/default/tests/; parents[3] from molecule/site/tests/.)

What is here: another host of the scenario, a host's inventory variables, a platform's container
limits as molecule.yml gives them, one HTTP request with curl,
whether a TCP connection opens (tcp_connect), HAProxy's Runtime API and its `show stat`, ansible-playbook run from this machine against the
scenario's hosts, the play recap, "bad input stops the playbook before any change", "a run stopped
before its handler is made up for by the next" (lost_handler_is_made_up), and a steady
wrk load through a balancer (PacedLoad). Nothing here
knows a scenario's host names or variables: the callers pass them.
"""

import csv
import io
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys

import testinfra

# HAProxy's Runtime API socket, as the haproxy role's default (haproxy_runtime_socket) puts it.
RUNTIME_SOCKET = "/run/haproxy/admin.sock"
# Docker's memory units (molecule.yml's `memory: 1024m`), in MiB.
_MEMORY_UNITS_MIB = {"k": 1 / 1024, "m": 1, "g": 1024}


def container_limits(name, scenario_dir):
    """The container limits molecule.yml gives platform `name`: (cpus, memory_mb).

    scenario_dir: the scenario's folder (a pathlib.Path) that holds molecule.yml. cpus: Docker's CPU
    quota in CPUs (an int), None when the platform sets none; memory_mb: Docker's `memory` ("1024m",
    "2g") in MiB (an int). Raises KeyError when the scenario has no such platform or the platform sets
    no memory limit: a test that reads it expects the host to stand for a small machine.
    """
    import yaml  # the verifier's environment has it (Molecule depends on it)

    scenario = yaml.safe_load((pathlib.Path(scenario_dir) / "molecule.yml").read_text())
    platform = {p["name"]: p for p in scenario["platforms"]}[name]
    memory = str(platform["memory"]).strip().lower()
    unit = memory[-1] if memory[-1] in _MEMORY_UNITS_MIB else "b"
    number = float(memory[:-1] if unit != "b" else memory)
    memory_mb = int(number * _MEMORY_UNITS_MIB[unit]) if unit != "b" else int(number // (1024 * 1024))
    return (int(platform["cpus"]) if "cpus" in platform else None), memory_mb


def other_host(name, inventory=None):
    """A testinfra host for another host of the scenario than the ones the test module runs on.

    name: its inventory name. inventory: the inventory to find it in (a file or a folder); by default
    the scenario's inventory file, MOLECULE_INVENTORY_FILE.
    Returns a testinfra Host that reaches it through Ansible."""
    inventory = inventory or os.environ["MOLECULE_INVENTORY_FILE"]
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory)


def hostvars(host, name=None):
    """A host's inventory variables as Ansible resolves them (no role defaults: no role is loaded).

    host: the testinfra host to ask through; name: the inventory name of the host whose variables are
    wanted, by default host itself (hostvars[inventory_hostname]).
    Returns {variable: value}."""
    var = f"hostvars['{name}']" if name else "hostvars[inventory_hostname]"
    return host.ansible("debug", f"var={var}")[var]


def http_get(host, path="/", vhost=None, url="http://127.0.0.1", extra="", timeout=30):
    """One HTTP request made with curl on `host` (curl -s -m <timeout> -D - ...).

    path: appended to url, which is scheme://address[:port]. vhost: the Host header to send; None sends
    curl's own (from url). extra: more curl arguments, as shell text (e.g. "-k"). timeout: curl's -m,
    in seconds.
    Returns (status, {lower-case header name: value}, body); of a header sent twice, the last value."""
    header = f"-H 'Host: {vhost}'" if vhost else ""
    out = host.check_output(f"curl -s -m {timeout} -D - {header} {extra} '{url}{path}'")
    head, _, body = out.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return status, headers, body


_TCP_CONNECT = r"""
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("open")
except socket.timeout:
    print("timeout")
except ConnectionRefusedError:
    print("refused")
"""


def tcp_connect(source, address, port, timeout=2):
    """Whether a TCP connection from `source` to address:port opens: "open", "timeout" (no answer
    within `timeout` seconds: a firewall dropped the SYN) or "refused" (nothing listens, or a reject).

    source: a testinfra host (python3 runs there), or None for this machine (the Docker host, which
    the containers see at their network's gateway). address: an IPv4 or IPv6 address (str)."""
    if source is None:
        import socket as _socket

        try:
            with _socket.create_connection((address, port), timeout=timeout):
                return "open"
        except _socket.timeout:
            return "timeout"
        except ConnectionRefusedError:
            return "refused"
    return source.check_output(f"python3 -c '{_TCP_CONNECT}' {address} {port} {timeout}").strip()


def runtime_api(host, command, socket=RUNTIME_SOCKET):
    """HAProxy's Runtime API: one command sent with socat to `socket` on `host` (the balancer).

    Returns the API's answer as text (check_output: a failing socat fails the test)."""
    return host.check_output(f"echo '{command}' | socat stdio {socket}")


def stat_rows(host, socket=RUNTIME_SOCKET):
    """HAProxy's `show stat` through the Runtime API at `socket` on `host`.

    Returns a list of {column: value as text}, one per frontend, backend and server (columns pxname,
    svname, qmax, smax, slim, status, ...)."""
    return list(csv.DictReader(io.StringIO(runtime_api(host, "show stat", socket).lstrip("# "))))


def ansible_playbook():
    """The ansible-playbook command: the one on PATH, else the one next to this Python (a virtual
    environment that was not activated)."""
    return shutil.which("ansible-playbook") or str(pathlib.Path(sys.executable).parent / "ansible-playbook")


def run_playbook(playbook, *args, inventory=None, limit=None, extra_vars=None, env_extra=None, json_output=False,
                 timeout=None):
    """Run ansible-playbook from this machine against the scenario's hosts, as an operator would.

    playbook: the playbook's path. args: more ansible-playbook arguments, as they are ("--check",
    "-e", "name=value", ...). inventory: a file or a folder; by default MOLECULE_INVENTORY_FILE.
    limit: passed as --limit. extra_vars: a dict, passed as one -e of JSON. env_extra: environment
    variables set over this process's own; a value of None removes the variable. json_output: Ansible's
    json stdout callback (ANSIBLE_STDOUT_CALLBACK=ansible.builtin.json). timeout: seconds until the run
    is killed (subprocess.TimeoutExpired); none by default.
    Returns (return code, stdout + stderr); with json_output, (return code, the callback's JSON
    document from stdout, parsed)."""
    cmd = [ansible_playbook(), "-i", str(inventory or os.environ["MOLECULE_INVENTORY_FILE"]), str(playbook), *args]
    if limit is not None:
        cmd += ["--limit", limit]
    if extra_vars is not None:
        cmd += ["-e", json.dumps(extra_vars)]
    env = None
    if env_extra or json_output:
        env = dict(os.environ)
        for key, value in (env_extra or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        if json_output:
            env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.json"
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if json_output:
        return proc.returncode, json.loads(proc.stdout)
    return proc.returncode, proc.stdout + proc.stderr


def recap(output):
    """The play recap of a run's text output: {host: (changed, failed)}."""
    found = re.findall(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", output, re.M)
    return {h: (int(c), int(f)) for h, c, f in found}


def failure_messages(result):
    """The msg of every failed task result in the json callback's document, a loop's failed items
    included, each on one line (whitespace collapsed)."""
    failed = [res for play in result["plays"] for task in play["tasks"] for res in task["hosts"].values()
              if res.get("failed")]
    # A loop's messages are in its items.
    failed += [item for res in failed for item in res.get("results", []) if item.get("failed")]
    return [" ".join(str(res.get("msg", "")).split()) for res in failed]


def expect_stop_before_change(playbook, *args, unchanged=(), watch=None, **options):
    """Run a playbook that bad input must stop before it changes anything, and check that it did.

    playbook, args, options: as run_playbook's. unchanged: inventory names of hosts whose run must
    report changed=0. watch: a function of no arguments returning what the run must leave as it was
    (checksums, a PID...); called before the run and after it.
    Asserts that the run failed (return code not 0), that each host in `unchanged` changed nothing and
    that watch() gives what it gave before.
    Returns the failure messages for the caller to look for its own in: with json_output=True, the list
    of failure_messages(); otherwise the whole output (stdout + stderr, as it is)."""
    before = watch() if watch else None
    rc, output = run_playbook(playbook, *args, **options)
    if options.get("json_output"):
        assert rc != 0, output.get("stats")
        for name in unchanged:
            assert output["stats"][name]["changed"] == 0, output["stats"]
    else:
        assert rc != 0, output[-6000:]
        changes = recap(output)
        for name in unchanged:
            assert changes[name][0] == 0, changes
    if watch:
        assert watch() == before
    return failure_messages(output) if options.get("json_output") else output


def service_processes(host, unit):
    """(main PID, sorted PIDs of its children) of a systemd unit on `host` (a testinfra host); the
    children of a master are its workers (HAProxy, nginx), new at each reload."""
    main = host.check_output("systemctl show -p MainPID --value %s", unit)
    children = host.run("cat /proc/%s/task/*/children", main).stdout.split()
    return main, sorted(children, key=int)


def lost_handler_is_made_up(host, name, unit, paths, playbook, reload=False, **options):
    """A run stopped between a settings file's change and its handler, then a good run: the good run
    must apply what the stopped one left, and the run after it change nothing.

    host: a testinfra host; name: its inventory name; unit: the systemd unit; paths: the files the
    stopped run changed (touched here, as that run leaves them: newer than the running service);
    playbook, options: as run_playbook's. reload: the handler is a reload (the workers are replaced,
    the main process stays); else a restart (a new main process).
    Asserts each step; returns nothing."""
    main, workers = service_processes(host, unit)
    host.check_output("touch" + " %s" * len(paths), *paths)
    rc, output = run_playbook(playbook, **options)
    assert rc == 0, output[-6000:]
    after_main, after_workers = service_processes(host, unit)
    if reload:
        assert after_main == main, f"{unit} was restarted, not reloaded"
        assert after_workers and after_workers[-1] not in workers, \
            f"{unit} has no worker newer than the touched {paths}: {workers} -> {after_workers}"
    else:
        assert after_main != main, f"{unit} still runs the process that read the old {paths}"
    rc, output = run_playbook(playbook, **options)
    assert rc == 0, output[-6000:]
    assert recap(output)[name][0] == 0, output[-6000:]
    assert service_processes(host, unit)[0] == after_main


class PacedLoad:
    """wrk from this machine through a balancer container's public frontend, until stop(): a steady
    load of `connections` connections, each pausing `delay_ms` between its requests (paced.lua), so the
    deploy under test is never slowed down by the load itself.

    container: the balancer's container name (its address is read from Docker). domain: the Host
    header. path: the page requested."""

    SCRIPT = pathlib.Path(__file__).with_name("paced.lua")

    def __init__(self, container, domain, path="/", connections=32, delay_ms=1000):
        address = subprocess.run(
            ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container],
            capture_output=True, text=True, check=True).stdout.strip()
        self.proc = subprocess.Popen(
            ["wrk", "-t2", f"-c{connections}", "-d3600s", "--timeout", "30s", "-s", str(self.SCRIPT),
             "-H", f"Host: {domain}", f"http://{address}{path}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "WRK_DELAY_MS": str(delay_ms)})

    def stop(self):
        """Stop wrk (it prints its summary on SIGINT). Returns {"requests": int, "non_2xx": int (non-2xx
        and non-3xx responses), "socket_errors": int (connect, read, write and timeout), "output": str}."""
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=120)
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        return {
            "requests": requests,
            "non_2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
            "output": out,
        }

    def kill(self):
        """Stop wrk without its summary, if it still runs (a failed test's leftover)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
