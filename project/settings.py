"""Settings of the demo site. Environment variables switch the services:

- ``DATABASE_URL`` (dj-database-url; default SQLite ``var/db.sqlite3``), e.g.
  ``postgres://postgres@127.0.0.1:5432/hashtags``.
- ``CELERY_BROKER_URL`` (e.g. ``redis://127.0.0.1:6379/0``): when set, analyses go to Celery workers;
  when not, they run in a background thread of the web process (no services needed).
- ``DJANGO_CACHE_URL`` (e.g. ``redis://127.0.0.1:6379/1``): a shared cache for throttle counters.
- ``HASHTAGS_MODEL_DIR``: a trained model artifact (default: the model shipped with mlcore).
- ``HASHTAGS_DATA_DIR``: the app's trained files (default ``var/hashtags``, outside MEDIA_ROOT).
- ``DJANGO_DEBUG`` (default **off**; ``make demo`` turns it on), ``DJANGO_SECRET_KEY`` (required
  when DEBUG is off: the published demo key is refused), ``DJANGO_ALLOWED_HOSTS`` (comma
  separated), ``MEDIA_ROOT``, ``DJANGO_NUM_PROXIES`` (reverse proxies in front, default 0).
- Production (DEBUG off) switches on HTTPS-only cookies, HSTS and the HTTPS redirect:
  ``DJANGO_SSL_REDIRECT=0`` when the proxy redirects itself, ``DJANGO_SECURE_PROXY_SSL_HEADER=1``
  when it terminates TLS and sets ``X-Forwarded-Proto``, ``DJANGO_HSTS_SECONDS`` (default one year),
  ``DJANGO_CSRF_TRUSTED_ORIGINS`` (comma separated). See README "Security".
- ``HASHTAGS_TASK_TIME_LIMIT`` / ``HASHTAGS_TASK_SOFT_TIME_LIMIT`` (seconds, default 180 / 120): one
  analysis' limits; the broker's visibility timeout and the reconciler's "stuck" follow from them.
- ``HASHTAGS_RECONCILE_EVERY`` (seconds, default 120): how often ``celery beat`` runs the reconciler.
- ``HASHTAGS_BATCH_MAX`` / ``HASHTAGS_BATCH_WAIT_MS`` (default 16 / 20): cross-task batching in a
  ``--pool=threads`` worker (``make worker``); run it with ``--concurrency`` >= BATCH_MAX.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from hashtags.delivery import broker_transport_options

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("HASHTAGS_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None or value == "" else value.lower() in ("1", "true", "yes", "on")


#: Keys anyone can read in this repository: fine for a local demo, never for a site.
PUBLISHED_SECRET_KEYS = ("demo-only-insecure-key-change-me", "change-me-in-production")

DEBUG = env_flag("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or PUBLISHED_SECRET_KEYS[0]
if not DEBUG and SECRET_KEY in PUBLISHED_SECRET_KEYS:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set (or is the key published in this repository) and DEBUG is off. "
        "Set DJANGO_SECRET_KEY to a long random value, e.g. the output of: python -c \"from "
        "django.core.management.utils import get_random_secret_key; print(get_random_secret_key())\"; "
        "for local development run 'make demo' or set DJANGO_DEBUG=1."
    )
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

# HTTPS in production (DEBUG off); each can be switched off for a proxy that does it itself.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_flag("DJANGO_SECURE_COOKIES", not DEBUG)
SECURE_SSL_REDIRECT = env_flag("DJANGO_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "0" if DEBUG else "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_flag("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_flag("DJANGO_HSTS_PRELOAD", False)
if env_flag("DJANGO_SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

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
    "project.login.LoginThrottleMiddleware",
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
    # Trained files of the app (the re-ranker, JSON): beside the database, not in MEDIA_ROOT.
    "DATA_DIR": os.environ.get("HASHTAGS_DATA_DIR") or str(VAR_DIR / "hashtags"),
    "TASK_TIME_LIMIT": int(os.environ.get("HASHTAGS_TASK_TIME_LIMIT", "180")),
    "TASK_SOFT_TIME_LIMIT": int(os.environ.get("HASHTAGS_TASK_SOFT_TIME_LIMIT", "120")),
    # Celery beat (``celery -A project beat``, or ``worker -B``) runs the reconciler
    # (hashtags.reconcile: lost, unsent and stuck analyses are sent again) this often, on the
    # analysis queue; workers also run it when they start. The entry is added at beat start by
    # hashtags.tasks.periodic_tasks(); CELERY_BEAT_SCHEDULE stays yours.
    "RECONCILE_EVERY": int(os.environ.get("HASHTAGS_RECONCILE_EVERY", "120")),
    # Load the model when a serving process starts (wsgi.py/asgi.py), not in its first request.
    "WARM_AT_STARTUP": env_flag("HASHTAGS_WARM_AT_STARTUP", True),
}
# Behind reverse proxies that append to X-Forwarded-For, say how many; 0 = ignore the header.
HASHTAGS["NUM_PROXIES"] = int(os.environ.get("DJANGO_NUM_PROXIES", "0"))
# Benchmarks only (benchmarks/tag_images.py): no throttles on the API.
if env_flag("HASHTAGS_UNTHROTTLED", False):
    HASHTAGS["TAG_IMAGE_THROTTLE"] = HASHTAGS["API_THROTTLE"] = None
for name in ("BATCH_MAX", "BATCH_WAIT_MS"):
    if os.environ.get(f"HASHTAGS_{name}"):
        HASHTAGS[name] = int(os.environ[f"HASHTAGS_{name}"])
if os.environ.get("HASHTAGS_MIN_SCORE"):
    HASHTAGS["MIN_SCORE"] = float(os.environ["HASHTAGS_MIN_SCORE"])

# --- Cache: throttle counters. Shared Redis when DJANGO_CACHE_URL is set, so
# that every web process counts against the same budget; per-process memory otherwise (demo).
if os.environ.get("DJANGO_CACHE_URL"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": os.environ["DJANGO_CACHE_URL"]}}

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
    # DRF's own throttles (if a project adds some) then agree with the hashtags ones on who the client is.
    "NUM_PROXIES": HASHTAGS["NUM_PROXIES"],
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
