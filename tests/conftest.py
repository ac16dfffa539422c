"""Shared test configuration. Django is configured by pytest-django from pytest.ini
(``project.test_settings``: the demo settings with a test-only key): database tests run on PostgreSQL when ``DATABASE_URL`` is set, SQLite
otherwise. Package-specific fixtures live in each package's conftest.py."""
