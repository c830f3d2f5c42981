"""plugins/filter/sizing.py: the sizing formulas, numbers in and numbers out (no host)."""

import sys
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins" / "filter"))
import sizing  # noqa: E402

APACHE_DEFAULTS = yaml.safe_load((ROOT / "roles" / "apache" / "defaults" / "main.yml").read_text())


def knobs(**overrides):
    """The apache role's defaults as the filter's knobs (apache_wsgi_processes -> processes ...)."""
    d = APACHE_DEFAULTS
    found = {
        "mode": d["apache_wsgi_mode"], "threads": d["apache_wsgi_threads"], "processes": d["apache_wsgi_processes"],
        "processes_per_cpu": d["apache_wsgi_processes_per_cpu"], "processes_min": d["apache_wsgi_processes_min"],
        "process_memory_mb": d["apache_wsgi_process_memory_mb"],
        "prefork_process_memory_mb": d["apache_prefork_process_memory_mb"],
        "prefork_workers": d["apache_prefork_workers"], "prefork_extra_workers": d["apache_prefork_extra_workers"],
        "os_reserved_memory_mb": d["apache_os_reserved_memory_mb"],
        "colocated_memory_mb": d["apache_colocated_memory_mb"],
    }
    return {**found, **overrides}


def test_the_role_defaults_are_daemon_mode_with_one_thread():
    """The numbers below assume the role's defaults; a change there must show here."""
    assert knobs() == {
        "mode": "daemon", "threads": 1, "processes": None, "processes_per_cpu": 2, "processes_min": 2,
        "process_memory_mb": 120, "prefork_process_memory_mb": 10, "prefork_workers": None,
        "prefork_extra_workers": 8, "os_reserved_memory_mb": 512, "colocated_memory_mb": 0}


def test_cpus_decide_on_a_host_with_memory_to_spare():
    found = sizing.wsgi_sizing({"vcpus": 8, "memtotal_mb": 32768}, knobs())
    assert (found["cpu_limit"], found["processes"], found["threads"], found["concurrency"]) == (16, 16, 1, 16)
    # The extra prefork processes serve files and probes beside every WSGI thread.
    assert found["prefork_workers"] == 16 + 8
    assert found["memory_mb"] == 16 * 120 + 24 * 10
    assert found["available_memory_mb"] == 32768 - 512
    assert (found["overridden"], found["prefork_overridden"]) == (False, False)


def test_memory_decides_on_a_host_with_cpus_to_spare():
    # (2048 - 512 - 8 x 10) // (120 + 1 x 10) = 1456 // 130 = 11 processes fit; 16 CPUs would take 32.
    found = sizing.wsgi_sizing({"vcpus": 16, "memtotal_mb": 2048}, knobs())
    assert (found["memory_limit"], found["processes"]) == (11, 11)


def test_the_minimum_holds_on_a_tiny_host():
    found = sizing.wsgi_sizing({"vcpus": 1, "memtotal_mb": 600}, knobs())
    assert found["memory_limit"] == 0
    assert found["processes"] == 2  # processes_min; the role's assert then stops the play


def test_threads_multiply_the_concurrency_and_the_proxies():
    found = sizing.wsgi_sizing({"vcpus": 2, "memtotal_mb": 24105}, knobs(threads=15))
    assert (found["processes"], found["concurrency"], found["prefork_workers"]) == (4, 60, 68)
    assert found["memory_mb"] == 4 * 120 + 68 * 10


def test_embedded_mode_has_one_thread_and_no_proxies():
    found = sizing.wsgi_sizing({"vcpus": 2, "memtotal_mb": 24105}, knobs(mode="embedded", threads=15))
    assert (found["threads"], found["concurrency"], found["prefork_workers"]) == (1, 4, 4)
    assert found["memory_mb"] == 4 * 120


def test_overrides_win_and_are_marked():
    found = sizing.wsgi_sizing({"vcpus": 2, "memtotal_mb": 24105}, knobs(processes=3, prefork_workers=50))
    assert (found["processes"], found["prefork_workers"], found["overridden"], found["prefork_overridden"]) == (
        3, 50, True, True)


