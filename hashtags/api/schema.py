"""The OpenAPI schema of the hashtags API is its contract: every status an operation can answer is
documented with the one error body (:mod:`hashtags.api.exceptions`), and the path parameters say
which values exist (watched models), so a generated client is right on errors and constraints.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema

from ..watched import content_type_key, watched_models
from .serializers import ErrorSerializer

#: Statuses any operation can answer, whatever it does.
COMMON_ERRORS = {
    "401": "Not signed in, or a wrong token (`WWW-Authenticate` says how to sign in).",
    "403": "Signed in, but not allowed (see the permissions in the README); also a missing CSRF token "
           "with session authentication.",
    "406": "The `Accept` header asks for a format the API does not answer in (it answers JSON).",
    "429": "Too many requests (`API_THROTTLE`, `TAG_IMAGE_THROTTLE`); `Retry-After` says when to try again.",
}
NOT_FOUND = "No such object (or not a watched model, or no such page)."
BAD_REQUEST = "Invalid input; `fields` names each field that is wrong."
UNSUPPORTED_MEDIA = "The request body's Content-Type is not one the operation takes."


class HashtagsAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus the error statuses of each operation."""

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        watched = sorted(content_type_key(model) for model in watched_models())
        for parameter in operation.get("parameters", []):
            if parameter["name"] == "content_type" and parameter["in"] == "path":
                parameter["schema"] = {"type": "string", "enum": watched}
            elif parameter["name"] == "model" and parameter["in"] == "query":
                parameter["schema"] = {"type": "string", "enum": watched}
            elif parameter["name"] == "page" and parameter["in"] == "query":
                parameter["schema"] = {"type": "integer", "minimum": 1}
            elif parameter["name"] == "page_size" and parameter["in"] == "query":
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": 100}
        return operation

    def _get_response_bodies(self, direction="response"):
        bodies = super()._get_response_bodies(direction)
        for code, description in self.error_statuses().items():
            if code not in bodies:  # an operation's own description of a status wins
                bodies[code] = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                bodies[code]["description"] = description
        return bodies

    def error_statuses(self) -> dict[str, str]:
        """The statuses this operation can answer besides its own successes."""
        statuses = dict(COMMON_ERRORS)
        has_body = self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None
        has_query = any(
            getattr(p, "location", "query") == "query" for p in self.get_override_parameters()
        ) or self._is_list_view()
        if has_body or has_query:
            statuses["400"] = BAD_REQUEST
        if has_body:
            statuses["415"] = UNSUPPORTED_MEDIA
        if "{" in self.path or self._is_list_view():
            statuses["404"] = NOT_FOUND
        return statuses
