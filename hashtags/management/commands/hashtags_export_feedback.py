"""Export people's decisions as a Flickr8k-layout dataset for ``python -m training train --extra-data``.

    python manage.py hashtags_export_feedback --out var/feedback                      # everything
    python manage.py hashtags_export_feedback --out var/feedback --since 2025-06-01   # merge newer decisions

What is exported, the caption rule and the held-back split: :mod:`hashtags.export`.
"""

from __future__ import annotations

from datetime import datetime, time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from ...export import export_feedback


def parse_since(text: str) -> datetime:
    """``2025-06-01`` (midnight, current time zone) or an ISO date-time."""
    try:
        moment = parse_datetime(text)
        if moment is None:
            day = parse_date(text)
            moment = datetime.combine(day, time.min) if day else None
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(f"--since: {text!r} is not a date (YYYY-MM-DD) or an ISO date-time")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


class Command(BaseCommand):
    help = "Write accepted/edited/rejected/added tags and corrected captions as a Flickr8k-layout dataset."

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, help="Dataset directory (created; updated with --since).")
        parser.add_argument("--since", help="Only images with a decision at/after this date, merged into --out.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args, out, since=None, no_progress=False, **options):
        moment = parse_since(since) if since else None
        summary = export_feedback(out, moment, progress=not no_progress and options.get("verbosity", 1) > 0)
        self.stdout.write(f"{out}: {summary}")
        if not summary.total_images:
            self.stdout.write(self.style.WARNING(
                "The dataset is empty: no image with a decided suggestion or a corrected caption could be exported."))
