"""The model card is written from what the artifact records, the fusion calibration included."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from mlcore.artifact import DEFAULT_MODEL_DIR, MODEL_FILE
from mlcore.fusion import FUSION_FILE, load_fusion_config, save_fusion_config
from training.model_card import write_model_card


def copy_manifest(tmp_path: Path) -> Path:
    shutil.copy(DEFAULT_MODEL_DIR / MODEL_FILE, tmp_path / MODEL_FILE)
    return tmp_path


def test_card_reports_the_calibration_that_fusion_json_records(tmp_path: Path) -> None:
    model_dir = copy_manifest(tmp_path)
    shipped = load_fusion_config(DEFAULT_MODEL_DIR)
    report = {"fitted": {"hit_at_1": 0.8123, "hit_at_5": 0.9345},
              "imagenet_cross_fitted": {"hit_at_1": 0.8011, "hit_at_5": 0.9012},
              "dev": {"tag_precision_at_5": 0.4489, "tag_recall_at_5": 0.4601}}
    save_fusion_config(model_dir, dataclasses.replace(
        shipped, fitted_on={**shipped.fitted_on, "report": report}))
    card = write_model_card(model_dir, "## Notes\nsomething we tried\n").read_text(encoding="utf-8")
    assert "## Everyday photos" in card
    assert "| shipped fusion (fitted on these photos and Flickr8k's) | 0.812 | 0.934 | 0.449 | 0.460 |" in card
    assert "| cross-fitted (2 folds of the classes) | 0.801 | 0.901 | | |" in card
    assert f"over {len(shipped.weights)} features" in card
    assert card.index("## Everyday photos") < card.index("## Notes") < card.index("## Known limits")


def test_card_without_fusion_json_says_scores_are_uncalibrated(tmp_path: Path) -> None:
    model_dir = copy_manifest(tmp_path)
    assert not (model_dir / FUSION_FILE).exists()
    card = write_model_card(model_dir).read_text(encoding="utf-8")
    assert "no `fusion.json`" in card and "## Everyday photos" not in card
