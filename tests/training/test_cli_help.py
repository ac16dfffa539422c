"""``python -m training --help`` answers without starting TensorFlow (its defaults come from
``training.config``, not from the TensorFlow modules that use them)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import sys
from training.cli import main
try:
    main({argv!r})
except SystemExit as exit:
    print("exit", exit.code)
print("tensorflow loaded:", "tensorflow" in sys.modules, "keras loaded:", "keras" in sys.modules)
"""


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["tag-head", "--help"]])
def test_help_does_not_import_tensorflow(argv):
    done = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-2] == "exit 0"
    assert lines[-1] == "tensorflow loaded: False keras loaded: False"
    assert "usage: python -m training" in done.stdout


def test_the_options_defaults_are_the_configs():
    from training.cli import build_parser
    from training.config import TAG_HEAD_EPOCHS, TagHeadConfig, TrainConfig

    parser = build_parser()
    train = parser.parse_args(["train", "--data", "d", "--out", "o"])
    head = parser.parse_args(["tag-head", "--data", "d", "--model", "m"])
    assert train.tag_head_epochs == head.epochs == TAG_HEAD_EPOCHS
    assert TrainConfig(data="d").tag_head_epochs == TagHeadConfig("d", "m").epochs
    assert (train.learning_rate, train.epochs) == (TrainConfig(data="d").learning_rate,
                                                   TrainConfig(data="d").epochs)
    assert tuple(head.views.split(",")) == TagHeadConfig("d", "m").views
