"""Write a model card (MODEL_CARD.md) from what an artifact's model.json records."""

from __future__ import annotations

from pathlib import Path

from mlcore.artifact import read_info
from mlcore.fusion import FusionConfig, load_fusion_config
from mlcore.tag_head import MEMBER_PREFIX

KNOWN_LIMITS = """\
- Captions and tag heads were trained on Flickr8k only: 6,000 photos of mostly people, dogs,
  children and outdoor sports in the USA. Indoor scenes, food, products, screenshots, art and text
  in images are described poorly or as the nearest Flickr8k scene ("a man in a red shirt ...");
  the encoder's ImageNet classes supply the tags for such photos, and a caption the classifier
  contradicts gets a low caption confidence (shown as "Possibly: ..."), but it is still shown.
- ImageNet's 1,000 classes name objects, animals and foods, not people, places, events, brands or
  emotions; its class list has known biases (many dog breeds, few foods, no regional dishes).
- Biases of the human captions carry over: gendered words ("man", "woman", "boy", "girl") are
  guessed from appearance, and some activities are more often attributed to one gender. Platforms
  may want to add such words to the blocklist (`HASHTAGS["BLOCKLIST"]`).
- Colour words are frequent and sometimes wrong.
- The encoder sees a 224x224 square resize of the upload; small objects get lost.
- Scores are a logistic model's probability that a person would use the tag, calibrated on the
  photos named under "Hashtags" (without `fusion.json`: the head's probability or the beam's
  share, not calibrated); on photos unlike both they are less reliable.
"""


def _metrics_table(dev_metrics: dict) -> str:
    lines = ["| decoding | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | CIDEr | tag P@5 | tag R@5 |",
             "|---|---|---|---|---|---|---|---|"]
    for name, scores in sorted(dev_metrics.items()):
        label = "greedy" if name == "beam1" else name.replace("beam", "beam ")
        lines.append(f"| {label} | " + " | ".join(  # CIDEr: "–" for models trained before it was measured
            f"{scores[key]:.3f}" if key in scores else "–"
            for key in ("bleu1", "bleu2", "bleu3", "bleu4", "cider",
                        "tag_precision_at_5", "tag_recall_at_5")) + " |")
    return "\n".join(lines)


def _tag_head_lines(training: dict) -> str:
    """The tag head, then each extra head (``tag_head_<encoder>`` recipes), one bullet each."""
    lines = _tag_head_line(training.get("tag_head"))
    for key in sorted(training):
        if key.startswith(MEMBER_PREFIX) and isinstance(training[key], dict):
            encoder = key[len(MEMBER_PREFIX):]
            lines += _tag_head_line(training[key], f"Extra tag head on `{encoder}`, averaged "
                                                   f"with the first")
    return lines


def _tag_head_line(head: dict | None, title: str = "Tag head") -> str:
    if not head:
        return "- No tag head: hashtags come from the captions alone.\n"
    line = (f"- {title}: {head.get('units')} hidden units → {head.get('tags')} tags (sigmoid), "
            f"{head.get('epochs')} epochs on the pooled features")
    if head.get("finetune_tap"):
        line += (f", then {head.get('finetune_epochs')} epochs fine-tuning its own copy of the "
                 f"encoder's layers after `{head['finetune_tap']}` (learning rate "
                 f"{head.get('finetune_learning_rate')}, batch norm frozen); the captioner's "
                 f"encoder stays frozen")
    if head.get("train_views"):
        line += (f"; trained on the image views {', '.join(head['train_views'])} and averaged "
                 f"over {', '.join(head.get('views', ['plain']))} at test time "
                 f"(`mlcore.views`; `HASHTAGS[\"TAG_VIEWS\"]` can change the latter)")
    return line + (". Its kernels are stored as int8 with one float32 scale per output column "
                   "(`mlcore.tag_head.quantize_weights`), the rest in float16.\n")


def _hashtag_lines(fusion: FusionConfig) -> str:
    """How the captions, the heads and the classifier become one ranked list (``fusion.json``)."""
    if fusion.weights is None:
        return ("- Hashtags: no `fusion.json`, so each tag's score is its tag-head probability "
                "(or classifier probability, or a share of the beam's), uncalibrated.\n")
    fitted = fusion.fitted_on
    images = ", ".join(f"{count} {name}" for name, count in fitted.get("images", {}).items())
    return (f"- Hashtags: the beam's caption words, the tag heads' tags and the encoder's ImageNet "
            f"classes (through `mlcore/data/imagenet_tags.json`) are ranked by one logistic model "
            f"over {len(fusion.weights)} features (`mlcore.fusion.FEATURES`), fitted by "
            f"`python -m training calibrate` on {images} photos ({fitted.get('candidates')} "
            f"candidate tags, Flickr8k share {fitted.get('flickr8k_share')}; labels: "
            f"{fitted.get('label')}).\n")


