"""Faults injected into real processes: a batching worker (``--pool=threads``, as ``make worker``) killed with SIGKILL mid-task, PostgreSQL cut
off for 20 s behind a TCP proxy, Redis losing its queue (a restart without persistence). Every post
must end with exactly one finished analysis, without an operator.

The workers run with a 12 s task time limit (soft 10 s), so the delivery arithmetic of
:mod:`hashtags.delivery` scales down: visibility timeout 28 s (swept every 2 s), a claim expires
after 16 s, retry countdowns 2 s doubling to 12 s. Each test stops itself within ~90 s.

To measure with production numbers (README, "Running in production"), the environment sets the
time limit and the outage: ``HASHTAGS_FAULTS_TIME_LIMIT=180`` (visibility timeout 270 s; the kill
test then waits up to 6 min), ``HASHTAGS_FAULTS_OUTAGE_S=60``, and for the lost queue
``HASHTAGS_FAULTS_QUEUED=40 HASHTAGS_FAULTS_RECONCILE_EVERY=120``.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import redis

from hashtags import delivery
from hashtags.models import AnalysisRequest, ImageAnalysis
from tests.hashtags import support
from tests.hashtags.workers import (REDIS_URL, TcpProxy, children, database_url, redis_reachable, start_worker,
                                    stop, wait_for_log, worker_env)

pytestmark = [
    pytest.mark.worker,
    pytest.mark.faults,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not redis_reachable(), reason=f"Redis is not reachable at {REDIS_URL}"),
]

TIME_LIMIT = int(os.environ.get("HASHTAGS_FAULTS_TIME_LIMIT", "12"))
SOFT_TIME_LIMIT = TIME_LIMIT - max(2, TIME_LIMIT // 6)
OUTAGE_S = float(os.environ.get("HASHTAGS_FAULTS_OUTAGE_S", "20"))
RECONCILE_EVERY = int(os.environ.get("HASHTAGS_FAULTS_RECONCILE_EVERY", "3"))
QUEUED = int(os.environ.get("HASHTAGS_FAULTS_QUEUED", "10"))
# A killed batching (or solo) worker's message is back after the visibility timeout and one sweep.
REDELIVERY_WAIT = delivery.visibility_timeout(TIME_LIMIT) + delivery.restore_interval(TIME_LIMIT) + 50
LIMITS = {"HASHTAGS_TASK_TIME_LIMIT": str(TIME_LIMIT), "HASHTAGS_TASK_SOFT_TIME_LIMIT": str(SOFT_TIME_LIMIT)}
READY = "ready."  # celery's "celery@host ready." line
START_TIMEOUT = 60


@pytest.fixture
def broker(settings):
    """This process' Celery app on the test Redis DB, emptied before and after."""
    from tests.celery_app import app

    def use(url):
        app.conf.broker_url = url
        app._pool = None
        app.amqp._producer_pool = None

    old = app.conf.broker_url
    use(REDIS_URL)
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    use(old)


@pytest.fixture
def setup(hashtags_config, tiny_artifact, settings, broker, tmp_path):
    """Celery executor with the tests' time limits here too (the reconciler run in this process
    must agree with the workers)."""
    hashtags_config(EXECUTOR="celery", QUEUE="gpu", MODEL_DIR=str(tiny_artifact), MIN_SCORE=0.0,
                    TASK_TIME_LIMIT=TIME_LIMIT, TASK_SOFT_TIME_LIMIT=SOFT_TIME_LIMIT)
    return tiny_artifact, settings.MEDIA_ROOT, tmp_path / "worker.log"


def finished_once(posts) -> tuple[int, list[str]]:
    """(posts with exactly one done analysis, problems)."""
    good, problems = 0, []
    for post in posts:
        statuses = list(ImageAnalysis.objects.for_object(post).values_list("status", flat=True))
        if statuses == ["done"]:
            good += 1
        elif len(statuses) > 1 or "failed" in statuses:
            problems.append(f"post {post.pk}: {statuses}")
    return good, problems


def wait_all_finished(posts, timeout: float, worker, log_path) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        good, problems = finished_once(posts)
        assert not problems, problems
        if good == len(posts):
            return time.monotonic() - started
        assert worker.poll() is None, f"worker exited:\n{log_path.read_text()[-4000:]}"
        time.sleep(0.25)
    good, _ = finished_once(posts)
    pytest.fail(f"{good}/{len(posts)} finished after {timeout:.0f} s:\n{log_path.read_text()[-6000:]}")


