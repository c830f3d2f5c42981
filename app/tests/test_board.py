"""GET / and the leaderboard query: constant query counts, correct results."""

import pytest

from scoreboard.games import hot
from scoreboard.games.models import League, Player, Score, Team

pytestmark = pytest.mark.django_db


def get_board_uncached(client):
    hot.board.delete()
    response = client.get("/")
    assert response.status_code == 200
    assert response["X-Cache"] == "miss"
    return response


def test_board_query_count_does_not_grow_with_rows(client, seed):
    seed(teams=2, players_per_team=5, scores=2)  # 10 players, 20 scores
    small = get_board_uncached(client)
    seed(teams=20, players_per_team=50, scores=3)  # 1,000 players, 3,000 scores
    large = get_board_uncached(client)

    assert Player.objects.count() == 1000
    assert small["X-DB-Queries"] == large["X-DB-Queries"] == "2"
    assert "Player 0020-50" in large.content.decode()

    cached = client.get("/")
    assert cached["X-Cache"] == "hit"
    assert cached["X-DB-Queries"] == "0"


def test_board_groups_teams_by_league_with_player_totals():
    league = League.objects.create(name="North")
    team = Team.objects.create(league=league, name="Owls")
    ann = Player.objects.create(team=team, name="Ann")
    Player.objects.create(team=team, name="Bob")
    Score.objects.bulk_create([Score(player=ann, points=7), Score(player=ann, points=5)])

    (north,) = Team.objects.board()
    assert north["name"] == "North"
    (owls,) = north["teams"]
    assert owls["points"] == 12
    assert owls["players"] == [
        {"name": "Ann", "points": 12, "scores": 2},
        {"name": "Bob", "points": 0, "scores": 0},
    ]


def test_leaderboard_ranks_teams_by_points_with_ties(django_assert_num_queries):
    league = League.objects.create(name="L")
    points = {"A": 10, "B": 30, "C": 10, "D": 0}
    for name, total in points.items():
        team = Team.objects.create(league=league, name=name)
        player = Player.objects.create(team=team, name=f"{name}1")
        if total:
            Score.objects.create(player=player, points=total)

    with django_assert_num_queries(1):
        rows = Team.objects.leaderboard()

    assert [(r["rank"], r["name"], r["points"]) for r in rows] == [
        (1, "B", 30),
        (2, "A", 10),
        (2, "C", 10),
        (4, "D", 0),
    ]
