"""The caption metrics against hand-checkable cases: CIDEr-D rewards the words the references
agree on, and gives nothing for a caption that shares no word with them."""

from training.evaluate import bleu_scores, cider_score, human_caption_scores

REFERENCES = [
    ["a dog runs on the grass", "a brown dog is running through grass", "the dog runs in a field"],
    ["a man rides a bike down the street", "a cyclist rides along a city street", "a man on a bicycle"],
    ["two children play on the beach", "kids playing in the sand by the sea", "two kids on a beach"],
]


def test_cider_prefers_the_caption_that_says_what_the_references_say() -> None:
    right = ["a brown dog runs on the grass", "a man rides a bike down the street", "two kids play on the beach"]
    swapped = [right[1], right[2], right[0]]  # fluent captions, of the wrong photos
    assert cider_score(REFERENCES, right) > 1.0 > cider_score(REFERENCES, swapped) >= 0.0
    # BLEU agrees on the order
    assert bleu_scores(REFERENCES, right)["bleu4"] > bleu_scores(REFERENCES, swapped)["bleu4"]


def test_cider_is_zero_without_shared_words_and_for_no_captions() -> None:
    assert cider_score(REFERENCES, ["purple elephants", "quantum soup", "violins"]) == 0.0
    assert cider_score([], []) == 0.0


def test_cider_reads_captions_the_way_bleu_does() -> None:
    """Case and punctuation do not change the score: both metrics tokenise with clean_caption."""
    plain = ["a dog runs on the grass", "a man rides a bike", "two kids on a beach"]
    shouted = ["A Dog runs on the grass!", "A man rides a bike.", "Two kids, on a beach"]
    assert cider_score(REFERENCES, plain) == cider_score(REFERENCES, shouted)


def test_human_level_scores_each_caption_against_the_others() -> None:
    human = human_caption_scores(REFERENCES)
    assert set(human) == {"human_bleu1", "human_bleu2", "human_bleu3", "human_bleu4", "human_cider"}
    assert 0.0 < human["human_bleu4"] <= human["human_bleu1"] <= 1.0 and human["human_cider"] > 0.0
    # people who all write the same caption agree perfectly
    same = [["a dog runs on the grass"] * 3, ["a man rides a bike"] * 3, ["two kids on a beach"] * 3]
    assert human_caption_scores(same)["human_bleu1"] == 1.0
    assert human_caption_scores([["only one caption"]]) == {}
