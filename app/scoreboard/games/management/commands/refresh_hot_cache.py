"""Recompute the hot cache entries out of band (run by a timer on one host).

Run it more often than SCOREBOARD_HOT_CACHE_FRESH_SECONDS and visitors never
wait for a recomputation.
"""

import time

from django.core.management.base import BaseCommand, CommandError

from scoreboard.softcache import REGISTRY


class Command(BaseCommand):
    help = "Recompute the hot cache entries (board, leaderboard) now."

    def add_arguments(self, parser):
        parser.add_argument(
            "entries",
            nargs="*",
            metavar="ENTRY",
            help=f"entries to refresh (default: all of {', '.join(sorted(REGISTRY))})",
        )

    def handle(self, *args, entries, **options):
        unknown = sorted(set(entries) - set(REGISTRY))
        if unknown:
            raise CommandError(f"unknown entries: {', '.join(unknown)}")
        for name in entries or sorted(REGISTRY):
            start = time.perf_counter()
            refreshed = REGISTRY[name].refresh()
            elapsed_ms = (time.perf_counter() - start) * 1000
            if refreshed:
                self.stdout.write(f"refreshed {name} in {elapsed_ms:.1f} ms")
            else:
                self.stdout.write(f"skipped {name}: another process is recomputing it")
