"""The demo's URLs plus uploaded files, for the browser tests: the live server runs with DEBUG off,
so the photos would not load and the pages would not look as a reviewer sees them."""

from django.conf import settings
from django.urls import re_path
from django.views.static import serve

from project.urls import urlpatterns as demo_urlpatterns


def media(request, path: str):
    """Read MEDIA_ROOT per request: each test has its own."""
    return serve(request, path, document_root=settings.MEDIA_ROOT)


urlpatterns = [re_path(r"^media/(?P<path>.*)$", media), *demo_urlpatterns]
