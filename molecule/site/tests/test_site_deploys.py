"""Rolling deploys and rollbacks of the whole site while wrk loads the balancer.

They run after test_site.py (which only reads the converged site), on the same hosts, so the whole
site is converged once for both. The tests run in file order and build on each other, as an
operator's day would: a bad batch size (refused before any change), a full rolling deploy under
load with a canary first (it passes, goes to full weight and the other host follows), the same
deploy again without a canary (nothing changes), a release whose deployment checks fail (stopped on the
controller), a release whose migrations fail (no host switches),
a release that fails to import (the rollout stops at the first host, rollback.yml restores it), and a
canary whose release answers 5xx on a page (the soak catches it). Each full deploy costs minutes, so
one covers both the canary and the plain path (the hosts after the canary take the plain one, as
does rollback.yml).
playbooks/deploy.yml and rollback.yml run from this machine against the scenario's hosts, as
`ansible-playbook` would in production.
"""

import json
import re
import shutil

import pytest
from helpers import (BACKENDS, BUNDLE, DOMAIN, LB, WEB, PacedLoad, api, forget_facts, get, lab_image_only, playbook,
                     recap, server_limits)

testinfra_hosts = [LB]

# Rolling deploys are tested on the lab's distribution only (helpers.lab_image_only).
pytestmark = lab_image_only

FIRST, REST = WEB[0], WEB[1:]
APP_ROOT = "/srv/scoreboard"
CONNECTIONS = 32
# Each connection's pause between requests (molecule/resources/tests/paced.lua): 32 connections x 1 request/s is a steady load
# well below what the two web hosts serve, so it is never the deploy's bottleneck, and every drain,
# switch and re-admission still has dozens of requests in flight.
DELAY_MS = 1000
DRAINED = 8  # srv_admin_state of a server drained through the Runtime API


