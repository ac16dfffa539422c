from django.apps import AppConfig


class PostsConfig(AppConfig):
    name = "project.posts"
    label = "posts"
    verbose_name = "Posts (demo)"
    default_auto_field = "django.db.models.BigAutoField"
