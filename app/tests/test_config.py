"""Settings sources: environment and SCOREBOARD_SETTINGS_FILE (no servers needed)."""

import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from scoreboard.config import Config, cache_locations
from scoreboard.dbdriver import ensure_mysqldb


def test_environment_values_are_typed():
    env = Config.load(
        {
            "SCOREBOARD_DEBUG": "yes",
            "SCOREBOARD_CONN_MAX_AGE": "120",
            "SCOREBOARD_CACHE_SERVERS": "10.0.0.1:11211, 10.0.0.2:11211,",
        }
    )
    assert env.bool("DEBUG") is True
    assert env.int("CONN_MAX_AGE", 60) == 120
    assert env.list("CACHE_SERVERS") == ["10.0.0.1:11211", "10.0.0.2:11211"]
    assert env.str("RELEASE", "dev") == "dev"
    assert env.bool("MISSING") is False


def test_json_file_with_environment_overriding(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(
        '{"SCOREBOARD_DB_HOST": "db1", "SCOREBOARD_DB_PORT": 3307,'
        ' "SCOREBOARD_ALLOWED_HOSTS": ["a.example", "b.example"]}'
    )
    env = Config.load({"SCOREBOARD_SETTINGS_FILE": str(path), "SCOREBOARD_DB_HOST": "db2"})
    assert env.str("DB_HOST") == "db2"
    assert env.int("DB_PORT", 3306) == 3307
    assert env.list("ALLOWED_HOSTS") == ["a.example", "b.example"]


def test_environment_file(tmp_path):
    path = tmp_path / "scoreboard.env"
    path.write_text(
        '# rendered by Ansible\nSCOREBOARD_RELEASE="2024-06-01"\n\n'
        "SCOREBOARD_DEBUG=off\nSCOREBOARD_SECRET_KEY='a=b'\n"
    )
    env = Config.load({"SCOREBOARD_SETTINGS_FILE": str(path)})
    assert env.str("RELEASE") == "2024-06-01"
    assert env.bool("DEBUG", True) is False
    assert env.required("SECRET_KEY") == "a=b"


@pytest.mark.parametrize(("method", "value"), [("bool", "maybe"), ("int", "ten"), ("float", "x")])
def test_bad_values_are_reported_by_name(method, value):
    env = Config.load({"SCOREBOARD_X": value})
    with pytest.raises(ImproperlyConfigured, match="SCOREBOARD_X"):
        getattr(env, method)("X", 0)


def test_required_value_missing():
    with pytest.raises(ImproperlyConfigured, match="SCOREBOARD_SECRET_KEY must be set"):
        Config.load({}).required("SECRET_KEY")


def test_pymysql_stands_in_when_mysqldb_is_missing(monkeypatch):
    pymysql = pytest.importorskip("pymysql")
    monkeypatch.setitem(sys.modules, "MySQLdb", None)  # import MySQLdb -> ImportError
    ensure_mysqldb()
    assert sys.modules["MySQLdb"] is pymysql


def test_unprefixed_names_read_what_the_bundle_gives():
    env = Config.load({"DJANGO_DEBUG": "False", "DJANGO_ALLOWED_HOSTS": "a.example,b.example,"}, prefix="")
    assert env.bool("DJANGO_DEBUG") is False
    assert env.list("DJANGO_ALLOWED_HOSTS") == ["a.example", "b.example"]


def test_cache_url_lists_every_server():
    assert cache_locations("pymemcache://10.0.0.1:11211,10.0.0.2:11211") == ["10.0.0.1:11211", "10.0.0.2:11211"]


@pytest.mark.parametrize("url", ["redis://10.0.0.1:6379", "pymemcache://"])
def test_cache_url_of_another_kind_is_refused(url):
    with pytest.raises(ImproperlyConfigured, match="CACHE_URL"):
        cache_locations(url)
