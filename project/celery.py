"""The Celery app of the demo project: ``celery -A project worker -Q gpu --pool=solo``.

Configuration comes from Django settings prefixed ``CELERY_`` (``CELERY_BROKER_URL`` ...).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
