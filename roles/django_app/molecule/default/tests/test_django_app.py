"""The django_app role on converged web hosts: releases, settings as the app sees them, migrations,
the refresh timer on one host, real WSGI requests, static files, rollback to the previous release."""

import json
import pathlib
import re
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[5] / "molecule" / "resources" / "tests"))
from scenario import other_host  # noqa: E402

testinfra_hosts = ["ansible://webservers"]

ROOT = "/srv/scoreboard"
STATIC_ROOT = "/var/www/scoreboard/static"
SETTINGS_FILE = f"{ROOT}/shared/environment"
# From the scenario's inventory (molecule.yml).
DOMAIN = "scoreboard.test"
CONN_MAX_AGE = 240
EARLIER = "test-old"
SECRET_KEY = "test-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
REFRESH_HOST = "django-web1"

# Calls a WSGI entry point in-process, as a server would, and prints status, headers and body.
WSGI_CALL = r"""
import json, runpy, sys, wsgiref.util
app = runpy.run_path(sys.argv[1])["application"]
out = {}
for path in sys.argv[2:]:
    environ = {"PATH_INFO": path, "HTTP_HOST": "scoreboard.test", "REQUEST_METHOD": "GET"}
    wsgiref.util.setup_testing_defaults(environ)
    seen = {}
    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, dict(headers)
    body = b"".join(app(environ, start_response)).decode()
    out[path] = {"status": int(seen["status"].split()[0]), "headers": seen["headers"], "body": body}
print(json.dumps(out))
"""

SETTINGS_DUMP = (
    "import json; from django.conf import settings as s; print(json.dumps({"
    "'DEBUG': s.DEBUG, 'ALLOWED_HOSTS': s.ALLOWED_HOSTS, 'SECRET_KEY': s.SECRET_KEY, "
    "'DB': {k: s.DATABASES['default'][k] for k in ('HOST', 'PORT', 'NAME', 'USER', 'CONN_MAX_AGE', "
    "'CONN_HEALTH_CHECKS')}, 'CACHE_LOCATION': s.CACHES['default']['LOCATION'], "
    "'LOADERS': s.TEMPLATES[0]['OPTIONS']['loaders'], 'RELEASE': s.RELEASE, 'SERVED_BY': s.SERVED_BY, "
    "'STATIC_ROOT': s.STATIC_ROOT, 'LOG_LEVEL': s.LOGGING['root']['level']}))"
)


@pytest.fixture(scope="module")
def data_host():
    return other_host("django-data")


def address_of(host):
    facts = host.ansible("setup", "gather_subset=!all,network")["ansible_facts"]
    return facts["ansible_default_ipv4"]["address"]


@pytest.fixture(scope="module")
def data_address(data_host):
    return address_of(data_host)


@pytest.fixture(scope="module")
def hostname(host):
    return host.backend.get_hostname()


@pytest.fixture(scope="module")
def release(host):
    return host.file(f"{ROOT}/current").linked_to.rsplit("/", 1)[-1]


def wsgi(host, entry, *paths, python=None, user="scoreboard"):
    python = python or f"{ROOT}/current/venv/bin/python"
    command = "runuser -u %s -- %s -c %s %s" + " %s" * len(paths)
    return json.loads(host.check_output(command, user, python, WSGI_CALL, entry, *paths))


def test_current_points_to_the_content_release(host, release):
    current = host.file(f"{ROOT}/current")
    assert current.is_symlink
    assert current.linked_to == f"{ROOT}/releases/{release}"
    # The id is the hash of the source and the requirements, not one of the forced ids.
    assert re.fullmatch(r"[0-9a-f]{12}", release)
    assert host.file(f"{ROOT}/releases/{release}/.complete").content_string.strip() == release
    assert not host.file(f"{ROOT}/current.tmp").exists


def test_same_release_on_every_web_host(host, release):
    other = "django-web2" if host.backend.get_hostname() == "django-web1" else "django-web1"
    peer = other_host(other)
    assert peer.file(f"{ROOT}/current").linked_to == f"{ROOT}/releases/{release}"


def test_previous_release_kept_and_older_ones_pruned(host, release):
    assert host.file(f"{ROOT}/previous").linked_to == f"{ROOT}/releases/{EARLIER}"
    # django_app_keep_releases: 2 -> the current and the previous one.
    assert sorted(host.file(f"{ROOT}/releases").listdir()) == sorted([release, EARLIER])


def test_venv_imports_the_app_on_the_hosts_python(host):
    version = "import sys; print('%d.%d' % sys.version_info[:2])"
    imports = "import django, scoreboard, MySQLdb; print(django.get_version(), MySQLdb.__file__)"
    venv_python = f"{ROOT}/current/venv/bin/python"
    assert host.check_output("%s -c %s", venv_python, version) == host.check_output(
        "%s -c %s", "/usr/bin/python3", version
    )
    django_version, mysqldb = host.check_output("%s -c %s", venv_python, imports).split()
    assert django_version.startswith("5.2.")
    # The compiled driver is Debian's python3-mysqldb, seen through --system-site-packages.
    assert mysqldb.startswith("/usr/lib/python3/dist-packages/MySQLdb/")


