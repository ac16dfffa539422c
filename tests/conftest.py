"""Shared test configuration. Django is configured by pytest-django from pytest.ini
(``tests.settings``: the app with a minimal host app, ``tests.testapp``): database tests run on
PostgreSQL when ``DATABASE_URL`` is set, SQLite otherwise. Package-specific fixtures live in each
package's conftest.py. The demo site's tests are in project/tests (``make test`` runs both)."""
