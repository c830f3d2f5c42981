from django.apps import AppConfig


class GamesConfig(AppConfig):
    name = "scoreboard.games"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Importing hot registers the hot cache entries (softcache.REGISTRY).
        from scoreboard.games import hot, signals  # noqa: F401

        signals.connect()