# ---- helpers ---------------------------------------------------------------------------------------
def release_source(tmp_path_factory, name, breakage=None):
    """A copy of the demo app that builds a release of its own; breakage edits the copy."""
    dst = tmp_path_factory.mktemp("src") / name
    shutil.copytree(BUNDLE / "app", dst, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", "*.egg-info", "build", "dist", "staticfiles", ".pytest_cache"))
    (dst / "scoreboard" / "release_note.py").write_text(f'"""Release {name} (a test build)."""\n')
    if breakage:
        breakage(dst / "scoreboard")
    return dst


def deploy(source, release, *extra):
    return playbook("deploy.yml", "-e", f"django_app_source={source}", "-e", f"django_app_release={release}", *extra)


@pytest.fixture
def load():
    """Start wrk with load(path); whatever a failed test left running is stopped afterwards."""
    started = []

    def start(path="/"):
        started.append(PacedLoad(LB, DOMAIN, path, CONNECTIONS, DELAY_MS))
        return started[-1]

    yield start
    for running in started:
        running.kill()


@pytest.fixture(scope="module")
def lb(host):
    return host


@pytest.fixture(scope="module")
def webs(host):
    return {w: host.get_host(f"docker://{w}") for w in WEB}


def direct(lb, web, path="/healthz"):
    """Status, X-Release and body of a request to one web host through its direct vhost."""
    status, headers, body = get(lb, path, vhost=f"{web}.direct.{DOMAIN}")
    return status, headers.get("x-release"), body.strip()


def admin_states(lb, web):
    """srv_admin_state of the web host in each app backend (0: in service; 8: drained; 1: maint)."""
    out = api(lb, "show servers state")
    return {f[1]: int(f[6]) for f in (ln.split() for ln in out.splitlines())
            if len(f) > 6 and f[1] in BACKENDS and f[3] == web}


def current_release(webs, web):
    return webs[web].check_output(f"readlink {APP_ROOT}/current").rsplit("/", 1)[-1]


def assert_clean(load, during):
    assert load["requests"] > 200, f"wrk barely ran during {during}:\n{load['output']}"
    assert load["non_2xx"] == 0, f"{load['non_2xx']} non-2xx responses during {during}:\n{load['output']}"
    assert load["socket_errors"] == 0, f"socket errors during {during}:\n{load['output']}"


def assert_in_service(lb, web):
    assert admin_states(lb, web) == {b: 0 for b in BACKENDS}


# ---- the tests, in order -----------------------------------------------------------------------------
@pytest.mark.parametrize("args,messages", [
    (["-e", "deploy_serial=0"], ["deploy_serial must be a number of hosts", "got '0'"]),
    # Two web hosts: a batch of both (2, or 100%) would take the site out while it switches.
    (["-e", "deploy_serial=2"], ["deploy_serial 2 drains 2 of the 2 web hosts at once", "at most 1"]),
    (["-e", "deploy_serial=100%"], ["deploy_serial 100% drains 2 of the 2 web hosts at once"]),
    (["-e", "rollout_canary=true", "-e", "rollout_canary_min_requests=0"],
     ["rollout_canary_min_requests must be at least 1 (got 0"]),
    (["-e", "rollout_canary=true", "-e", "rollout_canary_max_5xx_percent=150"],
     ["rollout_canary_max_5xx_percent must be 0-100 (got 150"]),
    # Django's deployment check (security.W009): too short, or the placeholder startproject writes.
    (["-e", "django_app_secret_key=changeme"], ["django_app_secret_key must be a secret of at least 50 characters",
                                                 "it has 8 characters"]),
    (["-e", json.dumps({"django_app_secret_key": "django-insecure-" + "0123456789abcdefghij" * 3})],
     ["not the placeholder `startproject` writes"]),
    # What the role owns cannot come in through the extras.
    (["-e", json.dumps({"django_app_environment": {"DJANGO_ALLOWED_HOSTS": "*", "DJANGO_SECRET_KEY": "x" * 60}})],
     ["django_app_environment sets DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS, which the role sets"]),
], ids=["serial-0", "serial-every-host", "serial-100-percent", "canary-min-requests-0", "canary-5xx-above-100",
        "secret-key-short", "secret-key-placeholder", "extras-set-owned-settings"])
def test_bad_rollout_input_stops_before_any_host_changes(lb, webs, args, messages):
    before = {w: current_release(webs, w) for w in WEB}
    rc, out = playbook("deploy.yml", *args)
    assert rc != 0
    for message in messages:
        assert message in " ".join(out.split()), out[-3000:]
    assert {w: current_release(webs, w) for w in WEB} == before


# A canary first: the first host takes a share of the traffic for a short soak before the others follow.
CANARY = ["-e", "rollout_canary=true", "-e", "rollout_canary_soak_seconds=20",
          "-e", "rollout_canary_interval_seconds=4", "-e", "rollout_canary_min_requests=10"]


def test_canary_rolling_deploy_under_load_fails_no_request(lb, webs, tmp_path_factory, load):
    """The first host goes in as a canary (a small weight, a soak judged from HAProxy's stats), then
    to full weight; the other host follows the plain rolling path. No request fails throughout."""
    source = release_source(tmp_path_factory, "v2")
    wrk = load("/")
    rc, out = deploy(source, "v2", *CANARY)
    result = wrk.stop()
    assert rc == 0, out[-6000:]
    assert_clean(result, "the canary rollout of v2")
    assert re.search(rf"Canary {FIRST}: 0 5xx of \d+ responses", out)
    for web in WEB:
        status, release, body = direct(lb, web)
        assert (status, release, body) == (200, "v2", "ok v2")
        assert current_release(webs, web) == "v2"
        assert_in_service(lb, web)
        for backend in BACKENDS:
            weight = api(lb, f"get weight {backend}/{web}")
            assert weight.startswith("100 "), weight
    # One host at a time: the log shows each host drained in its own batch.
    assert len(re.findall(r"TASK \[rollout : Drain the host in every balancer\]", out)) == len(WEB)
    # The canary's connection limit, cut to its share during the soak, is the configured one again.
    config = lb.file("/etc/haproxy/haproxy.cfg").content_string
    for web in WEB:
        configured = set(re.findall(rf"^\s*server {web} \S+:80 maxconn (\d+)", config, re.M))
        assert len(configured) == 1, configured
        assert server_limits(lb, web) == {b: next(iter(configured)) for b in BACKENDS}


def test_same_deploy_again_changes_nothing_even_without_a_fact_cache(lb, tmp_path_factory):
    # As from another controller, from CI or a day later: deploy.yml computes what it needs.
    forget_facts()
    source = release_source(tmp_path_factory, "v2")
    rc, out = deploy(source, "v2")
    assert rc == 0, out[-6000:]
    changed = {h: c for h, (c, _) in recap(out).items()}
    assert changed and set(changed.values()) == {0}, changed


def _break_urls(package):
    views = package / "games" / "views.py"
    views.write_text('raise ImportError("this release is broken on purpose")\n' + views.read_text())


def test_release_that_fails_its_checks_stops_before_any_host_changes(lb, webs, tmp_path_factory):
    # The build's `check --deploy` imports the URL configuration: it fails on the controller, while
    # every host still serves v2 and none was drained or got the release.
    source = release_source(tmp_path_factory, "no-checks", _break_urls)
    rc, out = deploy(source, "no-checks")
    assert rc != 0
    assert "manage.py check --deploy, with the production environment, found 1 error(s)" in out
    assert "ImportError: this release is broken on purpose" in out
    assert "TASK [rollout : Drain the host in every balancer]" not in out
    for web in WEB:
        assert current_release(webs, web) == "v2"
        assert not webs[web].file(f"{APP_ROOT}/releases/no-checks").exists
        assert_in_service(lb, web)


def _break_migration(package):
    """A migration that raises when it runs: the build's checks pass, migrate fails."""
    migrations = package / "games" / "migrations"
    latest = max(p.stem for p in migrations.glob("[0-9][0-9][0-9][0-9]_*.py"))
    (migrations / "9999_broken.py").write_text(
        "from django.db import migrations\n\n\n"
        "def fail(apps, schema_editor):\n"
        '    raise RuntimeError("this migration fails on purpose")\n\n\n'
        "class Migration(migrations.Migration):\n"
        f'    dependencies = [("games", "{latest}")]\n'
        "    operations = [migrations.RunPython(fail)]\n")


def test_release_that_fails_its_migrations_stops_before_any_host_switches(lb, webs, tmp_path_factory):
    # migrate fails on the first host's staging, while every host still serves v2 and none was drained.
    source = release_source(tmp_path_factory, "no-migrate", _break_migration)
    rc, out = deploy(source, "no-migrate")
    assert rc != 0
    assert f"migrate failed on {FIRST}" in out
    assert "this migration fails on purpose" in out
    assert "TASK [rollout : Drain the host in every balancer]" not in out
    for web in WEB:
        assert current_release(webs, web) == "v2"
        assert_in_service(lb, web)
        assert direct(lb, web)[:2] == (200, "v2")


def _break_import(package):
    """The app fails to import under mod_wsgi only: the build's import check and the migrations
    (management commands) pass, as they do for a release that needs something only the web
    server lacks, so the failure shows where a rollout must catch it: on the first host."""
    wsgi = package / "wsgi.py"
    wsgi.write_text(wsgi.read_text() + (
        "\n\ntry:  # only Apache's mod_wsgi has this module\n"
        "    import mod_wsgi  # noqa: F401\n"
        "except ImportError:\n"
        "    pass\n"
        "else:\n"
        '    raise ImportError("this release is broken on purpose")\n'))


def test_broken_release_stops_at_first_host_and_rollback_restores_it(lb, webs, tmp_path_factory, load):
    source = release_source(tmp_path_factory, "broken", _break_import)
    wrk = load("/")
    rc, out = deploy(source, "broken", "-e", "rollout_check_timeout=30")
    assert rc != 0
    assert f"ROLLOUT STOPPED at {FIRST}" in out
    assert "playbooks/rollback.yml" in out
    # The first host switched, failed its direct check and stays drained; the others never got it.
    assert current_release(webs, FIRST) == "broken"
    assert admin_states(lb, FIRST) == {b: DRAINED for b in BACKENDS}
    for web in REST:
        assert current_release(webs, web) == "v2"
        assert not webs[web].file(f"{APP_ROOT}/releases/broken").exists
        assert_in_service(lb, web)

    forget_facts()  # rollback.yml needs no fact cache either
    rc, out = playbook("rollback.yml")
    result = wrk.stop()
    assert rc == 0, out[-6000:]
    assert_clean(result, "the failed rollout and the rollback")
    assert current_release(webs, FIRST) == "v2"
    assert direct(lb, FIRST)[:2] == (200, "v2")
    assert_in_service(lb, FIRST)
    # Only the host that had left v2 was touched.
    assert len(re.findall(r"TASK \[rollout : Drain the host in every balancer\]", out)) == 1

    # Run again, rollback.yml finds the fleet already back: it does not return to the broken release.
    rc, out = playbook("rollback.yml")
    assert rc == 0, out[-6000:]
    changed = {h: c for h, (c, _) in recap(out).items()}
    assert changed and set(changed.values()) == {0}, changed
    assert current_release(webs, FIRST) == "v2"


def _break_leaderboard(package):
    views = package / "games" / "views.py"
    views.write_text(views.read_text() + (
        "\n\ndef leaderboard(request):  # noqa: F811 - this release answers 5xx on one page\n"
        '    raise RuntimeError("leaderboard broken on purpose")\n'))



def test_canary_with_5xx_page_is_caught_and_others_never_get_it(lb, webs, tmp_path_factory, load):
    source = release_source(tmp_path_factory, "bad-page", _break_leaderboard)
    wrk = load("/leaderboard/")
    rc, out = deploy(source, "bad-page", *CANARY)
    result = wrk.stop()
    assert rc != 0
    assert f"Canary {FIRST} failed its soak" in out
    assert f"ROLLOUT STOPPED at {FIRST} (canary)" in out
    # The canary took a small share of the load before it was caught; the rest was served by v2.
    assert 0 < result["non_2xx"] < result["requests"] / 2, result["output"]
    assert admin_states(lb, FIRST) == {b: DRAINED for b in BACKENDS}
    for web in REST:
        assert current_release(webs, web) == "v2"
        assert not webs[web].file(f"{APP_ROOT}/releases/bad-page").exists
        assert direct(lb, web)[:2] == (200, "v2")

    rc, out = playbook("rollback.yml")
    assert rc == 0, out[-6000:]
    assert current_release(webs, FIRST) == "v2"
    assert_in_service(lb, FIRST)
