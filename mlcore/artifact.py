"""A model artifact: one directory that holds everything needed to caption an image.

This module owns the model on disk: it is the one place that documents the format, writes a new
artifact (:func:`save_artifact`) or changes one (:func:`revise`, :func:`set_version`), and each
write is atomic. ``docs/CONTRACTS.md`` points here.

Format (every file; names relative to the artifact directory)::

    model.json             the manifest: "format" (mlcore.captioner/1, or /2 for a decoder
                           with attention, whose "decoder" adds "attention_units" and
                           "attention_layer"; both load), "version", "created",
                           "encoder" {name, input_size, feature_dim, preprocessing},
                           "decoder" (mlcore.decoder.DecoderConfig), "decoding" {beam_width,
                           length_penalty}, "training" (how it was made: data, settings,
                           dev_metrics, one recipe per tag head under "tag_head" and
                           "tag_head_<encoder>"), "weights" {file, sha256, dtype} of the decoder,
                           and "derived_from": the earlier versions of a revised artifact
    vocabulary.json        the words, special tokens first (mlcore.vocabulary)
    decoder_weights.npz    decoder weights by variable path, "/" spelled "__" (float16 by
                           default: half the size, and captions are unchanged in practice)
    tag_head.json          optional tag head on the captioner's encoder (mlcore.tag_head):
                           "format" (mlcore.tag_head/1-3), "tags", "hidden_units", "dropout",
                           "feature_dim", "encoder", "tap", "views", "metrics"
    tag_head_weights.npz   its weights by variable path; format 3 stores kernels as int8 with a
                           float32 "<key>__int8_scale" per output column, the rest as float16
    tag_head_<encoder>/    optional extra heads on other encoders, each with its own
                           tag_head.json and tag_head_weights.npz; they rank the same tags
    fusion.json            optional fitted fusion of captions, heads and classifier
                           (mlcore.fusion): "format", "features", "weights", "familiar_tags",
                           "fitted_on"
    MODEL_CARD.md          optional, written from model.json by ``python -m training card``

Versions: a version names one set of weights. A new artifact gets ``version`` or one derived
from the decoder's weights; a change to an existing one (a retrained tag head, a fitted
``fusion.json``) goes through :func:`revise` or :func:`set_version`, which require a new version
and record the old one in ``derived_from``, so statistics kept per version never mix two models.

Loading validates everything up front, so a corrupt, partial or mismatched artifact fails with
an :class:`ArtifactError` that names the file and the problem instead of a Keras stack trace.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from mlcore.errors import ArtifactError  # defined apart for tag_head; the name callers import
from mlcore.tag_head import HEAD_FILE, HEAD_WEIGHTS_FILE, MEMBER_PREFIX, member_dir, save_tag_head
from mlcore.vocabulary import Vocabulary

FORMAT = "mlcore.captioner/1"
#: An attention decoder's artifact: a reader older than attention refuses it by name instead
#: of building the wrong network.
ATTENTION_FORMAT = "mlcore.captioner/2"
MODEL_FILE = "model.json"
VOCABULARY_FILE = "vocabulary.json"
WEIGHTS_FILE = "decoder_weights.npz"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "default"
#: What :func:`tag_head_version` appends: "-th" and the first hex digits of the heads' digest.
_TAG_HEAD_SUFFIX = re.compile(r"-th[0-9a-f]{8}$")


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
    try:
        os.chmod(staging, 0o755)  # mkdtemp makes it private; model files are world-readable
        arrays = {_variable_key(v.path): np.asarray(v.numpy()).astype(weights_dtype)
                  for v in decoder.model.weights}
        np.savez(staging / WEIGHTS_FILE, **arrays)
        vocabulary.save(staging / VOCABULARY_FILE)
        if tag_head is not None:
            save_tag_head(staging, tag_head)
        digest = hashlib.sha256((staging / WEIGHTS_FILE).read_bytes()).hexdigest()
        version = (version or
                   f"{encoder['name']}-{datetime.now(timezone.utc):%Y%m%d%H%M%S}-{digest[:8]}")
        manifest = {
            "format": ATTENTION_FORMAT if decoder.config.attends else FORMAT,
            "version": version,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "encoder": encoder,
            "decoder": decoder.config.to_json(),
            "decoding": decoding or {"beam_width": 3, "length_penalty": 0.7},
            "training": training or {},
            "weights": {"file": WEIGHTS_FILE, "sha256": digest, "dtype": weights_dtype},
        }
        (staging / MODEL_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        _refuse_same_version_other_weights(out_dir, staging, version)
        _swap_in(staging, out_dir)
    except BaseException:
        if staging.exists():
            _remove_tree(staging)
        raise
    return out_dir


def _refuse_same_version_other_weights(out_dir: Path, staging: Path, version: str) -> None:
    """Overwriting an artifact keeps its version only when the weights are the same ones."""
    try:
        old_version = read_info(out_dir).version
    except ArtifactError:
        return  # nothing there, or not an artifact: no version to mix up
    if old_version == version and _weights_digest(out_dir) != _weights_digest(staging):
        raise ArtifactError(f"{out_dir} already holds version {version!r} with other weights; "
                            "give the new model a new version")


def _weights_digest(model_dir: Path) -> str:
    """One digest of the decoder's and every tag head's files."""
    digest = hashlib.sha256()
    for path in [model_dir / WEIGHTS_FILE, *_tag_head_files(model_dir)]:
        digest.update(path.relative_to(model_dir).as_posix().encode())
        digest.update(path.read_bytes() if path.is_file() else b"")
    return digest.hexdigest()


def _tag_head_files(model_dir: Path) -> list[Path]:
    directories = [model_dir, *sorted(d for d in model_dir.glob(f"{MEMBER_PREFIX}*") if d.is_dir())]
    return [directory / name for directory in directories
            for name in (HEAD_FILE, HEAD_WEIGHTS_FILE) if (directory / name).is_file()]


def _swap_in(staging: Path, out_dir: Path) -> None:
    """Put the finished ``staging`` directory where ``out_dir`` is, by renames only."""
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    backup = out_dir.with_name(f".{out_dir.name}.old")
    if backup.exists():
        _remove_tree(backup)
    os.replace(out_dir, backup)
    os.replace(staging, out_dir)
    _remove_tree(backup)


@dataclass
class Revision:
    """A full copy of an artifact, beside it, that a job changes; :func:`revise` puts it in place.

    ``version`` must be set to a new version before the ``with`` block ends; ``manifest`` is the
    copy's ``model.json`` (change ``manifest["training"]`` to record how the change was made).
    """

    directory: Path
    manifest: dict
    version: str | None = None

    def write_tag_head(self, head, metrics: dict | None = None, extra: bool = False) -> Path:
        """Write ``head`` (:class:`mlcore.tag_head.TagHead`) as the artifact's head, or with
        ``extra`` as its extra head on ``head.encoder`` (``tag_head_<encoder>/``)."""
        if extra and not head.encoder:
            raise ValueError("an extra tag head needs its encoder's name")
        target = member_dir(self.directory, head.encoder) if extra else self.directory
        target.mkdir(exist_ok=True)
        save_tag_head(target, head, metrics)
        return target


@contextmanager
def revise(model_dir: str | Path, version: str | None = None) -> Iterator[Revision]:
    """Change an artifact atomically under a new version.

    The block works on a copy beside ``model_dir``; when it ends without an error the copy gets
    the revision's version (the old one goes to ``derived_from``) and replaces the artifact by
    renames. An error inside the block, or a version that is missing or unchanged, leaves the
    artifact exactly as it was and removes the copy.
    """
    model_dir = Path(model_dir)
    read_info(model_dir)  # a valid artifact, or ArtifactError
    staging = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}.", dir=model_dir.parent))
    try:
        shutil.copytree(model_dir, staging, dirs_exist_ok=True)
        manifest = json.loads((staging / MODEL_FILE).read_text(encoding="utf-8"))
        revision = Revision(staging, manifest, version)
        yield revision
        if not revision.version or revision.version == manifest["version"]:
            raise ArtifactError(f"{model_dir}: a changed artifact needs a new version "
                                f"(it is {manifest['version']!r})")
        _bump_version(manifest, revision.version)
        write_json_atomically(staging / MODEL_FILE, manifest)
        _swap_in(staging, model_dir)
    except BaseException:
        if staging.exists():
            _remove_tree(staging)
        raise


def tag_head_version(version: str, model_dir: str | Path) -> str:
    """The version of an artifact whose tag heads changed: ``version`` (less a suffix this added
    before) plus ``-th`` and a digest of every head's files. The same heads give the same name,
    other heads another one; the decoder's version stays readable in front."""
    digest = hashlib.sha256()
    model_dir = Path(model_dir)
    for path in _tag_head_files(model_dir):
        digest.update(path.relative_to(model_dir).as_posix().encode())
        digest.update(path.read_bytes())
    return f"{_TAG_HEAD_SUFFIX.sub('', version)}-th{digest.hexdigest()[:8]}"


def set_version(model_dir: str | Path, version: str) -> None:
    """Give an artifact a new version after one of its files changed in place (``fusion.json``),
    so per-version statistics never mix two behaviours under one name. The previous version is
    kept in ``model.json``'s ``derived_from``; written atomically."""
    manifest_path = Path(model_dir) / MODEL_FILE
    read_info(model_dir)  # a valid artifact, or ArtifactError
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    _bump_version(manifest, version)
    write_json_atomically(manifest_path, manifest)


def _bump_version(manifest: dict, version: str) -> None:
    if manifest["version"] != version:
        manifest.setdefault("derived_from", []).append(manifest["version"])
        manifest["version"] = version


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
    if not isinstance(manifest, dict) or manifest.get("format") not in (FORMAT, ATTENTION_FORMAT):
        raise ArtifactError(f"{manifest_path} has format {manifest.get('format')!r} "
                            f"(expected {FORMAT!r} or {ATTENTION_FORMAT!r})"
                            if isinstance(manifest, dict)
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
    except (TypeError, ValueError) as error:
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