def _everyday_photos(fusion: FusionConfig) -> str:
    """The calibration report: ImageNet-style photos' hit@k and the dev split's tag P/R@5."""
    report = fusion.fitted_on.get("report")
    if not report:
        return ""
    fitted, dev = report.get("fitted", {}), report.get("dev", {})
    crossed = report.get("imagenet_cross_fitted", {})
    lines = ["## Everyday photos",
             "A tag hits an ImageNet-style photo when it is the class's name or a specific word above "
             "it in WordNet (`tabby` → `#tabby`, `#cat`); hit@k: some tag among the first k hits. "
             "Reproduce with `python -m training evaluate-ood --images ../shared/imagenet_samples` "
             "(one photo per class for 500 classes) and `python -m training calibrate ... --folds 2`. "
             "The dev tags here are the fused list's, verb forms merged; the table above measures "
             "the captions and heads as trained.",
             "",
             "| measure | hit@1 | hit@5 | dev tag P@5 | dev tag R@5 |",
             "|---|---|---|---|---|"]

    def cell(scores: dict, key: str) -> str:
        return f"{scores[key]:.3f}" if key in scores else ""

    lines.append(f"| shipped fusion (fitted on these photos and Flickr8k's) | {cell(fitted, 'hit_at_1')} | {cell(fitted, 'hit_at_5')} "
                 f"| {cell(dev, 'tag_precision_at_5')} | {cell(dev, 'tag_recall_at_5')} |")
    if crossed:
        lines.append(f"| cross-fitted (2 folds of the classes) | {cell(crossed, 'hit_at_1')} | "
                     f"{cell(crossed, 'hit_at_5')} | | |")
    return "\n".join(lines) + "\n\n"


def write_model_card(model_dir: str | Path, notes: str = "") -> Path:
    info = read_info(model_dir)
    fusion = load_fusion_config(model_dir)
    training = info.training
    settings = training.get("settings", {})
    data = training.get("data", {})
    minutes = training.get("train_seconds", 0) / 60
    card = f"""# Model card: `{info.version}`

CNN-LSTM image captioner whose captions, tag heads and ImageNet classes become hashtag\nsuggestions (`mlcore`).

## Model
- Encoder: `{info.encoder.get('name')}` (ImageNet-pretrained, frozen), {info.encoder.get('feature_dim')}-d
  pooled features of a {info.encoder.get('input_size')}x{info.encoder.get('input_size')} input.
- Decoder: LSTM {info.decoder.get('units')} units, word embedding {info.decoder.get('embedding_dim')},
  vocabulary {info.decoder.get('vocabulary_size')} words, image feature → initial LSTM state
  (init-inject), at most {info.decoder.get('max_length')} tokens.
- Decoding defaults: beam width {info.decoding.get('beam_width')}, length penalty
  {info.decoding.get('length_penalty')}.
{_tag_head_lines(training)}{_hashtag_lines(fusion)}
## Data
Flickr8k (Hodosh, Young and Hockenmaier, 2013): {data.get('train_images')} training images with
{data.get('train_captions')} captions, early stopping on the {data.get('dev_images')} dev images;
{data.get('extra_images', 0)} extra (feedback) images. Photos were 224x224 resized JPEGs.

## Training
{', '.join(f'{key}={value}' for key, value in sorted(settings.items()) if key != 'extra_data')}.
{training.get('epochs_run')} epochs, best dev loss {training.get('best_val_loss', float('nan')):.4f};
{minutes:.0f} minutes on a 2-core CPU (features cached beforehand), TensorFlow
{training.get('tensorflow')}, Keras {training.get('keras')}.

## Dev-split quality
Corpus BLEU against all five references (nltk, smoothing method 1, tokens from
`mlcore.text.clean_caption`) and CIDEr-D (`pycocoevalcap`, the COCO caption evaluation's scorer,
on the same tokens; one human caption scores 0.839 against the other four); hashtag
precision/recall@5 against the tags that at least 2 of the 5 human captions give. Reproduce with
`python -m training evaluate --data ../shared/flickr8k --split dev --beam N` (`--human` for the
human level).

{_metrics_table(training.get('dev_metrics', {}))}

{_everyday_photos(fusion)}{notes}
## Known limits and biases
{KNOWN_LIMITS}"""
    path = Path(model_dir) / "MODEL_CARD.md"
    path.write_text(card, encoding="utf-8")
    return path
