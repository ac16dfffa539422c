"""Throttles of the hashtags API (and the demo's sign-in): who the client is, and where counters live.

**Who.** DRF's default identity takes a client-sent ``X-Forwarded-For`` verbatim when
``REST_FRAMEWORK["NUM_PROXIES"]`` is unset, so every new header value was a fresh bucket. Here the
client is ``REMOTE_ADDR`` unless ``HASHTAGS["NUM_PROXIES"]`` says how many reverse proxies of yours
append to ``X-Forwarded-For``; then it is the address the outermost of them saw (the n-th entry from
the right), which a client cannot choose. Signed-in users are counted by user id.

**Where.** Counters go to the cache ``HASHTAGS["THROTTLE_CACHE"]`` (an alias of ``CACHES``). Make
it a shared cache (Redis) in production: a per-process local-memory cache gives every gunicorn
worker its own budget.
"""

from __future__ import annotations

from django.core.cache import caches
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle

from ..conf import hashtags_settings


def client_address(request) -> str:
    """The client's address, trusting ``X-Forwarded-For`` only as far as ``NUM_PROXIES`` proxies."""
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = int(hashtags_settings.NUM_PROXIES or 0)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if proxies <= 0 or not forwarded:
        return remote
    addresses = [a.strip() for a in forwarded.split(",") if a.strip()]
    if not addresses:
        return remote
    return addresses[-min(proxies, len(addresses))]


class SharedCounters:
    """Client identity and counter cache of every hashtags throttle (mixed into DRF's throttles)."""

    @property
    def cache(self):
        return caches[hashtags_settings.THROTTLE_CACHE]

    def get_ident(self, request) -> str:
        return client_address(request)


class TagImageThrottle(SharedCounters, ScopedRateThrottle):
    """``POST tag-image/``: ``HASHTAGS["TAG_IMAGE_THROTTLE"]`` (None = off), per user or client."""

    def get_rate(self):
        return hashtags_settings.TAG_IMAGE_THROTTLE


class TagImagesThrottle(TagImageThrottle):
    """``POST tag-images/``: each image of a batch spends one call of ``TAG_IMAGE_THROTTLE``, so a
    batch buys no more model time than the same images sent one by one."""

    def allow_request(self, request, view) -> bool:
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        cost = view.batch_cost(request)
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        if len(self.history) + cost > self.num_requests:
            return self.throttle_failure()
        self.history[:0] = [self.now] * cost
        self.cache.set(self.key, self.history, self.duration)
        return True


class APIThrottle(SharedCounters, SimpleRateThrottle):
    """Every hashtags API call: ``HASHTAGS["API_THROTTLE"]`` (None = off), per user or client."""

    scope = "hashtags_api"

    def get_rate(self):
        return hashtags_settings.API_THROTTLE

    def get_cache_key(self, request, view):
        user = getattr(request, "user", None)
        ident = user.pk if user is not None and user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class LoginThrottle(SharedCounters, SimpleRateThrottle):
    """Sign-in attempts per client address (``HASHTAGS["LOGIN_THROTTLE"]``; None = off); works
    on a plain Django request, for the demo's login views."""

    scope = "hashtags_login"

    def get_rate(self):
        return hashtags_settings.LOGIN_THROTTLE

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


#: The throttles of a hashtags API view; tag-image/ adds TagImageThrottle.
API_THROTTLES = [APIThrottle]