def wait_for_a_running_analysis(timeout: float = 30) -> ImageAnalysis:
    """The first analysis seen running (a worker holds it mid-task), within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        victim = ImageAnalysis.objects.filter(status="running").first()
        if victim is not None:
            return victim
        time.sleep(0.002)
    raise AssertionError("no analysis was seen running")


def test_a_batching_worker_killed_mid_task_loses_nothing(setup, make_post, broker):
    artifact, media_root, log_path = setup
    env = worker_env(artifact, media_root, **LIMITS)
    worker = start_worker(env, log_path, "killed")
    try:
        wait_for_log(log_path, READY, START_TIMEOUT, worker)
        posts = [make_post(seed=0)]
        wait_all_finished(posts, 30, worker, log_path)  # warm: the model is loaded and traced
        posts += [make_post(seed=s) for s in range(1, 5)]
        victim = wait_for_a_running_analysis()
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        killed = time.monotonic()
        assert broker.hlen("unacked") >= 1  # the in-flight message waits for its visibility timeout
        worker = start_worker(env, log_path, "restarted")
        recovered = wait_all_finished(posts, REDELIVERY_WAIT, worker, log_path)
        victim.refresh_from_db()
        print(f"\nkill -9 of a batching worker while analysis {victim.pk} ran: all {len(posts)} posts done "
              f"{time.monotonic() - killed:.1f} s after the kill (restart included; visibility timeout "
              f"{delivery.visibility_timeout(TIME_LIMIT)} s); attempts of the killed one: {victim.attempts}")
        assert victim.status == "done" and victim.attempts == 2  # claimed again by its redelivered message
        assert recovered >= 0 and broker.hlen("unacked") == 0 and not AnalysisRequest.objects.exists()
    finally:
        stop(worker)


@pytest.mark.parametrize("alive_timeout", ["60", "4"])
def test_a_killed_prefork_child_is_replaced_and_its_task_finished(setup, make_post, hashtags_config, alive_timeout):
    """The README's CPU worker with the shipped model: its children load TensorFlow and the model
    (seconds) in worker_process_init before they report up. Celery's default 4 s allowance had every
    replacement child killed, forever. With the project's 60 s the kill is repaired by the worker;
    with 4 s too, because the warm-up stops holding the child up after 3 s (its first task waits).
    A 60 s time limit here: that first task's wait for the model counts against it."""
    _, media_root, log_path = setup
    hashtags_config(MODEL_DIR=None, TASK_TIME_LIMIT=60, TASK_SOFT_TIME_LIMIT=50)  # the shipped model
    env = worker_env(None, media_root, CELERY_WORKER_PROC_ALIVE_TIMEOUT=alive_timeout,
                     HASHTAGS_TASK_TIME_LIMIT="60", HASHTAGS_TASK_SOFT_TIME_LIMIT="50")
    worker = start_worker(env, log_path, "prefork", "--concurrency=1")
    try:
        wait_for_log(log_path, READY, START_TIMEOUT, worker)
        posts = [make_post(seed=0)]
        wait_all_finished(posts, 60, worker, log_path)
        posts += [make_post(seed=s) for s in range(1, 4)]
        victim = wait_for_a_running_analysis()
        (child,) = children(worker.pid)
        os.kill(child, signal.SIGKILL)
        killed = time.monotonic()
        recovered = wait_all_finished(posts, 60 + delivery.countdown_cap(TIME_LIMIT), worker, log_path)
        log = log_path.read_text()
        loads = [line for line in log.splitlines() if "loaded captioner" in line]
        print(f"\nkill -9 of the prefork child while analysis {victim.pk} ran: all {len(posts)} posts done "
              f"{recovered:.1f} s after the kill, no operator; model loads: {loads[-1].split(' in ')[-1] if loads else '?'}")
        assert "Timed out waiting for UP message" not in log and worker.poll() is None
        assert children(worker.pid) and children(worker.pid) != [child]
        assert time.monotonic() - killed < 60
    finally:
        stop(worker)


