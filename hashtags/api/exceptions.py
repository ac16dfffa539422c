"""One error shape for the whole hashtags API, DRF's own errors included::

    {"error": "readable reason", "code": "stable_machine_code"}
    {"error": "...", "code": "invalid", "fields": {"tag": ["..."]}}     (validation errors)

Views raise exceptions (DRF's, or the few below); :func:`exception_handler` turns every one into
that body. Every hashtags view uses it through :class:`hashtags.api.views.ApiDefaults`, so a host
project keeps its own ``REST_FRAMEWORK["EXCEPTION_HANDLER"]`` for its other APIs.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class Conflict(exceptions.APIException):
    """The request is valid but the state of the object forbids it (opted-out owner, no previous version)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "the request conflicts with the current state"
    default_code = "conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "the request is too large"
    default_code = "too_large"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "the service is unavailable; try again later"
    default_code = "unavailable"


def bad_request(message: str, code: str = "invalid") -> exceptions.ValidationError:
    """A 400 with one readable reason (no field)."""
    return exceptions.ValidationError(message, code=code)


def _flatten(detail) -> list:
    """Every ErrorDetail in a nested validation detail, in order."""
    if isinstance(detail, dict):
        return [item for value in detail.values() for item in _flatten(value)]
    if isinstance(detail, (list, tuple)):
        return [item for value in detail for item in _flatten(value)]
    return [detail]


def _fields(detail) -> dict[str, list[str]]:
    """Field name → messages (nested fields as ``parent.child``)."""
    fields: dict[str, list[str]] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            fields.setdefault(prefix, []).extend(str(item) for item in _flatten(value))

    if isinstance(detail, dict):
        walk("", detail)
    return fields


def error_body(exc: exceptions.APIException) -> dict:
    """The one error shape for an APIException."""
    detail = exc.detail
    items = _flatten(detail)
    first = items[0] if items else exc.default_detail
    code = getattr(first, "code", None) or exc.default_code
    body: dict = {"error": str(first), "code": str(code)}
    fields = _fields(detail)
    if fields:
        non_field = fields.pop("non_field_errors", None)
        if fields:
            body["fields"] = fields
            name, messages = next(iter(fields.items()))
            body["error"] = f"{name}: {messages[0]}"
        elif non_field:
            body["error"] = non_field[0]
    return body


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler (headers such as ``Retry-After`` and ``WWW-Authenticate`` kept), our body."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) if str(exc) else None)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) if str(exc) else None)
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    response.data = error_body(exc)
    return response
