"""Demo pages: recent posts, upload, a post with its suggestions, posts by tag."""

from django.urls import path

from . import views

app_name = "posts"

urlpatterns = [
    path("", views.home, name="home"),
    path("posts/new/", views.create_post, name="create"),
    path("posts/<int:pk>/", views.post_detail, name="detail"),
    path("posts/<int:pk>/status/", views.post_status, name="status"),
    path("posts/<int:pk>/delete/", views.delete_post, name="delete"),
    path("posts/<int:pk>/analyze/", views.reanalyze_post, name="analyze"),
    path("posts/<int:pk>/tags/", views.add_tag, name="add-tag"),
    path("posts/<int:pk>/caption/", views.correct_caption, name="caption"),
    path("posts/<int:pk>/tags/<str:tag>/remove/", views.remove_tag, name="remove-tag"),
    path("posts/<int:pk>/suggestions/<int:suggestion_id>/<str:action>/", views.decide, name="decide"),
    path("tags/<str:tag>/", views.tag_posts, name="tag"),
    path("settings/opt-out/", views.opt_out, name="opt-out"),
]
