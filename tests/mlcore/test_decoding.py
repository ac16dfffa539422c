"""Greedy and beam search on real (tiny, trained) decoders, with and without attention."""

import numpy as np
import pytest

from mlcore.decoder import DecoderConfig, build_decoder
from mlcore.decoding import StepDecoder
from mlcore.vocabulary import Vocabulary

CAPTIONS = [["a", "dog", "runs"], ["a", "cat", "sleeps", "on", "a", "sofa"], ["two", "birds"]]
POSITIONS = 4  # of the attention decoders' maps (a 2x2 grid)
KINDS = ["pooled", "attention"]


def _config(kind: str, **fields) -> DecoderConfig:
    attention = {"attention_units": 6, "attention_layer": "head_relu6"} if kind == "attention" else {}
    return DecoderConfig(feature_dim=8, embedding_dim=8, units=16, dropout=0.0, **fields,
                         **attention)


def _random(decoder, seed: int, count: int) -> np.ndarray:
    """Random inputs of the decoder's kind: pooled features or maps."""
    shape = (count, POSITIONS, 8) if decoder.config.attends else (count, 8)
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _as_inputs(decoder, pooled: np.ndarray) -> np.ndarray:
    """Maps whose positions differ and whose mean is ``pooled``, for an attention decoder."""
    if not decoder.config.attends:
        return pooled
    pattern = np.random.default_rng(9).normal(size=(POSITIONS, pooled.shape[1]))
    return (pooled[:, None, :] + pattern - pattern.mean(0)).astype(np.float32)


@pytest.fixture(scope="module", params=KINDS)
def trained(request):
    import keras

    keras.utils.set_random_seed(1)
    vocabulary = Vocabulary.build(CAPTIONS, min_count=1)
    decoder = build_decoder(_config(request.param, vocabulary_size=len(vocabulary),
                                    max_length=10))
    centres = _as_inputs(decoder, np.eye(3, 8, dtype=np.float32) * 3)
    rows = [vocabulary.encode(c) for c in CAPTIONS]
    width = max(map(len, rows))
    ids = np.array([r + [0] * (width - len(r)) for r in rows], np.int32)
    features, targets = np.repeat(centres, 8, 0), np.repeat(ids, 8, 0)
    decoder.model.compile(optimizer=keras.optimizers.Adam(0.05),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                          ignore_class=0))
    decoder.model.fit([features, targets[:, :-1]], targets[:, 1:], epochs=80, verbose=0)
    return decoder, vocabulary, centres


def test_greedy_reproduces_the_learned_captions(trained):
    decoder, vocabulary, centres = trained
    results = StepDecoder(decoder, vocabulary).greedy(centres)
    assert [r.caption for r in results] == [" ".join(c) for c in CAPTIONS]
    assert all(r.log_probs[0] < 0 for r in results)


