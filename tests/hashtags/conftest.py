"""The app's fixtures (tests/hashtags/fixtures.py, shared with the demo's tests)."""

from tests.hashtags.fixtures import *  # noqa: F401,F403
