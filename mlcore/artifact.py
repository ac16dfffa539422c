"""A model artifact: one directory that holds everything needed to caption an image.

Layout::

    model.json             format, version, encoder, decoder config, decoding defaults, training
    vocabulary.json        the words, special tokens first
    decoder_weights.npz    decoder weights by variable path (float16 by default: half the size,
                           and captions are unchanged in practice)
    tag_head.json, tag_head_weights.npz, tag_head_<encoder>/
                           optional tag heads (:mod:`mlcore.tag_head`)
    fusion.json            optional fitted fusion of captions, heads and classifier
                           (:mod:`mlcore.fusion`)

Loading validates everything up front, so a corrupt, partial or mismatched artifact fails with
an :class:`ArtifactError` that names the file and the problem instead of a Keras stack trace.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from mlcore.errors import ArtifactError  # defined apart for tag_head; the name callers import
from mlcore.tag_head import save_tag_head
from mlcore.vocabulary import Vocabulary

FORMAT = "mlcore.captioner/1"
MODEL_FILE = "model.json"
VOCABULARY_FILE = "vocabulary.json"
WEIGHTS_FILE = "decoder_weights.npz"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "default"


@dataclass
class ArtifactInfo:
    """What ``model.json`` says, parsed and checked."""

    version: str
    encoder: dict
    decoder: dict
    decoding: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    weights_sha256: str = ""


def _variable_key(path: str) -> str:
    return path.replace("/", "__")


def save_artifact(out_dir: str | Path, *, decoder, vocabulary: Vocabulary, encoder: dict,
                  version: str | None = None, decoding: dict | None = None,
                  training: dict | None = None, weights_dtype: str = "float16",
                  tag_head=None) -> Path:
    """Write the artifact atomically: a half-written directory never looks like a model."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    arrays = {_variable_key(v.path): np.asarray(v.numpy()).astype(weights_dtype)
              for v in decoder.model.weights}
    np.savez(staging / WEIGHTS_FILE, **arrays)
    vocabulary.save(staging / VOCABULARY_FILE)
    if tag_head is not None:
        save_tag_head(staging, tag_head)
    digest = hashlib.sha256((staging / WEIGHTS_FILE).read_bytes()).hexdigest()
    version = version or f"{encoder['name']}-{datetime.now(timezone.utc):%Y%m%d%H%M%S}-{digest[:8]}"
    manifest = {
        "format": FORMAT,
        "version": version,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "encoder": encoder,
        "decoder": decoder.config.to_json(),
        "decoding": decoding or {"beam_width": 3, "length_penalty": 0.7},
        "training": training or {},
        "weights": {"file": WEIGHTS_FILE, "sha256": digest, "dtype": weights_dtype},
    }
    (staging / MODEL_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    if out_dir.exists():
        backup = out_dir.with_name(f".{out_dir.name}.old")
        if backup.exists():
            _remove_tree(backup)
        os.replace(out_dir, backup)
        os.replace(staging, out_dir)
        _remove_tree(backup)
    else:
        os.replace(staging, out_dir)
    return out_dir


def set_version(model_dir: str | Path, version: str) -> None:
    """Give an artifact a new version after one of its files changed in place (``fusion.json``,
    a tag head), so per-version statistics never mix two behaviours under one name. The
    previous version is kept in ``model.json``'s ``derived_from``; written atomically."""
    manifest_path = Path(model_dir) / MODEL_FILE
    read_info(model_dir)  # a valid artifact, or ArtifactError
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest["version"] != version:
        manifest.setdefault("derived_from", []).append(manifest["version"])
        manifest["version"] = version
    write_json_atomically(manifest_path, manifest)


def write_json_atomically(path: str | Path, data: dict) -> None:
    """Write a JSON file of an artifact so that readers see the old or the new file, never half."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; model files are world-readable
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _remove_tree(path: Path) -> None:
    for child in path.iterdir():
        _remove_tree(child) if child.is_dir() else child.unlink()
    path.rmdir()


def read_info(model_dir: str | Path) -> ArtifactInfo:
    """Parse and check ``model.json`` (cheap: no TensorFlow)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ArtifactError(f"model directory not found: {model_dir}")
    manifest_path = model_dir / MODEL_FILE
    if not manifest_path.is_file():
        raise ArtifactError(f"{model_dir} is not a model artifact: {MODEL_FILE} is missing")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{manifest_path} is not valid JSON: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{manifest_path} has format {manifest.get('format')!r} "
                            f"(expected {FORMAT!r})" if isinstance(manifest, dict)
                            else f"{manifest_path} is not a model manifest")
    missing = [key for key in ("version", "encoder", "decoder", "weights") if key not in manifest]
    if missing:
        raise ArtifactError(f"{manifest_path} lacks {', '.join(missing)}")
    return ArtifactInfo(version=str(manifest["version"]), encoder=manifest["encoder"],
                        decoder=manifest["decoder"], decoding=manifest.get("decoding", {}),
                        training=manifest.get("training", {}),
                        weights_sha256=manifest["weights"].get("sha256", ""))


