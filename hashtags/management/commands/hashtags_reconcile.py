"""Send again the analyses that are stuck, unrequested, unsent or overdue (:mod:`hashtags.reconcile`)
— what Celery beat runs every ``RECONCILE_EVERY`` seconds, by hand or from cron.

    python manage.py hashtags_reconcile              # reconcile once, then print the counts
    python manage.py hashtags_reconcile --status     # only print the counts
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from ...reconcile import health, reconcile


class Command(BaseCommand):
    help = "Re-send lost, unsent and stuck hashtag analyses; print pending/stuck/failed counts."

    def add_arguments(self, parser):
        parser.add_argument("--status", action="store_true", help="Only print the counts; send nothing.")
        parser.add_argument("--limit", type=int, default=1000, help="At most this many of each kind per run.")

    def handle(self, *args, status=False, limit=1000, **options):
        if not status:
            self.stdout.write(f"reconciled: {reconcile(limit=limit)}")
        self.stdout.write(" ".join(f"{key}={value}" for key, value in health().items()))
