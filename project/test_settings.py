"""Settings of the test suite: the demo's settings as production runs them (DEBUG off), with a
test-only secret key and plain HTTP (the test client speaks HTTP; HTTPS settings are checked by
``manage.py check --deploy`` in tests/hashtags/test_security.py)."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key-" + "x" * 40)
os.environ.setdefault("DJANGO_SSL_REDIRECT", "0")
os.environ.setdefault("DJANGO_SECURE_COOKIES", "0")

from project.settings import *  # noqa: E402,F403
