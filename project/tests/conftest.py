"""The demo's tests run under ``project.test_settings`` (``make test`` runs them after the app's
tests, as a second pytest session) with the app's fixtures, which work on whichever model the
settings watch (here the demo's ``posts.Post``)."""

from tests.hashtags.fixtures import *  # noqa: F401,F403
