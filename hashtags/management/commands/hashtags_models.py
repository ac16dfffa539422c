"""The model registry from the command line.

    python manage.py hashtags_models list
    python manage.py hashtags_models register runs/finetuned-1 [--promote] [--notes "..."] [--metrics eval.json]
    python manage.py hashtags_models promote finetuned-1
    python manage.py hashtags_models rollback

Workers pick a promoted version up at their next task (no restart). Statistics are defined in
:mod:`hashtags.versions`.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from mlcore.artifact import ArtifactError

from ... import versions
from ...models import ModelVersion


def _number(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in [headers, ["-" * w for w in widths], *rows]]
    return "\n".join(lines)


class Command(BaseCommand):
    help = "List, register, promote and roll back hashtag model versions."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="{list,register,promote,rollback}")
        sub.add_parser("list", help="Registered versions with the serving one and review statistics.")
        register = sub.add_parser("register", help="Register a model artifact directory.")
        register.add_argument("path", help="Artifact directory (with model.json).")
        register.add_argument("--promote", action="store_true", help="Also serve it now.")
        register.add_argument("--notes", default="", help="Free text kept with the version.")
        register.add_argument("--metrics", help="JSON file of extra evaluation, e.g. on held-back feedback; "
                                                "merged into the version's metrics.")
        promote = sub.add_parser("promote", help="Serve a registered version from now on.")
        promote.add_argument("version")
        sub.add_parser("rollback", help="Serve the version that served before the current one.")

    def handle(self, *args, action: str, **options):
        try:
            if action == "list":
                self._list()
            elif action == "register":
                metrics = self._read_metrics(options.get("metrics"))
                row = versions.register(options["path"], options["notes"], metrics=metrics)
                self.stdout.write(self.style.SUCCESS(f"registered {row.version} ({row.path})"))
                if options["promote"]:
                    self._promote(row)
            elif action == "promote":
                self._promote(options["version"])
            elif action == "rollback":
                row = versions.rollback()
                self.stdout.write(self.style.SUCCESS(
                    f"rolled back: {row.version} serves again; workers switch at their next task"))
        except (ArtifactError, versions.VersionError) as exc:
            raise CommandError(str(exc)) from exc

    def _promote(self, version) -> None:
        row = versions.promote(version)
        previous = f" (was {row.previous.version})" if row.previous_id else ""
        self.stdout.write(self.style.SUCCESS(
            f"{row.version} now serves{previous}; workers switch at their next task"))

    def _read_metrics(self, path: str | None) -> dict | None:
        if not path:
            return None
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read metrics from {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise CommandError(f"{path} must hold a JSON object")
        return data

    def _list(self) -> None:
        try:
            versions.serving_version()  # registers the configured model on a fresh install
        except ArtifactError as exc:
            self.stderr.write(f"warning: the configured model is unusable: {exc}")
        rows = list(versions.with_stats(ModelVersion.objects.all()))
        if not rows:
            self.stdout.write("No model versions registered.")
            return
        body = []
        for row in rows:
            stats = versions.stats_of(row)
            body.append([
                "*" if row.is_serving else "", row.version, row.encoder or "-", str(stats["decided"]),
                versions.format_rate(stats["acceptance_rate"]), _number(stats["edits_per_post"]),
                versions.format_duration(stats["mean_decision_seconds"]), row.created.strftime("%Y-%m-%d %H:%M"), row.path,
            ])
        self.stdout.write(table(
            ["", "VERSION", "ENCODER", "DECIDED", "ACCEPTED", "EDITS/POST", "TO DECIDE", "REGISTERED", "PATH"], body))
        serving = next((row for row in rows if row.is_serving), None)
        if serving is not None:
            how = {"settings": "the configured MODEL_DIR / shipped model", "promoted": "promoted",
                   "rollback": "rolled back to"}.get(serving.serving_reason, serving.serving_reason)
            self.stdout.write(f"\n* serving: {serving.version} ({how})")
