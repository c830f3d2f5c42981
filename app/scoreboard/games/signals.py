"""Saving a score (or a renamed player, team or league) makes hot entries stale.

Entries are marked stale rather than deleted: readers keep getting the old
value while exactly one of them recomputes (see scoreboard.softcache). It
happens after the transaction commits, so the recomputation sees the new row.
Deletions and bulk operations (``bulk_create``, ``QuerySet.update``) do not
mark entries stale: ``seed_demo`` refreshes the cache itself, and the timer
running ``refresh_hot_cache`` catches up with anything else.
"""

import logging

from django.db import transaction
from django.db.models.signals import post_save

from scoreboard.cache import CACHE_ERRORS
from scoreboard.games.models import League, Player, Score, Team
from scoreboard.softcache import REGISTRY

logger = logging.getLogger(__name__)


def mark_hot_entries_stale():
    for entry in REGISTRY.values():
        try:
            entry.mark_stale()
        except CACHE_ERRORS as exc:
            logger.warning("could not mark %s stale: %r", entry.name, exc)


def on_save(sender, using, **kwargs):
    transaction.on_commit(mark_hot_entries_stale, using=using)


def connect():
    for model in (League, Team, Player, Score):
        post_save.connect(on_save, sender=model, dispatch_uid=f"hot:{model.__name__}")
