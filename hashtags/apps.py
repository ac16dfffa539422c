from django.apps import AppConfig


class HashtagsConfig(AppConfig):
    name = "hashtags"
    verbose_name = "Hashtags"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (system checks)  # lazy: Django app loading (imports models)
        from .signals import connect_watched  # lazy: Django app loading (imports models)

        connect_watched()
