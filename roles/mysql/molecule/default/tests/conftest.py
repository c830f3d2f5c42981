"""Shared fixtures: the scenario's hosts, the role's documented defaults and the inventory's values."""

import sys
from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROLES.parent / "molecule" / "resources" / "tests"))
from scenario import hostvars, other_host  # noqa: E402

DB = "mysql-db"


def defaults(role):
    return yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())


@pytest.fixture(scope="session")
def get_host(request):
    """Return a testinfra host of the scenario by inventory name."""
    inventory = request.config.option.ansible_inventory

    def get(name):
        return other_host(name, inventory)

    return get


def inventory_vars(host, name, role):
    """The role's defaults overlaid with what the scenario's inventory sets for host `name`."""
    values = defaults(role)
    hv = hostvars(host, name)
    values.update({k: v for k, v in hv.items() if k in values or k.startswith("test_")})
    return values


@pytest.fixture(scope="session")
def db(get_host):
    return get_host(DB)


@pytest.fixture(scope="session")
def db_vars(db):
    values = inventory_vars(db, DB, "mysql")
    # Passwords come from the inventory only (generated on first use), never from defaults.
    hv = hostvars(db, DB)
    values["mysql_app_password"] = hv["mysql_app_password"]
    values["mysql_migrate_password"] = hv["mysql_migrate_password"]
    return values


@pytest.fixture(scope="session")
def db_facts(db):
    return db.ansible("setup", "gather_subset=!all,hardware,network")["ansible_facts"]


@pytest.fixture(scope="session")
def web_vars(db):
    """Each web host's apache sizing inputs as the inventory gives them."""
    names = db.ansible("debug", "var=groups['webservers']")["groups['webservers']"]
    return {name: inventory_vars(db, name, "apache") for name in names}


# Where the tests put the database's CA certificate on the client hosts (fixture client_ca).
CLIENT_CA = "/var/tmp/test-mariadb-ca.pem"
# How the client connects: over TLS checking the server against the database's CA (as the app does),
# or in clear text.
TLS = {"verify": f"--ssl --ssl-ca={CLIENT_CA} --ssl-verify-server-cert", "off": "--skip-ssl"}


def login(client, address, user, password, query="SELECT 1", tls="verify"):
    """Run a query as `user` from another host over TCP; tls: a key of TLS, or mariadb's own options."""
    return client.run(f"MYSQL_PWD=%s mariadb {TLS.get(tls, tls)} -h %s -u %s -N -B -e %s",
                      password, address, user, query)


@pytest.fixture(scope="session", autouse=True)
def client_ca(db, get_host):
    """The database's CA certificate on every client host, as the web tier's playbooks copy it."""
    ca = db.file("/etc/mysql/tls/ca.pem").content_string
    for name in ("mysql-web1", "mysql-web2", "mysql-outsider"):
        get_host(name).check_output("printf '%%s\\n' %s > %s", ca.strip(), CLIENT_CA)
    return ca
