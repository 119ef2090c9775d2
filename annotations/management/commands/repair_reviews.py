"""Check every review's label raster against its edit history and rewrite the ones that lost writes.

Edits reach the raster through the page cache without waiting for the disk (see ``annotations.reviews``); the
database rows hold every edit's patch. After a power cut or a crash of the machine, run this once before the
server takes edits again (``make run`` does, after ``migrate``). A raster equal to its history is left alone.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Q
from django.utils import timezone
from tqdm import tqdm

from annotations import reviews
from annotations.models import Review

RECENT_HOURS = 24  # submitted reviews changed this recently are checked too (a cut may follow a submit)


class Command(BaseCommand):
    help = ("Rebuild each review's label raster from its edits where the two differ (after a power cut or a "
            "machine crash); reviews that match are left alone.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true",
                            help="Check every review (default: reviews in progress and reviews changed in the "
                                 f"last {RECENT_HOURS} hours).")

    def handle(self, *args: Any, **options: Any) -> None:
        queryset = Review.objects.select_related("layer").order_by("pk")
        if not options["all"]:
            recent = timezone.now() - timedelta(hours=RECENT_HOURS)
            queryset = queryset.filter(Q(state=Review.State.IN_PROGRESS) | Q(updated_at__gte=recent))
        checked, repaired = 0, []
        for review in tqdm(queryset.iterator(), total=queryset.count(), desc="reviews", unit="review",
                           disable=options["verbosity"] == 0):
            checked += 1
            if reviews.review_repair(review=review):
                repaired.append(review.pk)
        message = f"Checked {checked} review(s); rebuilt {len(repaired)} from their edits"
        self.stdout.write(message + (f": {', '.join(map(str, repaired))}." if repaired else "."))
