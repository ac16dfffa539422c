"""The test suite (django-taggit's layout: outside the package, with its own settings and test app)."""