def test_sources_pass_through():
    found = sizing.wsgi_sizing({"vcpus": 1, "memtotal_mb": 2048, "cpu_source": "a CPU quota of 1 CPU",
                                "memory_source": "a memory limit of 2048 MiB", "changed": False}, knobs())
    assert (found["cpu_source"], found["memory_source"]) == ("a CPU quota of 1 CPU", "a memory limit of 2048 MiB")
    assert "changed" not in found


def test_the_lab_web_host():
    """A lab web host: 1 CPU and 2 GiB (its container's limits), 128 MiB kept for nginx."""
    found = sizing.wsgi_sizing({"vcpus": 1, "memtotal_mb": 2048}, knobs(colocated_memory_mb=128))
    assert (found["processes"], found["concurrency"], found["prefork_workers"]) == (2, 2, 10)


def test_numbers_as_text_are_accepted():
    """Jinja hands over inventory values as text now and then."""
    assert sizing.wsgi_sizing({"vcpus": "2", "memtotal_mb": "4096"}, knobs(threads="2"))["concurrency"] == 8


@pytest.mark.parametrize(("resources", "overrides", "message"), [
    ({"vcpus": 2, "memtotal_mb": 4096}, {"mode": "fastcgi"}, "'mode' must be one of daemon, embedded, got 'fastcgi'"),
    ({"vcpus": 2, "memtotal_mb": 4096}, {"threads": 0}, "'threads' must be at least 1, got 0"),
    ({"vcpus": 2, "memtotal_mb": 4096}, {"process_memory_mb": "lots"}, "'process_memory_mb' must be a whole number, got 'lots'"),
    ({"vcpus": 2, "memtotal_mb": 4096}, {"processes_min": None}, "'processes_min' is missing"),
    ({"vcpus": 2}, {}, "resources need vcpus and memtotal_mb"),
])
def test_bad_input_is_named(resources, overrides, message):
    with pytest.raises(AnsibleFilterError, match=message):
        sizing.wsgi_sizing(resources, knobs(**overrides))


def test_the_filter_is_registered():
    assert sizing.FilterModule().filters() == {
        "wsgi_sizing": sizing.wsgi_sizing, "database_sizing": sizing.database_sizing, "cache_sizing": sizing.cache_sizing,
        "site_plan": sizing.site_plan, "listen_address_problem": sizing.listen_address_problem}


def role_knobs(role, prefix, constants):
    """A role's defaults without their prefix, plus its constants from vars/main.yml (without __prefix)."""
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())
    variables = yaml.safe_load((ROOT / "roles" / role / "vars" / "main.yml").read_text())
    found = {k[len(prefix):]: v for k, v in defaults.items() if k.startswith(prefix)}
    found.update({name: variables[f"__{prefix}{key}"] for name, key in constants.items()})
    return found


MYSQL_CONSTANTS = {"buffer_pool_step_mb": "buffer_pool_step_mb", "thread_cache_max": "thread_cache_max",
                   "sem_semmsl_min": "sem_semmsl_min", "sem_semmsl_max": "sem_semmsl_max",
                   "sem_headroom": "sem_headroom", "sem_semopm": "sem_semopm", "sem_semmni": "sem_semmni"}


def database(resources, web, **overrides):
    return sizing.database_sizing(resources, web, {**role_knobs("mysql", "mysql_", MYSQL_CONSTANTS), **overrides})


def test_max_connections_follow_the_web_tier_with_headroom():
    # The mysql scenario's web hosts: 6 and 20 workers, 12 admin connections, a floor of 20.
    found = database({"vcpus": 1, "memtotal_mb": 2048}, {"web1": 6, "web2": "20"},
                     admin_connections=12, max_connections_min=20)
    assert (found["web_concurrency_total"], found["max_connections"], found["thread_cache_size"]) == (26, 38, 38)
    assert found["web_concurrency"] == {"web1": 6, "web2": 20}
    assert found["max_connections_source"] == (
        "web tier 26 + mysql_admin_connections 12, at least mysql_max_connections_min 20")


def test_the_floor_holds_for_a_small_web_tier():
    found = database({"vcpus": 1, "memtotal_mb": 8192}, {"web1": 4, "web2": 4})
    assert found["max_connections"] == 100  # mysql_max_connections_min


