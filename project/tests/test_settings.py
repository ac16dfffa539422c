"""The demo's settings do what the README's Celery section says a host project should."""

from django.conf import settings as django_settings

from hashtags import delivery


def test_project_settings_derive_the_visibility_timeout_from_the_time_limit():
    limit = django_settings.HASHTAGS["TASK_TIME_LIMIT"]
    timeout = django_settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert timeout == delivery.visibility_timeout(limit)
    assert delivery.visibility_timeout(180) == 270 and delivery.claim_expires_after(180) == 240
    options = django_settings.CELERY_BROKER_TRANSPORT_OPTIONS
    assert options["unacked_restore_interval"] * options["unacked_restore_throttle"] <= 30  # sweeps
    assert timeout > limit + delivery.countdown_cap(limit)  # a retry waiting for its ETA is not redelivered
    assert timeout < 3600  # kombu's default, which left a killed worker's image queued for an hour
    assert django_settings.CELERY_WORKER_PROC_ALIVE_TIMEOUT >= delivery.MIN_PROC_ALIVE_TIMEOUT
