"""A Django project of the user's own (tests/fixtures/notes_project: a startproject layout, settings
from the environment, whitenoise, not installable), deployed by site.yml and read through the balancer,
then deployed again with a change while wrk loads the balancer, and rolled back.

The tests run in file order and build on each other: first what the converge left (pages from both
web hosts, the migration applied once, CSS from nginx, the environment the processes got, the hooks'
order, a shared folder), then bad input that stops a deploy before any host changes, then a rolling
deploy of a change under load, and a rollback under load.
"""

import json
import os
import pathlib
import re
import shutil
import sys

import pytest

BUNDLE = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(BUNDLE / "molecule" / "resources" / "tests"))
from scenario import PacedLoad, http_get, other_host, run_playbook  # noqa: E402

LB = "project-lb"
WEB = ["project-web1", "project-web2"]
DATA = "project-data"
DOMAIN = "notes.test"
APP_ROOT = "/srv/notes"
FIXTURE = BUNDLE / "tests" / "fixtures" / "notes_project"
SECRET = "molecule-project-secret-key-not-for-production-0123456789-abcdef"
DB_PASSWORD = "molecule-app-password/with+url&chars"

testinfra_hosts = [LB]


def get(lb, path="/", vhost=DOMAIN, extra=""):
    return http_get(lb, path, vhost=vhost, extra=extra, timeout=30)


def playbook(name, *extra):
    """playbooks/<name> against the scenario's hosts, with no fact cache (as from another controller)."""
    shutil.rmtree(pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "facts", ignore_errors=True)
    inventory = pathlib.Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    return run_playbook(BUNDLE / "playbooks" / name, *extra, inventory=inventory, timeout=1800)


def project_copy(tmp_path_factory, greeting=None, edit=None):
    """A copy of the fixture project; greeting replaces the heading, edit(path) changes anything else."""
    dst = tmp_path_factory.mktemp("project") / "notes_project"
    shutil.copytree(FIXTURE, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "staticfiles", "db.sqlite3"))
    if greeting:
        views = dst / "notes" / "views.py"
        views.write_text(views.read_text().replace('GREETING = "Notes"', f'GREETING = "{greeting}"'))
    if edit:
        edit(dst)
    return dst


# Every test depends on `host` (the balancer, testinfra's parametrized fixture), even through these:
# pytest groups the tests by that parameter, and only then keeps the file's order.
@pytest.fixture(scope="module")
def webs(host):
    return {w: other_host(w) for w in WEB}


@pytest.fixture(scope="module")
def data(host):
    return other_host(DATA)


def current_release(web):
    return web.check_output(f"readlink {APP_ROOT}/current").rsplit("/", 1)[-1]


def heading(lb, vhost=DOMAIN):
    status, headers, body = get(lb, "/", vhost=vhost)
    assert status == 200, body[-2000:]
    return re.search(r"<h1>(.*?)</h1>", body).group(1), headers


# ---- what the converge left ------------------------------------------------------------------------
@pytest.mark.parametrize("web", WEB)
def test_pages_answer_from_each_web_host(host, web):
    title, headers = heading(host, f"{web}.direct.{DOMAIN}")
    assert title == "Notes"
    # The bundle's WSGI entry point stamps what the project does not: the rollout checks these.
    assert headers["x-served-by"] == web
    assert re.fullmatch(r"[0-9a-f]{12}", headers["x-release"])


def test_the_balancer_spreads_the_pages_over_both_hosts(host):
    seen = {get(host, "/")[1]["x-served-by"] for _ in range(8)}
    assert seen == set(WEB)


def test_the_migration_ran_once_on_mariadb(data):
    query = "SELECT COUNT(*) FROM django_migrations WHERE app = 'notes' AND name = '0001_initial'"
    assert data.check_output("mariadb -N -e %s site", query) == "1"
    assert "notes_note" in data.check_output("mariadb -N -e 'SHOW TABLES' site").split()


def test_css_comes_from_nginx_not_python(host):
    _, _, page = get(host, "/")
    match = re.search(r'href="(/static/notes/style\.[0-9a-f]{12}\.css)"', page)
    assert match, page[:2000]
    status, headers, body = get(host, match.group(1), extra="-H 'Accept-Encoding: gzip' --compressed")
    assert status == 200 and "body" in body
    assert headers.get("server", "").startswith("nginx")
    assert headers.get("content-encoding") == "gzip"
    # The bundle's entry point stamps every response Python makes.
    assert "x-release" not in headers


