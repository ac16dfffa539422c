"""The training pipeline end to end on a tiny generated dataset, with the real encoder."""

import csv
import json

import numpy as np
import pytest

from mlcore.artifact import read_info
from mlcore.captioner import Captioner
from mlcore.tag_head import dequantize_weights, quantize_weights
from training.cli import main
from training.feature_cache import FeatureCache
from training.flickr8k import Flickr8k
from training.train import TrainConfig, train


def test_loader_counts_missing_images_and_malformed_lines(tiny_dataset):
    dataset = Flickr8k.load(tiny_dataset)
    assert dataset.malformed_lines and dataset.malformed_lines[0][1] == "this line is malformed"
    assert dataset.malformed_lines[0][0] == len(dataset.captions) * 5 + 1 - 4  # its line number
    split = dataset.split("train")
    assert len(split) == 9 and split.missing_images == ["missing_0.jpg"]
    assert all(len(example.captions) == 5 for example in split.examples)


def test_feature_cache_is_filled_once_and_reused(tiny_dataset, tmp_path):
    paths = [e.image_path for e in Flickr8k.load(tiny_dataset).split("train").examples]
    first = FeatureCache("efficientnet_lite0", tmp_path)
    features, errors = first.features_for(paths, progress=False)
    assert features.shape == (9, 1280) and errors == [None] * 9
    assert (first.computed, first.hits) == (9, 0)
    second = FeatureCache("efficientnet_lite0", tmp_path)
    again, _ = second.features_for(paths, progress=False)
    assert (second.computed, second.hits) == (0, 9)
    np.testing.assert_array_equal(features, again)


def _losses(out_dir):
    with open(out_dir.with_name(out_dir.name + ".checkpoints") / "history.csv") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_training_lowers_the_loss_and_writes_a_usable_artifact(tiny_dataset, tmp_path, optimizer):
    out = train(TrainConfig(data=str(tiny_dataset), out=str(tmp_path / "model"), epochs=4,
                            optimizer=optimizer, batch_size=8, embedding_dim=16, units=32,
                            min_count=1, learning_rate=0.01, patience=10, tag_min_images=2,
                            tag_head_epochs=20, tag_head_units=16,
                            cache_dir=str(tmp_path / "cache"), flip_augment=optimizer == "adam"))
    losses = _losses(out)
    assert len(losses) == 4 and losses[-1] < losses[0]
    info = read_info(out)
    assert info.training["settings"]["optimizer"] == optimizer
    assert set(info.training["dev_metrics"]["beam3"]) >= {"bleu1", "bleu4", "tag_precision_at_5"}
    captioner = Captioner.load(out)
    image = next((tiny_dataset / "Flicker8k_Dataset").glob("dog_*.jpg"))
    suggestion, = captioner.suggest([image])
    assert suggestion.caption and suggestion.model_version == info.version
    assert all(tag.tag.startswith("#") for tag in suggestion.hashtags)
    # the tag head learned the scenes' words and ranks a dog-on-the-beach word first for a
    # dog photo, not a word of the ball or car scenes
    assert captioner.tag_head is not None and "dog" in captioner.tag_head.tags
    assert suggestion.hashtags[0].tag in {"#dog", "#beach", "#black", "#run", "#running", "#sand"}


class _Interrupt(Exception):
    pass


def test_resume_continues_an_interrupted_run(tiny_dataset, tmp_path):
    import keras

    class InterruptAfterTwoEpochs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise _Interrupt()

    base = dict(data=str(tiny_dataset), out=str(tmp_path / "model"), batch_size=8, epochs=4,
                embedding_dim=16, units=32, min_count=1, patience=10,
                cache_dir=str(tmp_path / "cache"), evaluate_dev=False)
    with pytest.raises(_Interrupt):
        train(TrainConfig(callbacks=[InterruptAfterTwoEpochs()], **base))
    assert (tmp_path / "model.checkpoints" / "backup").exists()
    assert not (tmp_path / "model").exists()  # no half-finished artifact
    train(TrainConfig(resume=True, **base))
    # epochs 1-2 from the interrupted run, 3-4 from the resumed one: none run twice
    assert [int(row) for row in _epochs(tmp_path / "model")] == [0, 1, 2, 3]
    assert not (tmp_path / "model.checkpoints" / "backup").exists()


