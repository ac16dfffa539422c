"""URL map of the hashtags API (include under ``api/hashtags/``)::

    POST   tag-image/                                  caption + hashtags for an upload (anonymous, throttled)
    POST   tag-images/                                 the same for several images, one batched pass
    GET    posts/?tag=dog[&model=posts.post]           posts with an accepted tag (paginated)
    GET    posts/<app_label.model>/<pk>/               analyses (status, error), suggestions, tags
    GET    posts/<app_label.model>/<pk>/suggestions/   suggestions of the current image
    GET    posts/<app_label.model>/<pk>/tags/          accepted tags
    POST   posts/<app_label.model>/<pk>/tags/          add your own tag {"tag": "#puppy"}
    DELETE posts/<app_label.model>/<pk>/tags/<tag>/    remove an accepted tag
    POST   posts/<app_label.model>/<pk>/analyze/       re-run the analysis
    POST|DELETE posts/<app_label.model>/<pk>/caption/  correct the caption {"caption": "..."}
    GET    suggestions/<id>/
    POST   suggestions/<id>/accept/ | reject/ | reset/ | edit/ {"tag": "#puppy"}
    GET    trending/?days=7&limit=20
    GET    tags/?search=do                             tag vocabulary
    GET|PUT|DELETE opt-out/                            your opt-out
    GET    models/                                     model versions, serving flag, review statistics
    POST   models/<version>/promote/                   serve this version (promote_modelversion)
    POST   models/rollback/                            serve the previous version again (promote_modelversion)
"""

from django.urls import path, re_path

from . import views

app_name = "hashtags-api"

OBJECT = "posts/<str:content_type>/<str:pk>/"

urlpatterns = [
    path("tag-image/", views.TagImageView.as_view(), name="tag-image"),
    path("tag-images/", views.TagImagesView.as_view(), name="tag-images"),
    path("posts/", views.PostsByTagView.as_view(), name="posts-by-tag"),
    path(OBJECT, views.PostViewSet.as_view({"get": "retrieve"}), name="post-detail"),
    path(OBJECT + "suggestions/", views.PostViewSet.as_view({"get": "suggestions"}), name="post-suggestions"),
    path(OBJECT + "tags/", views.PostViewSet.as_view({"get": "tags", "post": "add_tag"}), name="post-tags"),
    path(OBJECT + "tags/<str:tag>/", views.PostViewSet.as_view({"delete": "remove_tag"}), name="post-tag-detail"),
    path(OBJECT + "analyze/", views.PostViewSet.as_view({"post": "analyze"}), name="post-analyze"),
    path(OBJECT + "caption/", views.PostViewSet.as_view({"post": "caption", "delete": "withdraw_caption"}),
         name="post-caption"),
    path("suggestions/<int:pk>/", views.SuggestionViewSet.as_view({"get": "retrieve"}), name="suggestion-detail"),
    *[path(f"suggestions/<int:pk>/{decision}/", views.SuggestionViewSet.as_view({"post": decision}),
           name=f"suggestion-{decision}") for decision in ("accept", "reject", "reset", "edit")],
    path("trending/", views.TrendingView.as_view(), name="trending"),
    path("tags/", views.HashtagListView.as_view(), name="tags"),
    path("opt-out/", views.OptOutView.as_view(), name="opt-out"),
    path("models/", views.ModelVersionViewSet.as_view({"get": "list"}), name="models"),
    path("models/rollback/", views.ModelVersionViewSet.as_view({"post": "rollback"}), name="model-rollback"),
    path("models/<str:version>/promote/", views.ModelVersionViewSet.as_view({"post": "promote"}), name="model-promote"),
    # Last: every other path under the API answers a 404 in the API's error shape.
    re_path(r"^(?:[\s\S]*/)?$", views.NotFoundView.as_view(), name="not-found"),
]