@pytest.mark.parametrize("web", WEB)
def test_the_projects_database_connections_use_tls(webs, web):
    """The project's own settings (dj-database-url) turn DATABASE_URL's ssl-ca into the driver's TLS
    options: its connections to MariaDB are encrypted and check the server against the database's CA."""
    code = ("from django.db import connection as c; cur = c.cursor(); "
            "cur.execute(\"SHOW SESSION STATUS LIKE 'Ssl_version'\"); "
            "print(cur.fetchone()[1], c.settings_dict['OPTIONS'].get('ssl'))")
    out = webs[web].check_output("runuser -u notes -- /usr/local/bin/notes-manage shell -c %s", code).splitlines()[-1]
    assert re.fullmatch(r"TLSv1\.[23] \{'ca': '/srv/notes/shared/database-ca\.pem'\}", out), out


@pytest.mark.parametrize("web", WEB)
def test_the_project_reads_its_settings_from_the_environment(webs, web):
    h = webs[web]
    dump = ("from django.conf import settings as s; import json; d = s.DATABASES['default']; "
            "print(json.dumps([s.DEBUG, s.ALLOWED_HOSTS, s.CSRF_TRUSTED_ORIGINS, d['ENGINE'], d['USER'], d['PASSWORD'],"
            " d['CONN_MAX_AGE'], s.CACHES['default']['LOCATION'], str(s.STATIC_ROOT), str(s.MEDIA_ROOT),"
            " s.DATA_UPLOAD_MAX_MEMORY_SIZE, s.FILE_UPLOAD_MAX_MEMORY_SIZE]))")
    out = h.check_output("runuser -u notes -- /usr/local/bin/notes-manage shell -c %s", dump)
    (debug, hosts, origins, engine, _, password, conn_max_age, cache, static_root, media_root, data_max,
     file_max) = json.loads(out.splitlines()[-1])
    assert debug is False
    assert DOMAIN in hosts and f"{web}.direct.{DOMAIN}" in hosts
    # The scenario sets no trusted origins (django_app_csrf_trusted_origins: []): HTTPS forms pass
    # because the balancer tells the app the scheme (the TLS tests below).
    assert origins == []
    # The site's 20 MiB body cap (haproxy_max_request_body_mb) for form data; uploads in memory up to 2.5 MB.
    assert (data_max, file_max) == (20 * 1048576, 2621440)
    assert engine == "django.db.backends.mysql"
    # The password went through DATABASE_URL percent-encoded, and came back whole.
    assert password == DB_PASSWORD
    assert conn_max_age > 0
    assert cache and all(re.fullmatch(r"[\d.]+:11211", s) for s in cache)
    # The project fixes STATIC_ROOT inside its folder: the release links it to its collected files.
    release = f"{APP_ROOT}/releases/{current_release(h)}"
    assert h.file(static_root).is_symlink and h.file(static_root).linked_to == f"{release}/static"
    assert h.file(f"{static_root}/staticfiles.json").exists
    assert h.file(media_root).linked_to == f"{APP_ROOT}/shared/media"


@pytest.mark.parametrize("web", WEB)
def test_no_secret_in_the_process_list_or_a_world_readable_file(webs, web):
    h = webs[web]
    processes = h.check_output("ps -eo args")
    assert SECRET not in processes and "molecule-app-password" not in processes
    env_file = h.file(f"{APP_ROOT}/shared/environment")
    assert (env_file.user, env_file.group, env_file.mode) == ("root", "notes", 0o640)
    assert h.run(f"runuser -u nobody -- cat {APP_ROOT}/shared/environment").rc != 0


@pytest.mark.parametrize("web", WEB)
def test_hooks_ran_in_order_for_the_release(webs, web):
    h = webs[web]
    release = current_release(h)
    lines = h.file(f"{APP_ROOT}/shared/hooks.log").content_string.splitlines()
    steps = [line.split()[0] for line in lines if line.endswith(f" {release}")]
    assert steps == ["before_migrate", "after_migrate", "before_switch", "after_switch"], lines


@pytest.mark.parametrize("web", WEB)
def test_uploads_live_in_the_shared_folder(webs, web):
    h = webs[web]
    h.check_output(f"runuser -u notes -- sh -c 'echo kept > {APP_ROOT}/current/src/media/upload.txt'")
    assert h.file(f"{APP_ROOT}/shared/media/upload.txt").content_string.strip() == "kept"


