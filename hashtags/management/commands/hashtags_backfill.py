"""Queue (or run) analyses for existing objects of the watched models.

Resumable: objects whose current image already has a done analysis by the current model version are
skipped, so an interrupted run just continues when started again.

    python manage.py hashtags_backfill                 # queue through HASHTAGS["EXECUTOR"]
    python manage.py hashtags_backfill --sync          # analyse here, one by one
    python manage.py hashtags_backfill --limit 500 --model posts.post --retry-failed
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Exists, OuterRef
from tqdm import tqdm

from ...conf import hashtags_settings
from ...models import HashtagOptOut, ImageAnalysis
from ...registry import content_type_for, get_watched_model, watched_models


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
        from ...analysis import run_analysis
        from ...dispatch import enqueue_analysis
        from ...inference import get_captioner

        models = watched_models()
        if model:
            chosen = get_watched_model(model)
            if chosen is None:
                raise CommandError(f"{model!r} is not in HASHTAGS['WATCH']")
            models = {chosen: models[chosen]}
        if not models:
            raise CommandError("HASHTAGS['WATCH'] is empty: nothing to backfill")
        from mlcore.artifact import ArtifactError

        try:
            version = get_captioner().model_version
        except ArtifactError as exc:
            raise CommandError(f"cannot load the hashtag model: {exc}") from exc
        statuses = ["done"] if retry_failed else ["done", "failed"]
        opted_out = list(HashtagOptOut.objects.values_list("user_id", flat=True))
        owner_field = hashtags_settings.OWNER_FIELD
        skipped = 0

        todo = []
        for watched, fields in models.items():
            ct = content_type_for(watched)
            for field in fields:
                finished = ImageAnalysis.objects.filter(
                    content_type=ct, object_id=OuterRef("object_pk_text"), field_name=field,
                    model_version=version, status__in=statuses,
                )
                qs = (
                    watched._default_manager.exclude(**{field: ""}).exclude(**{f"{field}__isnull": True})
                    .annotate(object_pk_text=_pk_text())
                    .annotate(finished=Exists(finished.filter(image_name=OuterRef(field))))
                    .filter(finished=False)
                    .order_by("pk")
                )
                if owner_field and opted_out and _has_field(watched, owner_field):
                    skipped += qs.filter(**{f"{owner_field}__in": opted_out}).count()
                    qs = qs.exclude(**{f"{owner_field}__in": opted_out})
                todo.append((watched, field, qs))

        total = sum(qs.count() for _, _, qs in todo)
        if limit is not None:
            total = min(total, limit)
        self.stdout.write(f"{total} image(s) to analyse with model {version}"
                          f" ({'here' if sync else hashtags_settings.EXECUTOR}).")
        done = failed = 0
        with tqdm(total=total, unit="image", disable=options.get("verbosity", 1) == 0) as bar:
            for watched, field, qs in todo:
                for obj in qs.iterator(chunk_size=batch_size):
                    if done + failed >= total:
                        break
                    meta = watched._meta
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
        self.stdout.write(self.style.SUCCESS(f"{verb} {done}, failed {failed}, skipped (opted out) {skipped}."))


def _has_field(model, name: str) -> bool:
    try:
        model._meta.get_field(name)
    except Exception:
        return False
    return True


def _pk_text():
    from django.db.models import CharField
    from django.db.models.functions import Cast

    return Cast("pk", output_field=CharField())
