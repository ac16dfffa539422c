"""Train the feedback re-ranker (:mod:`hashtags.reranker`) from every decision people made.

    python manage.py hashtags_train_reranker                    # saves to HASHTAGS["RERANKER_PATH"]
    python manage.py hashtags_train_reranker --min-decisions 20 --out /srv/hashtags/reranker.json

Refuses (exit status 1, nothing written) with fewer than ``RERANKER_MIN_DECISIONS`` decisions.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ...reranker import NotEnoughFeedback, describe, train_and_save


class Command(BaseCommand):
    help = "Train the Naive Bayes hashtag re-ranker on people's accept/reject/edit/add decisions."

    def add_arguments(self, parser):
        parser.add_argument("--out", help="Where to save it (default: HASHTAGS['RERANKER_PATH']).")
        parser.add_argument("--min-decisions", type=int, default=None,
                            help="Override HASHTAGS['RERANKER_MIN_DECISIONS'].")

    def handle(self, *args, out=None, min_decisions=None, **options):
        try:
            reranker, path = train_and_save(min_decisions, out)
        except NotEnoughFeedback as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"re-ranker saved to {path}"))
        self.stdout.write(describe(reranker))
