from django.urls import path

from scoreboard import probes
from scoreboard.games import views

urlpatterns = [
    path("", views.board, name="board"),
    path("leaderboard/", views.leaderboard, name="leaderboard"),
    path("healthz", probes.healthz, name="healthz"),
    path("readyz", probes.readyz, name="readyz"),
    path("metrics", probes.metrics_view, name="metrics"),
]
