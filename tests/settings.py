"""Settings of the app's tests (django-taggit's pattern): the least a host project needs to run the
hashtags app (auth, contenttypes, admin, DRF + token auth, drf-spectacular for the schema, taggit)
and one watched model, ``tests.testapp.Post.image``. Nothing of the demo site; its own tests run
under ``project.test_settings`` (project/tests/).

The worker tests start real Celery workers (``celery -A tests.celery_app``) on these settings, so
the services come from the environment: ``DATABASE_URL`` (PostgreSQL in CI; SQLite file
otherwise), ``CELERY_BROKER_URL``, ``MEDIA_ROOT`` and the ``HASHTAGS_*`` values below."""

import os
import tempfile
from pathlib import Path

import dj_database_url

from hashtags.delivery import broker_transport_options

TMP_DIR = Path(os.environ.get("HASHTAGS_TEST_TMP", Path(tempfile.gettempdir()) / "hashtags-tests"))
TMP_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = "tests-only-secret-key-" + "x" * 40
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; tests only

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "taggit",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "hashtags",
    "tests.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
STATIC_URL = "static/"
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", TMP_DIR / "media"))

DATABASES = {"default": dj_database_url.config(default=f"sqlite:///{TMP_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file test database (not in-memory), so that a real worker process can share it.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["TEST"] = {"NAME": str(TMP_DIR / "test_db.sqlite3")}

TAGGIT_CASE_INSENSITIVE = True

HASHTAGS = {
    "WATCH": ["testapp.Post.image"],
    "TAGGIT_FIELD": "tags",
    "OWNER_FIELD": "owner",
    "MODEL_DIR": os.environ.get("HASHTAGS_MODEL_DIR") or None,
    # Tests choose their executor (fixtures "recording", "model"); a worker process has a broker.
    "EXECUTOR": os.environ.get("HASHTAGS_EXECUTOR") or ("celery" if os.environ.get("CELERY_BROKER_URL") else "thread"),
    "QUEUE": os.environ.get("HASHTAGS_QUEUE", "gpu"),
    "DATA_DIR": os.environ.get("HASHTAGS_DATA_DIR") or str(TMP_DIR / "data"),
    "WARM_AT_STARTUP": False,
}
for name in ("TASK_TIME_LIMIT", "TASK_SOFT_TIME_LIMIT", "RECONCILE_EVERY", "BATCH_MAX", "BATCH_WAIT_MS"):
    if os.environ.get(f"HASHTAGS_{name}"):
        HASHTAGS[name] = int(os.environ[f"HASHTAGS_{name}"])
if os.environ.get("HASHTAGS_MIN_SCORE"):
    HASHTAGS["MIN_SCORE"] = float(os.environ["HASHTAGS_MIN_SCORE"])

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ROUTES = {"hashtags.analyze_image": {"queue": HASHTAGS["QUEUE"]}}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_ON_FAILURE_OR_TIMEOUT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = broker_transport_options(int(os.environ.get("HASHTAGS_TASK_TIME_LIMIT", "180")))
CELERY_WORKER_PROC_ALIVE_TIMEOUT = 60.0
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {"TITLE": "Hashtags API", "VERSION": "test", "SERVE_INCLUDE_SCHEMA": False,
                        "COMPONENT_SPLIT_REQUEST": True}
