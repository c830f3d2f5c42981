"""The benchmark's arithmetic (scripts/bench.py): wrk's report read right, runs summed and compared
right, the targets judged on the figures. The benchmark itself runs on the lab (`make bench`)."""

import importlib.util
import pathlib

import pytest

_PATH = pathlib.Path(__file__).resolve().parents[1] / "scripts/bench.py"
_SPEC = importlib.util.spec_from_file_location("bench", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)

# wrk 4.1's report, through the lab's balancer.
CLEAN = """Running 1s test @ http://127.0.0.1:8080/healthz
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     7.45ms    4.55ms  29.86ms   72.40%
    Req/Sec   552.95    225.02     1.18k    57.14%
  Latency Distribution
     50%    6.03ms
     75%    9.60ms
     90%   14.59ms
     99%   19.61ms
  1159 requests in 1.10s, 563.65KB read
Requests/sec:   1054.68
Transfer/sec:    512.92KB
"""

# The same with errors, and latencies in other units.
FAULTY = """Running 5s test @ http://127.0.0.1:8080/
  2 threads and 256 connections
  Latency Distribution
     50%  812.00us
     75%    1.20s
     90%    1.90s
     99%    2.50s
  4000 requests in 5.00s, 1.20MB read
  Socket errors: connect 3, read 2, write 1, timeout 7
  Non-2xx or 3xx responses: 11
Requests/sec:    800.00
Transfer/sec:    240.00KB
"""


def test_parse_wrk_reads_every_figure():
    assert bench.parse_wrk(CLEAN) == {
        "requests": 1159, "duration_s": 1.10, "rps": 1054.68, "p50_ms": 6.03, "p99_ms": 19.61,
        "non2xx": 0, "socket_errors": 0, "timeouts": 0,
    }


def test_parse_wrk_converts_units_and_counts_errors():
    figures = bench.parse_wrk(FAULTY)
    assert figures["p50_ms"] == pytest.approx(0.812)
    assert figures["p99_ms"] == pytest.approx(2500.0)
    assert (figures["non2xx"], figures["socket_errors"], figures["timeouts"]) == (11, 6, 7)


def test_parse_wrk_refuses_a_report_without_percentiles():
    with pytest.raises(bench.BenchError, match="--latency"):
        bench.parse_wrk(CLEAN.replace("99%", "98%"))


def run(profile, page, conns, rps, p99, repeat=1, **extra):
    figures = {"profile": profile, "page": page, "connections": conns, "repeat": repeat, "rps": rps,
               "p50_ms": p99 / 4, "p99_ms": p99, "requests": int(rps * 5), "non2xx": 0, "socket_errors": 0,
               "timeouts": 0, "processes_started": {"apache": 0, "wsgi": 0}, "db_new_connections": 0,
               "app_requests": 0, "memcached_hit_ratio": 1.0,
               "cpu_s": {"haproxy": 1.0, "apache": 1.0, "wsgi": 2.0, "nginx": 0.0, "mariadb": 0.1,
                         "memcached": 0.1, "loadgen": 0.2}}
    figures.update(extra)
    return figures


def test_summarize_takes_medians_and_minimums_and_sums_errors():
    runs = [run("tuned", "/", 16, rps, p99, repeat=i, non2xx=i)
            for i, (rps, p99) in enumerate([(300, 40), (320, 50), (280, 90)], 1)]
    summary = bench.summarize(runs)[("tuned", "/", 16)]
    assert (summary["rps_median"], summary["rps_min"], summary["p99_ms"], summary["p99_max_ms"]) == (300, 280, 50, 90)
    assert summary["non2xx"] == 6 and summary["runs"] == 3


def test_per_10k_counts_over_all_runs():
    runs = [run("tuned", "/", 16, 100, 10, db_new_connections=1, requests=500),
            run("tuned", "/", 64, 100, 10, db_new_connections=0, requests=1500)]
    assert bench.per_10k(runs) == 5.0
    assert bench.per_10k([]) == 0


def test_targets_compare_tuned_with_stock():
    runs = [run("stock", "/", 16, 100, 100), run("tuned", "/", 16, 130, 40),
            run("stock", "/leaderboard/", 16, 100, 100), run("tuned", "/leaderboard/", 16, 110, 60,
                                                               processes_started={"apache": 1, "wsgi": 0})]
    limits = {"/": {"median": 100.0}}
    checks = {target: (figure, met) for target, figure, met in
              bench.targets(runs, limits, {"tuned": {"requests": 200, "recomputations": 1}}, web_cpus=2,
                            web_concurrency=8)}
    assert checks["/ c=16: tuned req/s >= 1.2x stock"] == ("1.30x", True)
    assert checks["/ c=16: tuned p99 <= 0.5x stock"] == ("0.40x", True)
    assert checks["/leaderboard/ c=16: tuned req/s >= 1.2x stock"] == ("1.10x", False)
    assert checks["/leaderboard/ c=16: tuned p99 <= 0.5x stock"] == ("0.60x", False)
    assert checks["/ at least 60% of its in-process limit"] == ("65%", True)
    assert checks["tuned: 0 processes started during runs"] == ("1", False)
    assert checks["tuned: 1 recomputation for 200 cold requests"] == ("1", True)


def test_markdown_has_a_table_a_page_and_every_target():
    runs = [run(p, page, c, 100 if p == "stock" else 150, 50) for p in ("stock", "tuned")
            for page in ("/", "/static/x.css") for c in (16, 64)]
    result = {"started": "2026-12-01T000000Z", "profiles": ["stock", "tuned"], "runs": runs,
              "settings": {"repeats": 1, "duration_s": 5, "url": "http://127.0.0.1:8080"},
              "lab": {"containers": {"lab-web1": {"cpus": 1.0, "memory_mib": 2048}}, "machine_cpus": 2, "web_cpus": 2},
              "limits": {"/": {"median": 100.0}}, "cold_cache": {},
              "targets": [("a target", "1", True), ("another", "2", False)]}
    text = bench.render_markdown(result)
    assert "## `/`" in text and "## `/static/x.css`" in text
    assert "| 16 | 100 (100) | 150 (150) | 1.50x |" in text
    assert "| another | 2 | **no** |" in text
    header, rule = [line for line in text.splitlines() if line.startswith("| connections")][0], None
    rule = text.splitlines()[text.splitlines().index(header) + 1]
    assert header.count("|") == rule.count("|")
