import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key
from django.test import override_settings

from hashtags.conf import DEFAULTS, hashtags_settings


def test_defaults_apply_where_the_project_is_silent(settings):
    settings.HASHTAGS = {"WATCH": ["testapp.Post.image"]}
    assert hashtags_settings.BEAM_WIDTH == DEFAULTS["BEAM_WIDTH"] is None
    assert hashtags_settings.QUEUE == "gpu"
    assert hashtags_settings.AUTO_ACCEPT_SCORE is None
    assert hashtags_settings.watched() == [("testapp", "Post", "image")]


def test_override_settings_is_honoured():
    with override_settings(HASHTAGS={"MAX_TAGS": 4, "QUEUE": "cpu"}):
        assert hashtags_settings.MAX_TAGS == 4
        assert hashtags_settings.QUEUE == "cpu"
    assert hashtags_settings.QUEUE == "gpu"


def test_unknown_keys_fail_loudly():
    with override_settings(HASHTAGS={"MAX_TAG": 4}):
        with pytest.raises(ImproperlyConfigured, match="MAX_TAG"):
            _ = hashtags_settings.MAX_TAGS


def test_import_strings_are_resolved():
    from rest_framework.permissions import IsAuthenticated

    with override_settings(HASHTAGS={"READ_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"]}):
        assert hashtags_settings.READ_PERMISSION_CLASSES == [IsAuthenticated]


def test_bad_watch_entry_is_a_system_check_error():
    from hashtags.checks import check_settings

    with override_settings(HASHTAGS={"WATCH": ["testapp.Post"]}):
        assert [e.id for e in check_settings()] == ["hashtags.E001"]
    with override_settings(HASHTAGS={"WATCH": ["testapp.Post.text"]}):
        assert [e.id for e in check_settings()] == ["hashtags.E001"]
    assert check_settings() == []


def test_bad_decoder_precision_is_a_system_check_error():
    from hashtags.checks import check_settings

    with override_settings(HASHTAGS={"DECODER_PRECISION": "float16"}):
        assert [e.id for e in check_settings()] == ["hashtags.E004"]
    with override_settings(HASHTAGS={"DECODER_PRECISION": "bfloat16"}):
        assert check_settings() == []


def test_bad_decoder_precision_in_the_environment_is_a_system_check_error(monkeypatch):
    from hashtags.checks import check_settings

    monkeypatch.setenv("MLCORE_DECODER_PRECISION", "half")
    errors = check_settings()
    assert [e.id for e in errors] == ["hashtags.E004"] and "MLCORE_DECODER_PRECISION" in errors[0].msg
    with override_settings(HASHTAGS={"DECODER_PRECISION": "float32"}):
        assert check_settings() == []  # an explicit setting wins over the environment


def test_bad_tag_views_are_a_system_check_error():
    from hashtags.checks import check_settings

    for views in (["plain", "zoom"], ["flipped"], "plain", [], ["plain", "plain"]):
        with override_settings(HASHTAGS={"TAG_VIEWS": views}):
            errors = check_settings()
            assert [e.id for e in errors] == ["hashtags.E005"], views
            assert "TAG_VIEWS" in errors[0].msg
    with override_settings(HASHTAGS={"TAG_VIEWS": ["plain", "flipped"]}):
        assert check_settings() == []


@pytest.mark.parametrize("name, error_id", [("EXTRA_TAG_HEADS", "hashtags.E006"),
                                            ("CLASSIFIER_TAGS", "hashtags.E008")])
def test_model_switches_must_be_bools(name, error_id):
    from hashtags.checks import check_settings

    with override_settings(HASHTAGS={name: "no"}):
        assert [e.id for e in check_settings()] == [error_id]
    with override_settings(HASHTAGS={name: False}):
        assert check_settings() == []


def test_min_caption_confidence_defaults_to_mlcores_and_must_be_a_fraction():
    from mlcore.thresholds import LOW_CAPTION_CONFIDENCE

    from hashtags.checks import check_settings

    assert hashtags_settings.MIN_CAPTION_CONFIDENCE == LOW_CAPTION_CONFIDENCE
    for bad in (1.5, -0.1, "0.5", None, True, float("nan")):
        with override_settings(HASHTAGS={"MIN_CAPTION_CONFIDENCE": bad}):
            errors = check_settings()
            assert [e.id for e in errors] == ["hashtags.E007"], bad
            assert "MIN_CAPTION_CONFIDENCE" in errors[0].msg
    for good in (0, 0.35, 1):
        with override_settings(HASHTAGS={"MIN_CAPTION_CONFIDENCE": good}):
            assert check_settings() == [], good


def test_django_setup_does_not_start_tensorflow():
    """Web processes, manage.py commands and the admin read the settings' defaults at
    ``django.setup()``; only a worker that runs the model should pay for TensorFlow."""
    code = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'tests.settings'; django.setup(); "
            "import sys; print('tensorflow' in sys.modules)")
    env = {**os.environ, "DJANGO_SECRET_KEY": get_random_secret_key(), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