def _epochs(out_dir):
    with open(out_dir.with_name(out_dir.name + ".checkpoints") / "history.csv") as handle:
        return [row["epoch"] for row in csv.DictReader(handle)]


def test_evaluate_cli_prints_one_json_object(tiny_dataset, tmp_path, capsys):
    out = train(TrainConfig(data=str(tiny_dataset), out=str(tmp_path / "model"), epochs=2,
                            batch_size=8, embedding_dim=16, units=32, min_count=1,
                            cache_dir=str(tmp_path / "cache"), evaluate_dev=False))
    capsys.readouterr()
    assert main(["evaluate", "--data", str(tiny_dataset), "--split", "dev", "--model", str(out),
                 "--beam", "2", "--cache-dir", str(tmp_path / "cache"), "--human"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["images"] == 3 and result["beam"] == 2
    assert 0.0 <= result["bleu4"] <= result["bleu1"] <= 1.0 and result["cider"] >= 0.0
    assert result["model_version"] == read_info(out).version
    # the human captions of these images agree perfectly on their main words
    assert result["human_tag_recall_at_5"] > 0.5
    assert result["human_cider"] > 0.0 and 0.0 < result["human_bleu1"] <= 1.0
    assert main(["evaluate", "--data", str(tiny_dataset), "--split", "test", "--model",
                 str(out), "--cache-dir", str(tmp_path / "cache")]) == 1
    assert "test split" in capsys.readouterr().err


def test_resnet50_path_trains_with_a_local_weights_file(tiny_dataset, tmp_path, monkeypatch):
    """The paper's configuration, with weights from a file the test writes itself."""
    import keras

    weights = tmp_path / "resnet50.weights.h5"
    keras.applications.ResNet50(include_top=False, pooling="avg", weights=None).save_weights(
        str(weights))
    monkeypatch.setenv("MLCORE_RESNET50_WEIGHTS", str(weights))
    out = train(TrainConfig(data=str(tiny_dataset), encoder="resnet50", out=str(tmp_path / "m"),
                            epochs=2, batch_size=8, embedding_dim=16, units=32, min_count=1,
                            cache_dir=str(tmp_path / "cache"), evaluate_dev=False))
    assert read_info(out).encoder == {"name": "resnet50", "input_size": 224, "feature_dim": 2048,
                                      "preprocessing": read_info(out).encoder["preprocessing"]}
    suggestion, = Captioner.load(out).suggest([tiny_dataset / "Flicker8k_Dataset" / "red_0.jpg"])
    assert suggestion.model_version == read_info(out).version


def test_tag_head_fine_tunes_the_encoders_last_block(tiny_dataset, tmp_path, capsys):
    cache = str(tmp_path / "cache")
    out = train(TrainConfig(data=str(tiny_dataset), out=str(tmp_path / "model"), epochs=2,
                            batch_size=8, embedding_dim=16, units=32, min_count=1,
                            cache_dir=cache, tag_head_epochs=0, evaluate_dev=False))
    assert not (out / "tag_head.json").exists()
    assert main(["tag-head", "--data", str(tiny_dataset), "--model", str(out), "--epochs", "20",
                 "--units", "16", "--min-images", "2", "--finetune-tap", "block14_add",
                 "--finetune-epochs", "3", "--finetune-learning-rate", "1e-3",
                 "--train-views", "plain,flipped,crop0", "--views", "plain,corner1",
                 "--cache-dir", cache]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= metrics["beam3"]["tag_precision_at_5"] <= 1.0
    head_config = json.loads((out / "tag_head.json").read_text())
    assert (head_config["encoder"], head_config["tap"]) == ("efficientnet_lite0", "block14_add")
    maps = FeatureCache("efficientnet_lite0", cache, tap="block14_add")
    assert len(list(maps.directory.rglob("*.npy"))) == 9 + 3  # train + dev images, once each
    # a training view: maps of the 9 train images, and the pooled features of the same pass
    for cache_of_view in (FeatureCache("efficientnet_lite0", cache, "crop0", tap="block14_add"),
                          FeatureCache("efficientnet_lite0", cache, "crop0")):
        assert len(list(cache_of_view.directory.rglob("*.npy"))) == 9
    # a test-time view: the 3 dev images only
    corner = FeatureCache("efficientnet_lite0", cache, "corner1", tap="block14_add")
    assert len(list(corner.directory.rglob("*.npy"))) == 3
    assert head_config["views"] == ["plain", "corner1"]
    recipe = read_info(out).training["tag_head"]
    assert (recipe["finetune_tap"], recipe["train_views"]) == ("block14_add",
                                                               ["plain", "flipped", "crop0"])

    captioner = Captioner.load(out)
    head = captioner.tag_head
    assert (head.tap, head.views) == ("block14_add", ("plain", "corner1"))
    # the head's copy of the last block was trained; the captioner's own encoder was not
    tuned = head.model.get_layer("efficientnet_lite0_after_block14_add")
    original = captioner.encoder.model.get_layer("block15_project_conv").get_weights()[0]
    copy = tuned.get_layer("block15_project_conv").get_weights()[0]
    stored = dequantize_weights(*quantize_weights(original))  # the artifact keeps int8 kernels
    moved = copy != stored  # exactly equal if untrained: the rounding is deterministic
    assert copy.shape == original.shape and moved.mean() > 0.25, moved.mean()  # 0 untrained
    image = next((tiny_dataset / "Flicker8k_Dataset").glob("dog_*.jpg"))
    suggestion, = captioner.suggest([image])
    assert suggestion.hashtags[0].tag in {"#dog", "#beach", "#black", "#run", "#running", "#sand"}
    # evaluate reads the cached maps of the dev images for this head
    assert main(["evaluate", "--data", str(tiny_dataset), "--split", "dev", "--model", str(out),
                 "--beam", "2", "--cache-dir", cache]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["tag_recall_at_5"] > 0 and result["tag_views"] == ["plain", "corner1"]
    assert main(["evaluate", "--data", str(tiny_dataset), "--split", "dev", "--model", str(out),
                 "--beam", "2", "--cache-dir", cache, "--tag-views", "plain"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["tag_views"] == ["plain"]
    assert main(["evaluate", "--data", str(tiny_dataset), "--split", "dev", "--model", str(out),
                 "--cache-dir", cache, "--tag-views", "corner1"]) == 2
    assert "first view must be 'plain'" in capsys.readouterr().err

    # an extra head on another backbone (the shipped model's Lite2 head), averaged with the first
    common = ["--data", str(tiny_dataset), "--model", str(out), "--epochs", "20", "--units", "16",
              "--min-images", "2", "--train-views", "plain", "--views", "plain",
              "--cache-dir", cache]
    assert main(["tag-head", *common, "--encoder", "efficientnet_lite2"]) == 2
    assert "needs --finetune-tap" in capsys.readouterr().err
    assert main(["tag-head", *common, "--encoder", "efficientnet_lite2",
                 "--finetune-tap", "block19_add", "--finetune-epochs", "1"]) == 0
    capsys.readouterr()
    extra_config = json.loads((out / "tag_head_efficientnet_lite2" / "tag_head.json").read_text())
    assert (extra_config["encoder"], extra_config["tap"]) == ("efficientnet_lite2", "block19_add")
    recipes = read_info(out).training
    assert recipes["tag_head"]["finetune_tap"] == "block14_add"  # the first head's recipe stays
    assert recipes["tag_head_efficientnet_lite2"]["finetune_tap"] == "block19_add"
    lite2 = FeatureCache("efficientnet_lite2", cache, tap="block19_add")
    assert len(list(lite2.directory.rglob("*.npy"))) == 9 + 3
    captioner = Captioner.load(out)
    assert [head.encoder for head, _ in captioner.extra_heads] == ["efficientnet_lite2"]
    assert captioner.suggest([image])[0].hashtags
    assert main(["evaluate", "--data", str(tiny_dataset), "--split", "dev", "--model", str(out),
                 "--beam", "2", "--cache-dir", cache]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["tag_head_encoders"] == ["efficientnet_lite0", "efficientnet_lite2"]
    assert main(["evaluate", "--data", str(tiny_dataset), "--split", "dev", "--model", str(out),
                 "--beam", "2", "--cache-dir", cache, "--no-extra-heads"]) == 0
    single = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert single["tag_head_encoders"] == ["efficientnet_lite0"]
