"""The site's host firewall (playbooks/firewall.yml, role firewall), on every distribution of the
scenario: the data tier opens to the web hosts only. The balancer, a host of the site that is not a
web host, cannot open a connection to memcached or MariaDB; a web host can. (The admin networks of
this scenario hold every container, so the web tier's refusals are proven by the firewall role's own
scenario, whose admin network holds none.)"""

import pytest
from helpers import DB, LB, SUFFIX, WEB, other_host, tcp_connect

testinfra_hosts = [LB]

CACHE = f"site-cache{SUFFIX}"
# The roles' default ports, as the plan reads them (this scenario's inventory sets none).
DATA_TIER = [(DB, 3306), (CACHE, 11211)]


@pytest.fixture(scope="module")
def address(request):
    inventory = request.config.option.ansible_inventory
    return {name: other_host(name, inventory).check_output("hostname -I").split()[0] for name in (DB, CACHE)}


@pytest.mark.parametrize("target, port", DATA_TIER, ids=["mariadb", "memcached"])
def test_the_data_tier_opens_to_the_web_hosts_only(host, request, address, target, port):
    web = other_host(WEB[0], request.config.option.ansible_inventory)
    assert tcp_connect(web, address[target], port) == "open"
    # Dropped: the service listens (the web host just connected), only the firewall stops the balancer.
    assert tcp_connect(host, address[target], port) == "timeout"
    assert tcp_connect(None, address[target], port) == "timeout"


def test_every_host_drops_what_no_rule_admits(request):
    inventory = request.config.option.ansible_inventory
    for name in (LB, *WEB, DB, CACHE):
        chain = other_host(name, inventory).check_output("nft list chain inet site_firewall input")
        assert "policy drop;" in chain, f"{name}: {chain}"