def test_a_database_outage_loses_nothing(setup, make_post):
    artifact, media_root, log_path = setup
    from django.db import connection

    proxy = TcpProxy((connection.settings_dict["HOST"] or "127.0.0.1", int(connection.settings_dict["PORT"] or 5432)))
    env = worker_env(artifact, media_root, DATABASE_URL=database_url(proxy.port), **LIMITS)
    worker = start_worker(env, log_path, "outage")
    try:
        wait_for_log(log_path, READY, START_TIMEOUT, worker)
        warm = [make_post(seed=99)]
        wait_all_finished(warm, 30, worker, log_path)
        proxy.cut()
        cut = time.monotonic()
        posts = [make_post(seed=s) for s in range(30)]  # the web side still reaches the database
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - cut)))
        proxy.restore()
        restored = time.monotonic()
        recovered = wait_all_finished(posts, 60 + delivery.countdown_cap(TIME_LIMIT), worker, log_path)
        log = log_path.read_text()
        retries = log.count("retry: Retry in")  # celery logs each scheduled retry once
        print(f"\n{OUTAGE_S:.0f} s database outage with 30 posts queued: 30/30 done {recovered:.1f} s after the database "
              f"came back ({restored - cut:.0f} s outage), {retries} retries logged, 0 lost")
        assert retries >= 30 and "gave up" not in log
        assert not AnalysisRequest.objects.exists()
    finally:
        stop(worker)
        proxy.close()


def test_a_queue_lost_with_redis_is_sent_again_by_the_reconciler(setup, make_post, broker):
    artifact, media_root, log_path = setup
    posts = [make_post(seed=s) for s in range(QUEUED)]  # no worker yet: the messages wait in Redis
    assert broker.llen("gpu") == QUEUED and AnalysisRequest.objects.count() == QUEUED
    broker.flushdb()  # what a Redis restart without persistence leaves
    lost = time.monotonic()
    env = worker_env(artifact, media_root, HASHTAGS_RECONCILE_EVERY=str(RECONCILE_EVERY), **LIMITS)
    worker = start_worker(env, log_path, "beat", "-B", "-s", str(log_path.parent / "beat-schedule"))
    try:
        wait = delivery.resend_after(TIME_LIMIT, 1) + 2 * RECONCILE_EVERY + 50
        recovered = wait_all_finished(posts, wait, worker, log_path)
        print(f"\nRedis lost {QUEUED} queued analyses: {QUEUED}/{QUEUED} done {time.monotonic() - lost:.1f} s later "
              f"by the reconciler alone (beat every {RECONCILE_EVERY} s, resend after "
              f"{delivery.resend_after(TIME_LIMIT, 1)} s)")
        assert recovered >= 0 and "hashtags: reconciled" in log_path.read_text()
        assert not AnalysisRequest.objects.exists()
    finally:
        stop(worker)


def test_duplicate_deliveries_and_identical_bytes_run_the_model_once(setup, make_post, other_user):
    """Two worker processes side by side (prefork, concurrency 2): three deliveries of one post's
    analysis claim it once; two posts with identical bytes run the model once."""
    from hashtags.dispatch import send_analysis

    artifact, media_root, log_path = setup
    worker = start_worker(worker_env(artifact, media_root, **LIMITS), log_path, "pair", "--concurrency=2")
    try:
        wait_for_log(log_path, READY, START_TIMEOUT, worker)
        wait_all_finished([make_post(seed=50), make_post(seed=51)], 60, worker, log_path)  # both children warm
        post = make_post(seed=52)
        for _ in range(2):
            send_analysis("testapp", "post", post.pk, "image")  # duplicates, as a reconciler or a redelivery sends
        data = support.jpeg_bytes(seed=53)
        twins = [make_post(data=data, name="twin.jpg"), make_post(owner=other_user, data=data, name="twin.jpg")]
        wait_all_finished([post, *twins], 60, worker, log_path)
        time.sleep(2)  # let the last duplicate delivery arrive and stop
        analysis = ImageAnalysis.objects.for_object(post).get()
        assert analysis.status == "done" and analysis.attempts == 1  # claimed by one delivery only
        runs = [ImageAnalysis.objects.for_object(t).get().timings for t in twins]
        model_runs = sum("encode_s" in t for t in runs)
        print(f"\n3 deliveries of one post: 1 claim; 2 posts with identical bytes: {model_runs} model run(s), "
              f"the other {'reused' if any('reused_from' in t for t in runs) else '?'}")
        assert model_runs == 1 and sum("reused_from" in t for t in runs) == 1
        assert not AnalysisRequest.objects.exists()
    finally:
        stop(worker)
