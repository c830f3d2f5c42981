from django.db import models
from django.utils import timezone

from scoreboard.games.managers import TeamManager


class League(models.Model):
    name = models.CharField(max_length=100, unique=True)

    def __str__(self):
        return self.name


class Team(models.Model):
    league = models.ForeignKey(League, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=100, unique=True)

    objects = TeamManager()

    def __str__(self):
        return self.name


class Player(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="players")
    name = models.CharField(max_length=100)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="player_name_per_team")
        ]

    def __str__(self):
        return self.name


class Score(models.Model):
    player = models.ForeignKey(Player, on_delete=models.CASCADE, related_name="scores")
    points = models.IntegerField()
    created = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self):
        return f"{self.player}: {self.points}"