def _step_logits(step: StepDecoder, features: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Teacher-forced logits from the step decoder, one compiled-free step per position."""
    hidden, cell, memory = step._initial_state(features)
    logits = []
    for position in range(ids.shape[1]):
        step_logits, hidden, cell, _ = step._step(ids[:, position], hidden, cell, memory)
        logits.append(step_logits.numpy())
    return np.stack(logits, axis=1)


def test_step_computes_what_the_training_model_computes(trained):
    decoder, vocabulary, centres = trained
    ids = np.array([vocabulary.encode(c)[:-1] for c in [c[:2] for c in CAPTIONS]], np.int32)
    expected = np.asarray(decoder.model([centres, ids], training=False))
    allowed = np.ones(len(vocabulary), bool)
    allowed[[vocabulary.pad_id, vocabulary.start_id, vocabulary.unknown_id]] = False
    exact = _step_logits(StepDecoder(decoder, vocabulary, precision="float32"), centres, ids)
    size = len(vocabulary)
    assert exact.shape[-1] % 32 == 0 and (exact[..., size:] < -1e8).all()  # chunk padding
    exact = exact[..., :size]
    np.testing.assert_allclose(exact[..., allowed], expected[..., allowed], rtol=1e-5, atol=1e-5)
    assert (exact[..., ~allowed] < -1e8).all()  # pad/start/unk are never generated
    rounded = _step_logits(StepDecoder(decoder, vocabulary, precision="bfloat16"), centres,
                           ids)[..., :size]
    scale = np.abs(expected[..., allowed]).max()
    np.testing.assert_allclose(rounded[..., allowed], expected[..., allowed], atol=0.02 * scale)


def test_bfloat16_decodes_the_learned_captions(trained):
    decoder, vocabulary, centres = trained
    step = StepDecoder(decoder, vocabulary, precision="bfloat16")
    assert step.precision == "bfloat16"
    assert [r.caption for r in step.greedy(centres)] == [" ".join(c) for c in CAPTIONS]
    assert [r.caption for r in step.beam_search(centres, 3)] == [" ".join(c) for c in CAPTIONS]


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_beam_width_one_agrees_with_greedy(trained, precision):
    decoder, vocabulary, _ = trained
    features = _random(decoder, 0, 16)
    step = StepDecoder(decoder, vocabulary, precision=precision)
    greedy = step.greedy(features)
    beam = step.beam_search(features, width=1)
    assert [g.captions for g in greedy] == [b.captions for b in beam]
    np.testing.assert_allclose([g.log_probs[0] for g in greedy], [b.log_probs[0] for b in beam],
                               rtol=1e-4, atol=1e-4)


def test_beam_returns_sorted_distinct_captions_per_image(trained):
    decoder, vocabulary, centres = trained
    results = StepDecoder(decoder, vocabulary, length_penalty=0.0).beam_search(centres, width=3)
    assert len(results) == 3
    for result, expected in zip(results, CAPTIONS):
        assert result.caption == " ".join(expected)
        assert len(result.captions) == len(set(result.captions)) >= 2
        assert result.scores == sorted(result.scores, reverse=True)
        # with no length penalty the score is the log-probability itself
        assert result.scores == pytest.approx(result.log_probs)


def test_beam_search_never_loses_to_greedy(trained):
    decoder, vocabulary, _ = trained
    features = _random(decoder, 2, 32)
    step = StepDecoder(decoder, vocabulary, length_penalty=0.0)
    greedy = step.greedy(features)
    beam = step.beam_search(features, width=4)
    for g, b in zip(greedy, beam):
        assert b.log_probs[0] >= g.log_probs[0] - 1e-4


def test_batches_decode_like_single_images(trained):
    decoder, vocabulary, _ = trained
    features = _random(decoder, 3, 5)
    step = StepDecoder(decoder, vocabulary)
    together = step.beam_search(features, width=3)
    alone = [step.beam_search(features[i:i + 1], width=3)[0] for i in range(5)]
    assert [r.captions for r in together] == [r.captions for r in alone]


def test_empty_batch_and_bad_width(trained):
    decoder, vocabulary, _ = trained
    step = StepDecoder(decoder, vocabulary)
    assert step.greedy(_random(decoder, 0, 0)) == []
    with pytest.raises(ValueError):
        step.beam_search(_random(decoder, 0, 1), width=0)


def test_vocabulary_round_trip(tmp_path):
    vocabulary = Vocabulary.build(CAPTIONS + [["dog"]], min_count=2)
    assert vocabulary.words[:4] == ["<pad>", "<start>", "<end>", "<unk>"]
    assert "dog" in vocabulary and "cat" not in vocabulary
    ids = vocabulary.encode(["a", "cat"])
    assert ids == [1, vocabulary.words.index("a"), vocabulary.unknown_id, 2]
    vocabulary.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json").words == vocabulary.words
    assert vocabulary.decode([1, vocabulary.words.index("dog"), 2, 5]) == ["dog"]


def test_sampling_draws_the_learned_captions_for_confident_inputs(trained):
    decoder, vocabulary, centres = trained
    step = StepDecoder(decoder, vocabulary)
    samples = step.sample(centres, count=6, temperature=0.5, seed=3)
    assert [len(s.captions) for s in samples] == [6, 6, 6]
    for result, expected in zip(samples, CAPTIONS):
        assert result.captions.count(" ".join(expected)) >= 4
        assert all(lp <= 0 for lp in result.log_probs)
    again = step.sample(centres, count=6, temperature=0.5, seed=3)
    assert [s.captions for s in again] == [s.captions for s in samples]  # seeded: reproducible


@pytest.fixture(scope="module", params=KINDS)
def wide(request):
    """An untrained decoder over a 300-word vocabulary (ten output chunks) whose <end> comes
    after a varied number of words, so rows leave a batch at different steps."""
    import keras

    keras.utils.set_random_seed(5)
    vocabulary = Vocabulary.build([[f"w{index}"] for index in range(296)], min_count=1)
    decoder = build_decoder(_config(request.param, vocabulary_size=len(vocabulary),
                                    max_length=12))
    kernel = np.asarray(decoder.output_projection.kernel).copy()
    kernel[:, vocabulary.end_id] = np.random.default_rng(5).normal(scale=3.0, size=16)
    decoder.output_projection.kernel.assign(kernel)
    return decoder, vocabulary


@pytest.mark.parametrize("k", [1, 3, 8])
def test_chunked_top_words_match_a_full_sort(wide, k):
    decoder, vocabulary = wide
    step = StepDecoder(decoder, vocabulary, precision="float32")
    rng = np.random.default_rng(k)
    logits = np.full((64, step._padded_size), -1e9, np.float32)
    logits[:, :len(vocabulary)] = rng.normal(scale=4.0, size=(64, len(vocabulary)))
    log_probs, word_ids = (t.numpy() for t in step._top_words(logits, k))
    full = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) \
        - logits.max(1, keepdims=True)
    expected_ids = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(word_ids, expected_ids)
    np.testing.assert_allclose(log_probs, np.take_along_axis(full, expected_ids, 1), atol=1e-4)


def test_rows_leaving_the_batch_early_do_not_change_any_result(wide):
    """float32: bfloat16 products may round differently for other batch sizes on other CPUs."""
    decoder, vocabulary = wide
    step = StepDecoder(decoder, vocabulary, precision="float32")
    features = _random(decoder, 7, 40)
    greedy = step.greedy(features)
    lengths = {len(result.caption.split()) for result in greedy}
    # really staggered: some end at once, some run to max_length (12 words, no <end>)
    assert min(lengths) <= 1 and max(lengths) == 12 and len(lengths) >= 5
    assert [r.captions for r in greedy] == [step.greedy(f[None])[0].captions for f in features]
    beams = step.beam_search(features, width=4)
    alone = [step.beam_search(f[None], width=4)[0] for f in features]
    assert [r.captions for r in beams] == [r.captions for r in alone]
    np.testing.assert_allclose([r.log_probs for r in beams], [r.log_probs for r in alone],
                               rtol=1e-5, atol=1e-5)


def test_beams_wider_than_the_vocabulary_never_emit_banned_or_padding_ids():
    """Five words, two of them generatable; the banned words' logits pushed far below -1e9."""
    import keras

    keras.utils.set_random_seed(3)
    vocabulary = Vocabulary.build([["dog"]], min_count=1)
    assert len(vocabulary) == 5
    decoder = build_decoder(DecoderConfig(vocabulary_size=5, feature_dim=4, embedding_dim=4,
                                          units=8, dropout=0.0, max_length=6))
    kernel = np.asarray(decoder.output_projection.kernel).copy()
    banned = [vocabulary.pad_id, vocabulary.start_id, vocabulary.unknown_id]
    kernel[:, banned] *= 60.0
    decoder.output_projection.kernel.assign(kernel)
    step = StepDecoder(decoder, vocabulary, precision="float32")
    features = np.random.default_rng(4).normal(size=(6, 4)).astype(np.float32) * 5
    for result in step.beam_search(features, width=5):
        assert 1 <= len(result.captions) <= 2
        assert all(set(caption.split()) <= {"dog"} for caption in result.captions)


@pytest.fixture(scope="module")
def attending():
    """An untrained attention decoder with weights large enough for peaked attention."""
    import keras

    keras.utils.set_random_seed(11)
    vocabulary = Vocabulary.build([[f"w{index}"] for index in range(40)], min_count=1)
    decoder = build_decoder(_config("attention", vocabulary_size=len(vocabulary), max_length=8))
    for variable in decoder.attention.scores.weights:  # the energies' scale
        variable.assign(np.asarray(variable) * 10.0)
    return decoder, vocabulary


def _keras_attention(decoder, maps: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The training model's own layers: the attention weights of each position of ``ids``."""
    import keras

    lstm_output = keras.Model(decoder.model.inputs,
                              decoder.model.get_layer("caption_lstm").output)([maps, ids])
    attention = decoder.attention
    _, weights = attention.scores([attention.query(lstm_output), attention.values(maps),
                                   attention.keys(maps)], return_attention_scores=True)
    return np.asarray(weights)


@pytest.mark.parametrize("width", [1, 3])
def test_each_word_keeps_the_attention_it_was_chosen_with(attending, width):
    decoder, vocabulary = attending
    maps = _random(decoder, 12, 6) * 3
    step = StepDecoder(decoder, vocabulary, precision="float32")
    checked = 0
    for image, result in zip(maps, step.decode(maps, beam_width=width)):
        words = result.caption.split()
        assert result.attention.shape == (len(words), POSITIONS)
        if not words:
            continue
        checked += 1
        np.testing.assert_allclose(result.attention.sum(axis=1), 1.0, rtol=1e-5)
        ids = np.array([vocabulary.encode(words)[:-1]], np.int32)  # <start> + the words
        expected = _keras_attention(decoder, image[None], ids)[0, :len(words)]
        np.testing.assert_allclose(result.attention, expected, rtol=1e-4, atol=1e-5)
        assert np.ptp(result.attention, axis=1).min() > 0.2  # far from uniform: a real check
    assert checked >= 4


def test_a_decoder_without_attention_reports_none(wide):
    decoder, vocabulary = wide
    results = StepDecoder(decoder, vocabulary).decode(_random(decoder, 1, 2), beam_width=3)
    assert all((r.attention is None) != decoder.config.attends for r in results)


def test_an_attention_config_needs_its_layer():
    with pytest.raises(ValueError, match="attention_layer"):
        DecoderConfig(vocabulary_size=5, feature_dim=4, attention_units=8)
    assert "attention_units" not in DecoderConfig(vocabulary_size=5, feature_dim=4).to_json()
