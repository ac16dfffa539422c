"""The cross-task batcher (hashtags.batching): analyses in threads of one process share forward
passes, each gets its own result or its own error, and a lone image is never held back."""

from __future__ import annotations

import threading

import pytest

from hashtags.batching import ImageBatcher, ModelTimeout

JOIN = 30  # seconds a thread may take before the test calls it stuck


class Model:
    """A stand-in forward pass that records the batches it was given (the batcher is generic; the
    real model runs through it in tests/hashtags/test_worker.py)."""

    def __init__(self, release: threading.Event | None = None):
        self.batches: list[list] = []
        self.release = release

    def __call__(self, captioner, images: list) -> list:
        if self.release is not None:
            self.release.wait(JOIN)
        self.batches.append(list(images))
        if "bad" in images:
            raise ValueError("this image breaks the model")
        return [f"{captioner}:{image}" for image in images]


def run_together(batcher: ImageBatcher, jobs: list[tuple[str, str]]) -> dict[str, object]:
    """Each (captioner, image) in its own thread with a slot, all announced before any submits."""
    results: dict[str, object] = {}
    announced = threading.Barrier(len(jobs))

    def analyse(captioner: str, image: str) -> None:
        with batcher.slot() as slot:
            announced.wait(JOIN)
            try:
                results[image] = slot.run(captioner, image, timeout=JOIN)
            except Exception as exc:
                results[image] = exc

    threads = [threading.Thread(target=analyse, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_images_announced_together_share_forward_passes_of_at_most_max_batch():
    model = Model()
    batcher = ImageBatcher(model, max_batch=4, max_wait=JOIN)
    images = [f"img{i}" for i in range(10)]
    results = run_together(batcher, [("m", image) for image in images])
    assert {image: results[image][0] for image in images} == {image: f"m:{image}" for image in images}
    sizes = [len(batch) for batch in model.batches]
    assert sum(sizes) == 10 and max(sizes) <= 4 and len(sizes) < 10
    assert all(results[image][1]["batch"] in sizes for image in images)


def test_a_lone_image_is_not_held_back_for_the_maximum_wait():
    model = Model()
    batcher = ImageBatcher(model, max_batch=16, max_wait=3600)  # waiting would hang the test
    done = {}
    thread = threading.Thread(target=lambda: done.update(r=batcher.run("m", "alone", timeout=JOIN)))
    thread.start()
    thread.join(JOIN)
    assert not thread.is_alive()
    assert done["r"][0] == "m:alone" and done["r"][1]["batch"] == 1


def test_a_slot_that_ends_without_an_image_stops_the_wait_for_it():
    model = Model()
    batcher = ImageBatcher(model, max_batch=16, max_wait=3600)
    with batcher.slot():
        pass  # e.g. the analysis found its image already analysed
    result, batch = batcher.run("m", "next", timeout=JOIN)
    assert result == "m:next" and batch["batch"] == 1


def test_a_bad_image_fails_alone():
    model = Model()
    batcher = ImageBatcher(model, max_batch=8, max_wait=JOIN)
    results = run_together(batcher, [("m", "a"), ("m", "bad"), ("m", "c")])
    assert isinstance(results["bad"], ValueError)
    assert results["a"][0] == "m:a" and results["c"][0] == "m:c"
    assert len(model.batches[0]) == 3  # tried together first, then one by one


def test_images_for_different_models_never_share_a_batch():
    model = Model()
    batcher = ImageBatcher(model, max_batch=8, max_wait=JOIN)
    results = run_together(batcher, [("old", "a"), ("new", "b"), ("old", "c"), ("new", "d")])
    assert results["a"][0] == "old:a" and results["b"][0] == "new:b"
    for batch in model.batches:
        assert len({results[image][0].split(":")[0] for image in batch}) == 1


def test_no_answer_within_the_time_limit_raises_model_timeout():
    release = threading.Event()
    batcher = ImageBatcher(Model(release), max_batch=4, max_wait=0)
    try:
        with pytest.raises(ModelTimeout):
            batcher.run("m", "slow", timeout=0.2)
    finally:
        release.set()
