"""The error a model directory raises when it cannot be used.

Apart from :mod:`mlcore.artifact` (which re-exports it, the name callers use) so that the parts
an artifact is made of (:mod:`mlcore.tag_head`) can raise it while the artifact imports them.
"""

from __future__ import annotations

__all__ = ["ArtifactError"]


class ArtifactError(RuntimeError):
    """The model directory cannot be used; the message says why and where."""