# ---- TLS at the balancer, the app told the scheme by it alone ----------------------------------
TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def post_note(client, base, vhost, text, extra="", body=None):
    """GET `base`/ with Host `vhost` on `client` (a testinfra host), then POST its form to /add/ as a
    browser on https://<vhost> would (Origin, Referer, the CSRF cookie and token), the note's text
    `text`, or read from the file `body` on the client. Returns (the GET's response headers,
    lower-cased, and the POST's status code and body as text)."""
    jar = f"/tmp/jar-{vhost}"
    curl = f"curl -sk -m 30 -H 'Host: {vhost}' {extra} "
    page = client.check_output(curl + f"-c {jar} -D /tmp/head-{vhost} {base}/")
    token = TOKEN.search(page).group(1)
    head = client.check_output(f"cat /tmp/head-{vhost}").lower()
    field = f"text@{body}" if body else f"text={text}"
    status = client.check_output(
        curl + f"-b {jar} -o /tmp/post-{vhost} -w '%{{http_code}}' -H 'Origin: https://{vhost}' "
        f"-H 'Referer: https://{vhost}/' --data-urlencode csrfmiddlewaretoken={token} "
        f"--data-urlencode '{field}' {base}/add/")
    return head, f"{status} {client.check_output(f'cat /tmp/post-{vhost}')}".strip()


def test_an_https_form_post_is_accepted_and_its_cookies_are_secure(host):
    """Over HTTPS the app knows the scheme (the balancer's X-Forwarded-Proto, trusted from it alone): the
    form's POST with Origin https://<domain> passes Django's CSRF check although the scenario sets no
    CSRF_TRUSTED_ORIGINS. Every cookie set over HTTPS is Secure, and HSTS comes with the page."""
    head, status = post_note(host, f"https://{DOMAIN}", DOMAIN, "posted over https",
                             extra=f"--resolve {DOMAIN}:443:127.0.0.1")
    assert status.startswith("302"), status
    assert re.search(r"^strict-transport-security: max-age=\d+", head, re.M), head
    cookies = [line for line in head.splitlines() if line.startswith("set-cookie:")]
    assert cookies and all(re.search(r";\s*secure\b", c) for c in cookies), cookies
    assert "posted over https" in get(host, "/")[2]
    # Over plain HTTP, the same site sets its cookies without the flag (nothing to protect there).
    _, headers, _ = get(host, "/")
    assert "secure" not in headers.get("set-cookie", "").lower()


def test_only_a_balancer_may_tell_the_app_the_scheme(host, webs):
    """The same POST straight to a web host's Apache, claiming X-Forwarded-Proto: https: believed from
    the balancer (302), dropped from anyone else (the web host itself): the app then sees plain HTTP
    and Django refuses the https Origin (403)."""
    web = WEB[0]
    address = webs[web].check_output("hostname -I").split()[0]
    vhost = f"{web}.direct.{DOMAIN}"
    claim = "-H 'X-Forwarded-Proto: https'"
    assert post_note(host, f"http://{address}", vhost, "from the balancer", extra=claim)[1].startswith("302")
    assert post_note(webs[web], f"http://{address}", vhost, "from elsewhere", extra=claim)[1].startswith("403")


def test_django_takes_what_the_balancer_takes(host):
    """Django's limit on a form's data is the site's cap (DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE): a 3 MiB
    note, above Django's default 2.5 MB and below the 20 MiB cap, reaches the view, which refuses it
    for its own reason (its message, not Django's bare 400); a body above the cap never reaches a
    server (413 from the balancer)."""
    big = "/tmp/note-3mib"
    host.check_output(f"head -c {3 * 1048576} /dev/zero | tr '\\0' a > {big}")
    https = {"extra": f"--resolve {DOMAIN}:443:127.0.0.1"}
    _, answer = post_note(host, f"https://{DOMAIN}", DOMAIN, "", body=big, **https)
    assert answer.startswith("400") and "text must be 1 to 200 characters" in answer, answer[:300]
    huge = "/tmp/note-21mib"
    host.check_output(f"head -c {21 * 1048576} /dev/zero | tr '\\0' a > {huge}")
    _, answer = post_note(host, f"https://{DOMAIN}", DOMAIN, "", body=huge, **https)
    assert answer.startswith("413"), answer[:300]


