"""The nginx_static role on a converged host, seen as the balancer sees it: HTTP on the static port."""

import base64
import gzip
import json
import pathlib
import sys

import pytest
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[5] / "molecule" / "resources" / "tests"))
from scenario import hostvars, lost_handler_is_made_up  # noqa: E402

DEFAULTS = yaml.safe_load((pathlib.Path(__file__).parents[3] / "defaults" / "main.yml").read_text())
# The container's CPU limit (molecule.yml): what the host can use, below the machine's CPUs.
PLATFORM = yaml.safe_load((pathlib.Path(__file__).parents[1] / "molecule.yml").read_text())["platforms"][0]
PORT = DEFAULTS["nginx_static_port"]
IMMUTABLE = "public, max-age=31536000, immutable"

# Runs on the host: one request, printed as JSON (status, headers, body in base64). urllib sends
# Accept-Encoding: identity unless the test sets a header.
FETCH = r"""
import base64, json, sys, urllib.error, urllib.request
url, headers = sys.argv[1], json.loads(sys.argv[2])
try:
    resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10)
except urllib.error.HTTPError as err:
    resp = err
body = resp.read()
print(json.dumps({"status": resp.status, "headers": {k.lower(): v for k, v in resp.headers.items()},
                  "body": base64.b64encode(body).decode()}))
"""


def fetch(host, path, **headers):
    out = host.check_output("python3 -c %s %s %s", FETCH, f"http://127.0.0.1:{PORT}{path}", json.dumps(headers))
    resp = json.loads(out)
    resp["body"] = base64.b64decode(resp["body"])
    return resp


@pytest.fixture(scope="module")
def hvars(host):
    """The role's defaults with the scenario's inventory variables over them."""
    return {**DEFAULTS, **hostvars(host)}


def release_file(host, hvars, release, path):
    return host.file(f"{hvars['test_static_root']}/releases/{release}/{path}").content


def test_hashed_file_is_immutable_with_its_body(host, hvars):
    resp = fetch(host, "/static/css/app.333333333333.css")
    assert resp["status"] == 200
    assert resp["headers"]["cache-control"] == IMMUTABLE
    assert resp["headers"]["content-type"].startswith("text/css")
    assert resp["body"] == release_file(host, hvars, "test-r3", "css/app.333333333333.css")


def test_precompressed_twin_is_sent_for_gzip_clients(host, hvars):
    resp = fetch(host, "/static/css/app.333333333333.css", **{"Accept-Encoding": "gzip"})
    twin = release_file(host, hvars, "test-r3", "css/app.333333333333.css.gz")
    assert resp["status"] == 200
    assert resp["headers"]["content-encoding"] == "gzip"
    assert resp["headers"]["vary"] == "Accept-Encoding"
    assert resp["headers"]["cache-control"] == IMMUTABLE
    # Compressed on the fly would be chunked: a Content-Length equal to the twin's size is the twin.
    assert int(resp["headers"]["content-length"]) == len(twin)
    assert resp["body"] == twin
    assert gzip.decompress(resp["body"]) == release_file(host, hvars, "test-r3", "css/app.333333333333.css")


def test_text_without_twin_is_compressed_on_the_fly(host, hvars):
    resp = fetch(host, "/static/css/app.css", **{"Accept-Encoding": "gzip"})
    assert resp["status"] == 200
    assert resp["headers"]["content-encoding"] == "gzip"
    assert "content-length" not in resp["headers"]
    assert gzip.decompress(resp["body"]) == release_file(host, hvars, "test-r3", "css/app.css")


def test_name_without_hash_gets_a_short_max_age(host, hvars):
    resp = fetch(host, "/static/css/app.css")
    assert resp["status"] == 200
    assert resp["headers"]["cache-control"] == DEFAULTS["nginx_static_cache_control"]
    assert "immutable" not in resp["headers"]["cache-control"]


@pytest.mark.parametrize(
    "release,path",
    [
        ("test-r2", "js/prev.222222222222.js"),
        ("test-r1", "css/gone.111111111111.css"),
        ("test-r0", "img/late.000000000000.svg"),
    ],
    ids=["previous-release", "oldest-release", "release-added-by-the-releases-entry-point"],
)
def test_hashed_file_of_an_older_release_is_still_served(host, hvars, release, path):
    resp = fetch(host, f"/static/{path}")
    assert resp["status"] == 200
    assert resp["headers"]["cache-control"] == IMMUTABLE
    assert resp["body"] == release_file(host, hvars, release, path)