def load_artifact(model_dir: str | Path):
    """Rebuild the decoder from an artifact; returns ``(info, decoder, vocabulary)``."""
    from mlcore.decoder import DecoderConfig, build_decoder  # lazy: Keras/TensorFlow start-up

    model_dir = Path(model_dir)
    info = read_info(model_dir)
    vocabulary_path = model_dir / VOCABULARY_FILE
    try:
        vocabulary = Vocabulary.load(vocabulary_path)
    except FileNotFoundError:
        raise ArtifactError(f"{model_dir} is incomplete: {VOCABULARY_FILE} is missing") from None
    except (ValueError, KeyError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{vocabulary_path} is not a valid vocabulary: {error}") from None

    try:
        config = DecoderConfig.from_json(info.decoder)
    except TypeError as error:
        raise ArtifactError(f"{model_dir / MODEL_FILE}: bad decoder settings: {error}") from None
    if config.vocabulary_size != len(vocabulary):
        raise ArtifactError(f"{model_dir}: the vocabulary has {len(vocabulary)} words but the "
                            f"decoder was built for {config.vocabulary_size}")
    feature_dim = info.encoder.get("feature_dim")
    if feature_dim is not None and int(feature_dim) != config.feature_dim:
        raise ArtifactError(f"{model_dir}: encoder {info.encoder.get('name')!r} gives "
                            f"{feature_dim}-d features but the decoder expects {config.feature_dim}")

    weights_path = model_dir / WEIGHTS_FILE
    if not weights_path.is_file():
        raise ArtifactError(f"{model_dir} is incomplete: {WEIGHTS_FILE} is missing")
    if info.weights_sha256:
        digest = hashlib.sha256(weights_path.read_bytes()).hexdigest()
        if digest != info.weights_sha256:
            raise ArtifactError(f"{weights_path} is corrupt or was replaced: its checksum does not "
                                f"match {MODEL_FILE}")
    try:
        with np.load(weights_path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise ArtifactError(f"{weights_path} cannot be read: {error}") from None

    decoder = build_decoder(config)
    expected = {_variable_key(v.path): v for v in decoder.model.weights}
    missing = sorted(set(expected) - set(arrays))
    unexpected = sorted(set(arrays) - set(expected))
    if missing or unexpected:
        raise ArtifactError(f"{weights_path} does not match the decoder in {MODEL_FILE}: "
                            f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    for key, variable in expected.items():
        if tuple(arrays[key].shape) != tuple(variable.shape):
            raise ArtifactError(f"{weights_path}: {key} has shape {arrays[key].shape}, the decoder "
                                f"expects {tuple(variable.shape)}")
        variable.assign(arrays[key].astype(variable.dtype))
    return info, decoder, vocabulary
