"""Delivery settings: the broker's visibility timeout follows the task time limit, retries are
spaced with a floor, and the system checks warn about settings under which analyses get stuck."""

import random

import pytest

from hashtags import delivery
from hashtags.checks import check_delivery


@pytest.fixture
def celery_conf():
    """The tests' Celery app configuration, restored after the test."""
    from tests.celery_app import app

    saved = {key: app.conf[key] for key in ("broker_url", "broker_transport_options", "worker_proc_alive_timeout")}
    yield app.conf
    app.conf.update(saved)


def test_retry_countdowns_grow_with_a_floor_and_a_cap():
    rng = random.Random(1)
    draws = [[delivery.retry_countdown(n, 180, rng) for _ in range(200)] for n in range(12)]
    assert min(min(d) for d in draws) >= delivery.RETRY_COUNTDOWN_MIN  # never 0 s
    assert max(max(d) for d in draws) <= delivery.RETRY_COUNTDOWN_MAX
    means = [sum(d) / len(d) for d in draws]
    assert means[0] < means[2] < means[4] and means[-1] > 0.75 * delivery.RETRY_COUNTDOWN_MAX


def test_redis_broker_without_a_visibility_timeout_is_warned_about(hashtags_config, celery_conf):
    hashtags_config(EXECUTOR="celery", TASK_TIME_LIMIT=300)
    celery_conf.update(broker_url="redis://127.0.0.1:6379/0", broker_transport_options={})
    warnings = check_delivery()
    assert [w.id for w in warnings] == ["hashtags.W001"] and "3600" in warnings[0].msg
    celery_conf.broker_transport_options = {"visibility_timeout": 200}  # shorter than a run: duplicates
    assert [w.id for w in check_delivery()] == ["hashtags.W001"]
    celery_conf.broker_transport_options = delivery.broker_transport_options(300)
    assert check_delivery() == []
    celery_conf.update(broker_url="amqp://guest@127.0.0.1:5672//", broker_transport_options={})
    assert check_delivery() == []  # RabbitMQ redelivers when the connection drops


def test_a_start_up_allowance_the_warm_up_cannot_meet_is_warned_about(hashtags_config, celery_conf):
    hashtags_config(EXECUTOR="celery")
    celery_conf.update(broker_url="amqp://guest@127.0.0.1:5672//", worker_proc_alive_timeout=4.0)
    assert [w.id for w in check_delivery()] == ["hashtags.W002"]
    hashtags_config(WARM_WORKER=False)  # children load the model on their first task instead
    assert check_delivery() == []
    hashtags_config(WARM_WORKER=True, EXECUTOR="thread")
    assert check_delivery() == []


def test_warm_up_waits_well_inside_the_allowance():
    assert delivery.warm_up_deadline(60) == 45 and delivery.warm_up_deadline(0) == 1.0


def test_unanswered_requests_are_sent_again_less_and_less_often():
    waits = [delivery.resend_after(180, sends) for sends in range(1, 8)]
    assert waits[0] == delivery.visibility_timeout(180) and waits == sorted(waits) and waits[-1] == 3600
