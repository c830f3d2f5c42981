"""The hot cache entries of the site: the two pages, rendered (see scoreboard.softcache).

The value of an entry is the page itself (scoreboard.games.pages): one recomputation is one query
(2 for the board) and one render; a hit is one memcached get, no query and no render. Version 2 of
the keys: version 1 held the query's rows, which the templates rendered on every request.
"""

from scoreboard.games.models import Team
from scoreboard.games.pages import render_page
from scoreboard.softcache import SoftCache


def render_board():
    return render_page("games/board.html", Team.objects.board())


def render_leaderboard():
    return render_page("games/leaderboard.html", Team.objects.leaderboard())


board = SoftCache("board", render_board, version=2)
leaderboard = SoftCache("leaderboard", render_leaderboard, version=2)
