"""On-disk cache of CNN features, one file per (encoder, image content).

The CNN is by far the slowest part of a training run on a CPU, and its output for a given image
never changes, so it is computed once and reused by every later run and experiment. Keys are the
SHA-256 of the image bytes, so renamed or duplicated files are not encoded twice. Each feature is
written to a temporary file and renamed into place, which makes an interrupted fill safe to
resume: it simply continues with the images that have no file yet.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mlcore.encoders import build_encoder
from mlcore.images import ImageError, load_image
from mlcore.views import apply_view, check_view

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path(os.environ.get("HASHTAGS_FEATURE_CACHE",
                                        Path(__file__).resolve().parent.parent / ".cache" / "features"))


@lru_cache(maxsize=2)
def shared_encoder(name: str):
    """One encoder per name for the process: filling several views or splits builds it once."""
    return build_encoder(name)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class FeatureCache:
    """Features of one encoder and image view (:mod:`mlcore.views`) under ``cache_dir``.

    With ``tap`` (a layer name), the cache holds that layer's output map instead of the pooled
    features (float16 on disk: a 7x7x192 map is 19 KB), for tag heads that fine-tune the
    encoder's last block. Filling it also fills the pooled cache of the same view, which comes
    out of the same forward pass.
    """

    def __init__(self, encoder_name: str, cache_dir: str | Path | None = None, view: str = "plain",
                 tap: str | None = None):
        check_view(view)
        self.encoder_name = encoder_name
        self.view = view
        self.tap = tap
        name = encoder_name if view == "plain" else f"{encoder_name}-{view}"
        self.directory = Path(cache_dir or DEFAULT_CACHE_DIR) / (f"{name}@{tap}" if tap else name)
        self.hits = 0
        self.computed = 0
        self._pooled = FeatureCache(encoder_name, cache_dir, view) if tap else None

    def path_for(self, digest: str) -> Path:
        return self.directory / digest[:2] / f"{digest}.npy"

    def get(self, digest: str) -> np.ndarray | None:
        path = self.path_for(digest)
        if not path.is_file():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            logger.warning("unreadable cache entry %s, recomputing", path)
            return None

    def put(self, digest: str, feature: np.ndarray) -> None:
        path = self.path_for(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        with open(temporary, "wb") as handle:
            np.save(handle, np.asarray(feature, np.float16 if self.tap else np.float32))
        os.replace(temporary, path)

    def features_for(self, image_paths: Sequence[str | Path], encoder=None, batch_size: int = 32,
                     progress: bool = True, dtype=np.float32) -> tuple[np.ndarray, list[str | None]]:
        """Features for every path, computing only the missing ones.

        Returns ``(features (N, D) — (N, *map shape) with a tap —, errors)``; ``errors[i]`` is a message for an unreadable
        image (its row is zeros) and ``None`` otherwise. ``encoder`` is built lazily, so a fully
        cached run never loads the CNN at all. ``dtype``: of the returned matrix (float16 keeps
        a split's spatial maps at their size on disk).
        """
        digests = [file_sha256(path) for path in image_paths]
        rows: list[np.ndarray | None] = [self.get(digest) for digest in digests]
        errors: list[str | None] = [None] * len(rows)
        todo = [index for index, row in enumerate(rows) if row is None]
        self.hits += len(rows) - len(todo)
        if todo:
            if encoder is None:
                encoder = shared_encoder(self.encoder_name)
            size = encoder.spec.input_size
            bar = tqdm(total=len(todo), desc=f"features {self.directory.name}", unit="img",
                       disable=not progress)
            for start in range(0, len(todo), batch_size):
                batch_indices, images = [], []
                for index in todo[start:start + batch_size]:
                    try:
                        image = load_image(image_paths[index], size=size)
                    except ImageError as error:
                        errors[index] = str(error)
                        continue
                    images.append(apply_view(image, self.view))
                    batch_indices.append(index)
                if images:
                    if self.tap:
                        pooled, features = encoder.encode_tapped(np.stack(images), self.tap,
                                                                 batch_size=batch_size)
                        for index, row in zip(batch_indices, pooled):
                            if not self._pooled.path_for(digests[index]).is_file():
                                self._pooled.put(digests[index], row)
                    else:
                        features = encoder.encode(np.stack(images), batch_size=batch_size)
                    for index, feature in zip(batch_indices, features):
                        # as stored, so a cold and a warm cache give the same numbers
                        feature = np.asarray(feature, np.float16 if self.tap else np.float32)
                        self.put(digests[index], feature)
                        rows[index] = feature
                        self.computed += 1
                bar.update(len(todo[start:start + batch_size]))
            bar.close()
        shape = next((row.shape for row in rows if row is not None), (0,))
        matrix = np.zeros((len(rows), *shape), dtype)
        for index, row in enumerate(rows):
            if row is not None:
                matrix[index] = row
        return matrix, errors
