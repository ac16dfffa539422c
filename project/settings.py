"""Settings of the demo site. Environment variables switch the services:

- ``DATABASE_URL`` (dj-database-url; default SQLite ``var/db.sqlite3``), e.g.
  ``postgres://postgres@127.0.0.1:5432/hashtags``.
- ``CELERY_BROKER_URL`` (e.g. ``redis://127.0.0.1:6379/0``): when set, analyses go to Celery workers;
  when not, they run in a background thread of the web process (no services needed).
- ``HASHTAGS_MODEL_DIR``: a trained model artifact (default: the model shipped with mlcore).
- ``HASHTAGS_TASK_TIME_LIMIT`` / ``HASHTAGS_TASK_SOFT_TIME_LIMIT`` (seconds, default 180 / 120): one
  analysis' limits; the broker's visibility timeout and the reconciler's "stuck" follow from them.
- ``HASHTAGS_RECONCILE_EVERY`` (seconds, default 120): how often ``celery beat`` runs the reconciler.
- ``DJANGO_SECRET_KEY``, ``DJANGO_DEBUG`` (default on), ``DJANGO_ALLOWED_HOSTS`` (comma separated),
  ``MEDIA_ROOT``.
"""

import os
from pathlib import Path

import dj_database_url

from hashtags.delivery import broker_transport_options

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("HASHTAGS_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-insecure-key-change-me")
DEBUG = os.environ.get("DJANGO_DEBUG", "1").lower() in ("1", "true", "yes", "on")
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h]

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
    "project.posts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "project.wsgi.application"

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}", conn_max_age=int(os.environ.get("CONN_MAX_AGE", "0"))
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the analysis thread/worker write concurrently: wait for locks, take the
    # write lock up front, and let readers run beside the writer (WAL).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
    # A file (not in-memory) test database, so a real worker process can share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_db.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "project" / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

TAGGIT_CASE_INSENSITIVE = True

# --- hashtags ------------------------------------------------------------------------------------
HASHTAGS = {
    "WATCH": ["posts.Post.image"],
    "MODEL_DIR": os.environ.get("HASHTAGS_MODEL_DIR") or None,
    "TAGGIT_FIELD": "tags",
    "OWNER_FIELD": "owner",
    "EXECUTOR": os.environ.get("HASHTAGS_EXECUTOR") or ("celery" if os.environ.get("CELERY_BROKER_URL") else "thread"),
    "QUEUE": os.environ.get("HASHTAGS_QUEUE", "gpu"),
    "TASK_TIME_LIMIT": int(os.environ.get("HASHTAGS_TASK_TIME_LIMIT", "180")),
    "TASK_SOFT_TIME_LIMIT": int(os.environ.get("HASHTAGS_TASK_SOFT_TIME_LIMIT", "120")),
    # Celery beat (``celery -A project beat``, or ``worker -B``) runs the reconciler
    # (hashtags.reconcile: lost, unsent and stuck analyses are sent again) this often, on the
    # analysis queue; workers also run it when they start. The entry is added at beat start by
    # hashtags.tasks.periodic_tasks(); CELERY_BEAT_SCHEDULE stays yours.
    "RECONCILE_EVERY": int(os.environ.get("HASHTAGS_RECONCILE_EVERY", "120")),
}
if os.environ.get("HASHTAGS_MIN_SCORE"):
    HASHTAGS["MIN_SCORE"] = float(os.environ["HASHTAGS_MIN_SCORE"])

# --- Celery ----------------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {"hashtags.analyze_image": {"queue": HASHTAGS["QUEUE"]}}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # one long GPU task at a time per process
CELERY_TASK_ACKS_ON_FAILURE_OR_TIMEOUT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis + acks_late: an unacknowledged message (its worker was killed) goes back to the queue only
# after visibility_timeout seconds (kombu's default: 3,600). Derived from the hard time limit plus
# the longest retry countdown (a retry waits unacked for its ETA) plus a margin: 180 + 30 + 60 = 270 s,
# swept for every 27 s (kombu's default sweep: every 100 s).
# System check hashtags.W001 warns when a Redis broker has none or a smaller one.
CELERY_BROKER_TRANSPORT_OPTIONS = broker_transport_options(HASHTAGS["TASK_TIME_LIMIT"])
# Each prefork child loads TensorFlow and the model in worker_process_init (4-6 s measured) before
# it reports up; Celery kills a child that is not up within this (default 4 s) and replaces it, in a
# loop that never ends. 60 s leaves a wide margin (hashtags.W002 warns below 30 s); the warm-up itself
# gives up waiting after 3/4 of it (the first task then finishes the load), so even a smaller
# allowance no longer wedges the worker.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = float(os.environ.get("CELERY_WORKER_PROC_ALIVE_TIMEOUT", "60"))
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"

# --- REST framework ----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: anonymous API calls get 401 + WWW-Authenticate rather than 403.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Hashtags API",
    "DESCRIPTION": "Hashtag suggestions for images: tag an image, review suggestions, browse by tag.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"hashtags": {"handlers": ["console"], "level": os.environ.get("HASHTAGS_LOG_LEVEL", "INFO")}},
}
