"""ASGI entry point of the demo site. The model is warmed before the server takes requests
(:func:`hashtags.inference.warm_for_server`): only serving processes import this module."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
application = get_asgi_application()

from hashtags.inference import warm_for_server  # noqa: E402  (needs the apps loaded by get_asgi_application)

warm_for_server()
