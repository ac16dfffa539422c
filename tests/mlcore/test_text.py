"""The shared caption tokenizer (mlcore.text)."""

import pytest

from mlcore.text import ascii_fold, caption_to_text, clean_caption


def test_contract_example_drops_possessive_s():
    assert clean_caption("A dog's ball!") == ["a", "dog", "ball"]


def test_lower_cases_and_splits_on_punctuation_and_whitespace():
    caption = "A black dog runs through the GRASS,\tchasing a  tennis-ball."
    assert clean_caption(caption) == [
        "a",
        "black",
        "dog",
        "runs",
        "through",
        "the",
        "grass",
        "chasing",
        "a",
        "tennis",
        "ball",
    ]


def test_ampersand_becomes_and_even_without_spaces():
    assert clean_caption("Salt&Pepper & friends") == ["salt", "and", "pepper", "and", "friends"]


def test_digits_and_one_letter_tokens_are_dropped_except_a():
    assert clean_caption("A man in a #1 T shirt at 5 o'clock, 2 kids") == [
        "a",
        "man",
        "in",
        "a",
        "shirt",
        "at",
        "clock",
        "kids",
    ]


def test_accents_are_folded_not_split():
    assert clean_caption("Café crème at the Zürich fête") == [
        "cafe",
        "creme",
        "at",
        "the",
        "zurich",
        "fete",
    ]
    assert ascii_fold("ﬁsh ＤＯＧ") == "fish DOG"


def test_emoji_and_other_scripts_do_not_crash():
    assert clean_caption("🐶 dog 犬 on the beach 🌊") == ["dog", "on", "the", "beach"]
    assert clean_caption("") == []
    assert clean_caption("!!! ... 42") == []


def test_rejects_non_strings():
    with pytest.raises(TypeError):
        clean_caption(None)  # type: ignore[arg-type]


def test_caption_to_text_round_trip():
    tokens = clean_caption("Two  dogs play in the snow .")
    assert caption_to_text(tokens) == "two dogs play in the snow"
    assert caption_to_text(["a", "", "dog"]) == "a dog"
    assert clean_caption(caption_to_text(tokens)) == tokens