def test_settings_file_readable_by_the_app_only(host):
    f = host.file(SETTINGS_FILE)
    assert (f.user, f.group, f.mode) == ("root", "scoreboard", 0o640)
    assert "scoreboard" in host.user("www-data").groups
    assert host.run("runuser -u nobody -- cat %s", SETTINGS_FILE).rc != 0


def test_settings_as_the_app_sees_them(host, hostname, release, data_address):
    out = host.check_output(
        "runuser -u scoreboard -- /usr/local/bin/scoreboard-manage shell -c %s", SETTINGS_DUMP
    )
    # The last line: Django's shell may print what it imported first.
    s = json.loads(out.splitlines()[-1])
    address = address_of(host)
    assert s["DEBUG"] is False
    assert {DOMAIN, f"{hostname}.direct.{DOMAIN}", address} <= set(s["ALLOWED_HOSTS"])
    assert s["SECRET_KEY"] == SECRET_KEY
    assert s["DB"] == {
        "HOST": data_address,
        # dj-database-url's parse of DATABASE_URL gives the port as a number.
        "PORT": 3306,
        "NAME": "scoreboard",
        "USER": "scoreboard",
        "CONN_MAX_AGE": CONN_MAX_AGE,
        "CONN_HEALTH_CHECKS": True,
    }
    assert s["CACHE_LOCATION"] == [f"{data_address}:11211"]
    assert s["LOADERS"][0][0] == "django.template.loaders.cached.Loader"
    assert s["RELEASE"] == release
    assert s["SERVED_BY"] == hostname
    assert s["STATIC_ROOT"] == f"{ROOT}/releases/{release}/static"
    assert s["LOG_LEVEL"] == "WARNING"


def test_migrations_applied(data_host):
    tables = data_host.check_output("mariadb -N -e 'SHOW TABLES' scoreboard").split()
    assert "django_migrations" in tables
    assert any(t.startswith("games_") for t in tables)
    unapplied = data_host.check_output(
        "mariadb -N -e \"SELECT COUNT(*) FROM django_migrations WHERE app = 'games'\" scoreboard"
    )
    assert int(unapplied) >= 1


def test_no_migration_left(host):
    plan = host.check_output("/usr/local/bin/scoreboard-manage showmigrations --plan")
    assert "[X]" in plan and "[ ]" not in plan


def test_refresh_timer_on_exactly_one_host(host, hostname):
    timer = host.service("scoreboard-refresh.timer")
    here = hostname == REFRESH_HOST
    assert timer.is_enabled == here
    assert timer.is_running == here


def test_refresh_command_runs_from_the_timer_unit(host, hostname):
    if hostname != REFRESH_HOST:
        pytest.skip("the timer runs on the refresh host only")
    host.check_output("systemctl start scoreboard-refresh.service")
    result = host.check_output("systemctl show -p Result --value scoreboard-refresh.service")
    assert result == "success"


def test_real_requests_through_the_wsgi_entry_point(host, hostname, release):
    r = wsgi(host, f"{ROOT}/current/wsgi.py", "/healthz", "/readyz", "/")
    assert r["/healthz"]["status"] == 200
    assert r["/healthz"]["body"] == f"ok {release}"
    ready = r["/readyz"]
    assert ready["status"] == 200, ready["body"]
    assert json.loads(ready["body"])["checks"] == {"database": "ok", "cache": "ok"}
    for answer in r.values():
        assert answer["headers"]["X-Release"] == release
        assert answer["headers"]["X-Served-By"] == hostname
        assert "X-DB-Queries" in answer["headers"]
    board = r["/"]
    assert board["status"] == 200
    # Pages link the hashed static names from the release's manifest.
    assert re.search(r"/static/games/site\.[0-9a-f]{12}\.css", board["body"])


def test_wsgi_entry_point_works_without_python_home(host, release):
    # As mod_wsgi without python-home: the system Python, the entry point activates the venv.
    r = wsgi(host, f"{ROOT}/current/wsgi.py", "/healthz", python="/usr/bin/python3")
    assert r["/healthz"]["body"] == f"ok {release}"


def test_previous_release_still_answers_for_rollback(host):
    r = wsgi(host, f"{ROOT}/previous/wsgi.py", "/healthz", "/readyz")
    assert r["/healthz"]["body"] == f"ok {EARLIER}"
    assert r["/readyz"]["status"] == 200


def test_static_files_shipped_with_hashed_names_and_gzip(host, release):
    current = host.file(f"{STATIC_ROOT}/current")
    assert current.linked_to == f"{STATIC_ROOT}/releases/{release}"
    manifest = json.loads(host.file(f"{STATIC_ROOT}/current/staticfiles.json").content_string)
    hashed = manifest["paths"]["games/site.css"]
    assert re.fullmatch(r"games/site\.[0-9a-f]{12}\.css", hashed)
    plain = host.check_output("cat %s/current/%s | sha256sum", STATIC_ROOT, hashed)
    unzipped = host.check_output("gzip -dc %s/current/%s.gz | sha256sum", STATIC_ROOT, hashed)
    assert plain == unzipped
    # The web host's release has the same manifest (pages render with it).
    assert host.file(f"{ROOT}/current/static/staticfiles.json").content_string == (
        host.file(f"{STATIC_ROOT}/current/staticfiles.json").content_string
    )