# ---- bad input: stopped before any host changes ----------------------------------------------------
def web_state(webs):
    """What a deploy changes on each web host: where current points, the releases installed, the
    environment file. (The build's own steps on the controller count as changes of the first web
    host in the recap: they run delegated from it.)"""
    return {w: (current_release(h), h.check_output(f"ls {APP_ROOT}/releases"),
                h.file(f"{APP_ROOT}/shared/environment").sha256sum) for w, h in webs.items()}


def _assert_stopped(out, webs, before):
    assert "TASK [rollout : Drain the host in every balancer]" not in out
    assert "TASK [django_app : Install the release from the shipped wheels]" not in out
    assert web_state(webs) == before


def test_a_settings_module_that_does_not_import_stops_the_deploy(webs):
    before = web_state(webs)
    rc, out = playbook("deploy.yml", "-e", "django_app_settings_module=notes_site.nosuch")
    assert rc != 0
    assert "django_app_settings_module notes_site.nosuch does not import with the production environment" in out
    assert "ModuleNotFoundError" in out
    _assert_stopped(out, webs, before)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="the controller's Python runs Django 6: nothing to stop")
def test_a_django_the_controllers_python_cannot_run_stops_the_deploy(webs, tmp_path_factory):
    """Django 6 needs Python 3.12: the Debian 13 hosts run it, a Debian 12 controller (3.11), which builds
    and checks the release, does not; the message names the controller, not the hosts. (The hosts' own
    limit, Debian 12's 3.11, is in tests/test_pip_errors.py.)"""
    def needs_django_6(path):
        requirements = path / "requirements.txt"
        requirements.write_text(re.sub(r"Django==\S+", "Django==6.0", requirements.read_text()))

    before = web_state(webs)
    rc, out = playbook("deploy.yml", "-e", f"django_app_source={project_copy(tmp_path_factory, edit=needs_django_6)}")
    assert rc != 0
    assert "Django 6.0 requires Python >=3.12" in out
    assert "the controller, which builds and checks each release, runs Python 3.11" in out
    _assert_stopped(out, webs, before)


def test_a_folder_without_manage_py_says_where_to_point(webs):
    before = web_state(webs)
    rc, out = playbook("deploy.yml", "-e", "django_app_project_dir=src")
    assert rc != 0
    assert "set django_app_project_dir to the folder inside it that holds manage.py" in out
    _assert_stopped(out, webs, before)


# ---- a change, deployed and rolled back under load -------------------------------------------------
def assert_clean(result, during):
    assert result["requests"] > 100, f"wrk barely ran during {during}:\n{result['output']}"
    assert result["non_2xx"] == 0, f"{result['non_2xx']} non-2xx responses during {during}:\n{result['output']}"
    assert result["socket_errors"] == 0, f"socket errors during {during}:\n{result['output']}"


@pytest.fixture
def load():
    started = []

    def start(path="/"):
        started.append(PacedLoad(LB, DOMAIN, path))
        return started[-1]

    yield start
    for running in started:
        running.kill()


def test_a_rolling_deploy_of_a_change_fails_no_request(host, webs, tmp_path_factory, load):
    first = {w: current_release(webs[w]) for w in WEB}
    wrk = load("/")
    rc, out = playbook("deploy.yml", "-e", f"django_app_source={project_copy(tmp_path_factory, 'Notes, v2')}")
    result = wrk.stop()
    assert rc == 0, out[-6000:]
    assert_clean(result, "the rolling deploy of a change")
    # The new build's deployment checks found warnings only (the fixture leaves HSTS and the secure
    # cookies to the TLS set-up), and listed them.
    assert re.search(r"manage\.py check --deploy warns \(\d+\):.*security\.W004", out, re.S)
    for web in WEB:
        title, headers = heading(host, f"{web}.direct.{DOMAIN}")
        assert title == "Notes, v2"
        assert headers["x-release"] == current_release(webs[web]) != first[web]
        # The upload made before the deploy is still there.
        assert webs[web].file(f"{APP_ROOT}/current/src/media/upload.txt").exists


def test_a_rollback_returns_under_load(host, webs, load):
    wrk = load("/")
    rc, out = playbook("rollback.yml")
    result = wrk.stop()
    assert rc == 0, out[-6000:]
    assert_clean(result, "the rollback")
    for web in WEB:
        assert heading(host, f"{web}.direct.{DOMAIN}")[0] == "Notes"