def test_buffer_pool_is_a_share_of_the_usable_memory_in_128_mib_steps():
    # (2048 - 1024 reserved) x 0.6 = 614 MiB -> 512 MiB; (16384 - 1024) x 0.6 = 9216 -> 9216.
    assert database({"vcpus": 1, "memtotal_mb": 2048}, {})["buffer_pool_mb"] == 512
    assert database({"vcpus": 4, "memtotal_mb": 16384}, {})["buffer_pool_mb"] == 9216
    # Never below one step, even where the reserve takes all the memory.
    assert database({"vcpus": 1, "memtotal_mb": 900}, {})["buffer_pool_mb"] == 128


def test_connection_memory_and_what_the_host_needs():
    found = database({"vcpus": 1, "memtotal_mb": 2048}, {"web1": 6, "web2": 20}, admin_connections=12,
                     max_connections_min=20)
    per_connection = 2048 + 256 + 128 + 256 + 1024
    assert found["per_connection_kb"] == per_connection
    assert found["connections_mb"] == -(-38 * per_connection // 1024)  # rounded up
    assert found["needed_mb"] == 512 + found["connections_mb"] + 1024


def test_conn_max_age_stays_below_wait_timeout():
    found = database({"vcpus": 1, "memtotal_mb": 2048}, {})
    assert found["conn_max_age"] == 600 - 60
    assert database({"vcpus": 1, "memtotal_mb": 2048}, {}, conn_max_age=30)["conn_max_age"] == 30


def test_sem_floor_follows_max_connections_within_the_kernel_bounds():
    assert database({"vcpus": 1, "memtotal_mb": 2048}, {})["sem_floor"] == "250 32000 100 128"
    found = database({"vcpus": 1, "memtotal_mb": 2048}, {"web1": 1000})
    assert found["sem_floor"] == "1020 130560 100 128"
    assert database({"vcpus": 1, "memtotal_mb": 2048}, {}, max_connections=90000)["sem_floor"].startswith("32000 ")
    assert database({"vcpus": 1, "memtotal_mb": 2048}, {}, sem_floor="300 38400 100 128")["sem_floor"] == (
        "300 38400 100 128")


def test_database_bad_input_is_named():
    with pytest.raises(AnsibleFilterError, match="'wait_timeout' must be a whole number, got 'ten minutes'"):
        database({"vcpus": 1, "memtotal_mb": 2048}, {}, wait_timeout="ten minutes")
    with pytest.raises(AnsibleFilterError, match="web_concurrency whole numbers per host"):
        database({"vcpus": 1, "memtotal_mb": 2048}, {"web1": "many"})


MEMCACHED_CONSTANTS = {"threads_max": "threads_max", "connections_floor": "connections_floor",
                       "nofile_headroom": "nofile_headroom"}


def cache(resources, clients, **overrides):
    return sizing.cache_sizing(resources, clients, {**role_knobs("memcached", "memcached_", MEMCACHED_CONSTANTS),
                                                    **overrides})


def test_cache_connections_follow_the_web_tier():
    # The memcached scenario: 4 x 50 + 6 x 50 = 500 workers, one pooled connection each.
    found = cache({"vcpus": 1, "memtotal_mb": 1024}, {"web1": 200, "web2": 300})
    assert (found["client_concurrency"], found["client_connections"]) == (500, 500)
    assert found["max_connections"] == 500 * 2 + 64
    assert found["nofile_limit"] == found["max_connections"] + 1024
    # A small web tier gets the floor.
    assert cache({"vcpus": 1, "memtotal_mb": 1024}, {"web1": 8})["max_connections"] == 1024


def test_cache_memory_and_threads_follow_the_host():
    found = cache({"vcpus": 1, "memtotal_mb": 1024, "cpu_source": "a CPU quota of 1 CPU",
                   "memory_source": "a memory limit of 1024 MiB"}, {})
    assert (found["memory_mb"], found["memory_limit_mb"], found["threads"]) == (1024 * 70 // 100, 512, 1)
    assert found["memory_source"] == "memcached_memory_percent (70% of 1024 MiB)"
    assert found["host_memory_source"] == "a memory limit of 1024 MiB"
    assert cache({"vcpus": 128, "memtotal_mb": 1024}, {})["threads"] == 64  # the role's maximum
    assert cache({"vcpus": 2, "memtotal_mb": 1024}, {}, memory_mb=64)["memory_source"] == "memcached_memory_mb"
