"""The hot cache entries of the site (see scoreboard.softcache)."""

from scoreboard.games.models import Team
from scoreboard.softcache import SoftCache

board = SoftCache("board", Team.objects.board)
leaderboard = SoftCache("leaderboard", Team.objects.leaderboard)