def test_name_without_hash_is_served_from_the_current_release_only(host):
    assert fetch(host, "/static/css/legacy.css")["status"] == 404


def test_media_file_is_served(host, hvars):
    resp = fetch(host, "/media/uploads/note.txt")
    assert resp["status"] == 200
    assert resp["headers"]["cache-control"] == DEFAULTS["nginx_static_media_cache_control"]
    assert resp["body"] == host.file(f"{hvars['test_media_root']}/uploads/note.txt").content


@pytest.mark.parametrize(
    "path",
    [
        "/static/",
        "/static/css/",
        "/static/css",
        "/static/missing.css",
        "/static/css/missing.444444444444.css",
        "/static/.complete",
        "/static/staticfiles.json/",
        "/media/",
        "/media/uploads",
        "/media/uploads/",
        "/media/missing.txt",
    ],
)
def test_folders_and_missing_files_get_404(host, path):
    resp = fetch(host, path)
    assert resp["status"] == 404
    assert b"Index of" not in resp["body"]


@pytest.mark.parametrize("path", ["/", "/admin/", "/leaderboard/", "/healthz", "/anything-else"])
def test_everything_else_gets_404_from_nginx(host, path):
    resp = fetch(host, path)
    assert resp["status"] == 404
    assert resp["headers"]["server"] == "nginx"


def test_health_path_answers_from_nginx(host):
    resp = fetch(host, DEFAULTS["nginx_static_health_path"])
    assert resp["status"] == 200
    assert resp["body"] == b"ok\n"


def test_server_header_hides_the_version(host):
    resp = fetch(host, "/static/css/app.css")
    assert resp["headers"]["server"] == "nginx"


def nginx_workers(host):
    master = host.file("/run/nginx.pid").content_string.strip()
    return host.check_output("pgrep -P %s", master).split()


def test_one_worker_per_cpu_the_host_can_use(host):
    cpus = host.ansible("setup", "gather_subset=hardware")["ansible_facts"]["ansible_processor_nproc"]
    assert len(nginx_workers(host)) == PLATFORM["cpus"]
    # The limit is below the machine's CPUs, or the test would not tell them apart.
    assert PLATFORM["cpus"] < cpus or cpus == 1


def test_workers_open_file_limit_matches_the_connections(host):
    expected = DEFAULTS["nginx_static_worker_connections"] * 2
    for pid in nginx_workers(host):
        limits = host.file(f"/proc/{pid}/limits").content_string
        line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        assert line.split()[3:5] == [str(expected)] * 2


def test_listens_on_its_port_and_leaves_80_to_apache(host):
    assert host.socket(f"tcp://0.0.0.0:{PORT}").is_listening
    # converge.yml put a stand-in for Apache on port 80 before nginx was installed.
    on_80 = host.check_output("ss -Hltnp 'sport = :80'")
    assert "python3" in on_80
    assert "nginx" not in on_80
    # The only listener in the whole configuration (no default site on port 80).
    assert host.run("nginx -T 2>/dev/null | grep -E '^\\s*listen\\b'").stdout.split() == [
        "listen", f"*:{PORT}", "default_server", "backlog=4096;"]


def test_access_log_is_off(host):
    log = "/var/log/nginx/access.log"
    before = host.run("stat -c %%s %s", log).stdout.strip()
    fetch(host, "/static/css/app.css")
    fetch(host, "/missing")
    assert host.run("stat -c %%s %s", log).stdout.strip() == before


def test_configuration_test_rejects_a_broken_site(host):
    site = "/etc/nginx/conf.d/nginx-static.conf"
    before = host.file(site).content
    bad = host.run("printf 'server { listen 8082; bogus_directive on; }\\n' > /tmp/bad.conf && "
                   "nginx-static-validate %s /tmp/bad.conf", site)
    assert bad.rc != 0
    assert "bogus_directive" in bad.stderr
    assert host.file(site).content == before
    assert host.run("nginx-static-validate %s %s", site, site).rc == 0


def test_a_run_stopped_before_its_reload_is_made_up_by_the_next(host, request):
    """The main configuration and the site written by a run killed before its reload: the next run
    reloads nginx (new workers, the same master; the host tells, not a notification), the run after
    changes nothing."""
    lost_handler_is_made_up(host, host.backend.get_hostname(), "nginx.service",
                            ["/etc/nginx/nginx.conf", "/etc/nginx/conf.d/nginx-static.conf"],
                            pathlib.Path(__file__).parents[1] / "converge.yml", reload=True,
                            inventory=request.config.option.ansible_inventory, timeout=600)
