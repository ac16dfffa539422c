"""Send an analysis to whatever runs them (``HASHTAGS["EXECUTOR"]``)."""

from __future__ import annotations

from django.utils.module_loading import import_string

from .conf import hashtags_settings


def enqueue_analysis(app_label: str, model_name: str, pk, field_name: str, *, force: bool = False):
    """Queue the analysis of one image field. Call after the transaction commits."""
    executor = hashtags_settings.EXECUTOR
    args = (app_label, model_name, pk, field_name)
    if executor == "celery":
        from .tasks import analyze_image

        return analyze_image.apply_async(
            args=args,
            kwargs={"force": force},
            queue=hashtags_settings.QUEUE,
            soft_time_limit=hashtags_settings.TASK_SOFT_TIME_LIMIT,
            time_limit=hashtags_settings.TASK_TIME_LIMIT,
        )
    if executor == "thread":
        from .inprocess import submit

        return submit(*args, force=force)
    if executor == "sync":
        from .analysis import run_analysis

        return run_analysis(*args, force=force)
    return import_string(executor)(*args, force=force)
