"""A throttle on the demo's sign-in forms (the site's, the admin's and the browsable API's):
Django's login views have none, so a password could be guessed at the speed of the server."""

from __future__ import annotations

import math
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from hashtags.api.throttling import LoginThrottle


class LoginThrottleMiddleware:
    """Answers 429 to a sign-in POST (any URL named ``login``: ``login``, ``admin:login``,
    ``rest_framework:login``) after ``HASHTAGS["LOGIN_THROTTLE"]`` attempts per client address."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        match = request.resolver_match
        if request.method != "POST" or match is None or match.url_name != "login":
            return None
        throttle = LoginThrottle()
        if throttle.allow_request(request, None):
            return None
        wait = math.ceil(throttle.wait() or 1)
        response = HttpResponse(f"Too many sign-in attempts. Try again in {wait} seconds.", status=429,
                                content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(wait)
        return response
