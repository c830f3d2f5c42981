"""The daily jobs on every host of the site restart no service of the site.

A log rotation that reloads Apache restarts every WSGI daemon process and cuts their requests, every day
on every web host (hourly once a log passes logrotate's maxsize). The apache role replaces Debian's
rule; this holds every rule the packages on every tier install to the same standard: a script a
rotation runs (prerotate, postrotate, firstaction, lastaction) may ask a service to reopen its logs
(nginx's `rotate`, MariaDB's `flush-logs`), never to reload or restart.
"""

import re

import pytest
from helpers import DB, LB, SUFFIX, WEB

testinfra_hosts = [LB, *WEB, DB, f"site-cache{SUFFIX}"]

SCRIPT = re.compile(r"^\s*(prerotate|postrotate|firstaction|lastaction)\s*$(.*?)^\s*endscript\s*$", re.M | re.S)
RESTART = re.compile(r"\b(reload|restart|force-reload|try-restart|graceful)\b")
# The services of the site (the units the roles install and run).
SERVICES = re.compile(r"\b(apache2|apachectl|apache2ctl|haproxy|nginx|mariadb|mysql|mysqld|memcached)\b")


def rotation_scripts(host):
    """Every script a logrotate rule on the host runs: [(file, kind, script text)]."""
    found = []
    for name in host.file("/etc/logrotate.d").listdir():
        text = host.file(f"/etc/logrotate.d/{name}").content_string
        found += [(name, kind, body) for kind, body in SCRIPT.findall(text)]
    return found


def test_rules_are_read(host):
    # Every host has logrotate's own rules (apt, dpkg): a check that reads nothing proves nothing.
    assert host.file("/etc/logrotate.d").listdir()


def test_no_rotation_reloads_or_restarts_a_service_of_the_site(host):
    offenders = [
        f"/etc/logrotate.d/{name} ({kind}): {' '.join(body.split())}"
        for name, kind, body in rotation_scripts(host)
        if RESTART.search(body) and SERVICES.search(body)
    ]
    assert not offenders, offenders


def test_web_hosts_rotate_apaches_logs_in_place(host):
    if host.backend.get_hostname() not in WEB:
        pytest.skip("Apache runs on the web hosts")
    text = host.file("/etc/logrotate.d/apache2").content_string
    assert re.search(r"^\s*copytruncate\s*$", text, re.M)
    assert not SCRIPT.search(text)


def test_no_timer_runs_a_restart_of_a_service_of_the_site(host):
    """Every systemd timer's service (logrotate, apt's daily jobs, the app's refresh jobs...): none of
    its commands reloads or restarts a service of the site. logrotate's own rules are checked above."""
    timers = host.check_output("systemctl list-timers --all --no-legend --plain").splitlines()
    services = [line.split()[-1] for line in timers if line.split()]
    assert "logrotate.service" in services, timers
    offenders = []
    for service in services:
        unit = host.run(f"systemctl cat {service}").stdout
        commands = re.findall(r"^\s*Exec\w*=(.*)$", unit, re.M)
        offenders += [f"{service}: {c}" for c in commands if RESTART.search(c) and SERVICES.search(c)]
    assert not offenders, offenders
