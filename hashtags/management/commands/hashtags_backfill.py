"""Queue (or run) analyses for existing objects of the watched models.

Resumable: objects whose current image already has a done analysis by the current model version are
skipped, so an interrupted run just continues when started again. Images are matched on content:
the same bytes analysed under an older file name (a re-upload) count as analysed.

    python manage.py hashtags_backfill                 # queue through HASHTAGS["EXECUTOR"]
    python manage.py hashtags_backfill --sync          # analyse here, one by one
    python manage.py hashtags_backfill --limit 500 --model posts.post --retry-failed
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from mlcore.artifact import ArtifactError
from tqdm import tqdm

from ...analysis import run_analysis
from ...conf import hashtags_settings
from ...dispatch import enqueue_analysis
from ...inference import get_captioner
from ...reconcile import images_without_analysis, matches_by_content, without_opted_out
from ...watched import get_watched_model, watched_models


class Command(BaseCommand):
    help = "Analyse existing images of the watched models that have no analysis by the current model yet."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=None, help="At most this many objects.")
        parser.add_argument("--sync", action="store_true", help="Run the analyses in this process.")
        parser.add_argument("--model", help='Only this watched model, e.g. "posts.post".')
        parser.add_argument("--retry-failed", action="store_true",
                            help="Also redo images whose analysis by this model version failed.")
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, limit=None, sync=False, model=None, retry_failed=False, batch_size=500, **options):
        models = watched_models()
        if model:
            chosen = get_watched_model(model)
            if chosen is None:
                raise CommandError(f"{model!r} is not in HASHTAGS['WATCH']")
            models = {chosen: models[chosen]}
        if not models:
            raise CommandError("HASHTAGS['WATCH'] is empty: nothing to backfill")

        try:
            version = get_captioner().model_version
        except ArtifactError as exc:
            raise CommandError(f"cannot load the hashtag model: {exc}") from exc
        statuses = ["done"] if retry_failed else ["done", "failed"]
        skipped = 0

        todo = []
        for watched, fields in models.items():
            for field in fields:
                qs = images_without_analysis(watched, field, version=version, statuses=statuses)
                allowed = without_opted_out(watched, qs)
                skipped += qs.count() - allowed.count()
                todo.append((watched, field, allowed))

        total = sum(qs.count() for _, _, qs in todo)
        if limit is not None:
            total = min(total, limit)
        self.stdout.write(f"{total} image(s) to analyse with model {version}"
                          f" ({'here' if sync else hashtags_settings.EXECUTOR}).")
        done = failed = same_content = 0
        with tqdm(total=total, unit="image", disable=options.get("verbosity", 1) == 0) as bar:
            for watched, field, qs in todo:
                for obj in qs.iterator(chunk_size=batch_size):
                    if done + failed + same_content >= total:
                        break
                    meta = watched._meta
                    if matches_by_content(obj, field, version=version, statuses=statuses):
                        same_content += 1  # these bytes were analysed under an older file name
                        bar.update(1)
                        continue
                    if sync:
                        analysis = run_analysis(meta.app_label, meta.model_name, obj.pk, field, force=retry_failed)
                        if analysis is not None and analysis.status == "failed":
                            failed += 1
                            bar.write(f"{meta.label} {obj.pk}: {analysis.error}")
                        else:
                            done += 1
                    else:
                        enqueue_analysis(meta.app_label, meta.model_name, obj.pk, field, force=retry_failed)
                        done += 1
                    bar.update(1)
        verb = "analysed" if sync else "queued"
        self.stdout.write(self.style.SUCCESS(
            f"{verb} {done}, failed {failed}, already analysed (same content) {same_content}, "
            f"skipped (opted out) {skipped}."))
