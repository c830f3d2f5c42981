"""The hot cache holds the rendered pages: a hit is served as is, without a query or a render."""

import io

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.shortcuts import render
from django.test import RequestFactory
from django.test.signals import template_rendered

from scoreboard import metrics
from scoreboard.games import hot
from scoreboard.games.models import League, Player, Score, Team
from scoreboard.games.pages import fill

from .helpers import concurrent_gets

PAGES = {
    "/": ("games/board.html", lambda: Team.objects.board()),
    "/leaderboard/": ("games/leaderboard.html", lambda: Team.objects.leaderboard()),
}
BOARD_TEMPLATES = ["games/board.html", "games/base.html"]


def uncached(path):
    """The page as the view rendered it on every request: the query's rows in the template."""
    template, query = PAGES[path]
    return render(RequestFactory().get(path), template, {"data": query()}).content


@pytest.fixture
def renders():
    """Names of the templates rendered meanwhile, in any thread."""
    names = []

    def record(sender, template, **kwargs):
        names.append(template.name)

    template_rendered.connect(record)
    yield names
    template_rendered.disconnect(record)


@pytest.fixture
def awkward_data():
    """Names to escape, non-ASCII, and a team and a player named like slots of the page."""
    league = League.objects.create(name="A&B <League>")
    team = Team.objects.create(league=league, name="\"Owls\" & 'Co' <b>")
    for name, points in (("<!--slot:served_by-->", 3), ("Zoë ✓", 5)):
        Score.objects.create(player=Player.objects.create(team=team, name=name), points=points)
    Team.objects.create(league=league, name="<!--slot:release-->")


@pytest.mark.django_db
def test_a_hit_runs_no_query_and_renders_no_template(
    client, seed, renders, django_assert_num_queries
):
    seed(teams=6, players_per_team=5, scores=2)
    miss = client.get("/")
    assert (miss["X-Cache"], miss["X-DB-Queries"]) == ("miss", "2")
    assert renders == BOARD_TEMPLATES
    assert metrics.value("board_recomputes_total") == 1

    renders.clear()
    with django_assert_num_queries(0):
        hit = client.get("/")
    assert (hit["X-Cache"], hit["X-DB-Queries"]) == ("hit", "0")
    assert renders == []
    assert hit.content == miss.content
    assert hit["Content-Type"] == miss["Content-Type"] == "text/html; charset=utf-8"
    assert metrics.value("board_recomputes_total") == 1
    assert metrics.value("cache_hits_total", "board") == 1


@pytest.mark.django_db
@pytest.mark.usefixtures("awkward_data")
@pytest.mark.parametrize("path", PAGES)
def test_the_page_is_byte_identical_to_an_uncached_render(client, settings, path):
    settings.SERVED_BY = "web-1 <&>"
    settings.RELEASE = "r'1\""
    expected = uncached(path)
    assert b"served by web-1 &lt;&amp;&gt;</footer>" in expected
    assert b"&lt;!--slot:release--&gt;" in expected

    miss = client.get(path)
    assert (miss["X-Cache"], miss.content) == ("miss", expected)
    hit = client.get(path)
    assert (hit["X-Cache"], hit.content) == ("hit", expected)

    # Rendered out of band (no request), served by another host of another release.
    call_command("refresh_hot_cache", stdout=io.StringIO())
    settings.SERVED_BY = "web-2"
    settings.RELEASE = "r2"
    hit = client.get(path)
    assert (hit["X-Cache"], hit.content) == ("hit", uncached(path))
    assert b"release r2 \xc2\xb7 served by web-2</footer>" in hit.content


@pytest.mark.django_db
def test_a_write_invalidates_the_page(client, seed, django_capture_on_commit_callbacks):
    seed(teams=3, players_per_team=2, scores=1)
    old = client.get("/").content
    assert client.get("/")["X-Cache"] == "hit"

    with django_capture_on_commit_callbacks(execute=True):
        Player.objects.create(team=Team.objects.first(), name="Newcomer")

    # Stale while another process recomputes: the old page, at once.
    cache.add(hot.board.lock_key, "another process", 30)
    stale = client.get("/")
    assert (stale["X-Cache"], stale["X-DB-Queries"], stale.content) == ("stale", "0", old)
    cache.delete(hot.board.lock_key)

    fresh = client.get("/")
    assert fresh["X-Cache"] == "miss"
    assert "Newcomer" in fresh.content.decode()
    assert fresh.content == uncached("/")
    assert client.get("/").content == fresh.content


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("slow_board")
def test_cold_cache_20_concurrent_requests_render_once(seed, renders):
    requests = 20
    seed(teams=6, players_per_team=5, scores=2)
    hot.board.delete()
    before = metrics.value("board_recomputes_total")
    renders.clear()

    results = concurrent_gets("/", requests, with_body=True)

    assert [status for status, _, _ in results] == [200] * requests, results
    x_cache = sorted(header for _, header, _ in results)
    assert x_cache == ["hit"] * (requests - 1) + ["miss"]
    assert metrics.value("board_recomputes_total") == before + 1
    assert renders == BOARD_TEMPLATES
    assert {body for _, _, body in results} == {uncached("/")}


@pytest.mark.django_db
@pytest.mark.usefixtures("broken_cache")
@pytest.mark.parametrize("path", PAGES)
def test_memcached_down_still_serves_the_page(client, seed, renders, path):
    seed(teams=3, players_per_team=2, scores=1)
    expected = uncached(path)
    renders.clear()
    for _ in range(2):
        response = client.get(path)
        assert (response.status_code, response["X-Cache"]) == (200, "miss")
        assert response.content == expected
    assert renders.count(PAGES[path][0]) == 2


def test_a_slot_unknown_to_this_release_is_left_empty(settings):
    settings.SERVED_BY = "web-1"
    page = (b"<p>", b"served_by", b" ", b"region", b"</p>")
    assert fill(page, RequestFactory().get("/")) == b"<p>web-1 </p>"
