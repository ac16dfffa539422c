"""Delivery arithmetic: how long an analysis message may stay unacknowledged, how retries are
spaced, when a claimed analysis counts as abandoned. One module answers these so the project's
settings (the broker's visibility timeout), the system check, the task and the reconciler agree.

No Django or Celery imports: ``settings.py`` uses it before Django is set up.

With ``acks_late`` on Redis, a message stays in the broker's ``unacked`` hash until the task
finishes; kombu hands it to another worker only after ``visibility_timeout`` seconds (its default is
3,600 s: an hour of "queued" after a killed solo worker). The timeout must exceed the longest time a
worker legitimately holds a message — a retry's countdown (held unacked until its ETA) plus one run
up to the hard time limit — or healthy tasks get delivered twice.
"""

from __future__ import annotations

import random

# A retry waits at least this long (never 0 s: full jitter from 0 spent a 5-retry budget in 11 s)
# and at most the countdown cap, growing 2 s, 4 s, 8 s, 16 s, 30 s, 30 s, ... with +/-20 % jitter.
RETRY_COUNTDOWN_MIN = 2.0
RETRY_COUNTDOWN_MAX = 30.0
RETRY_JITTER = 0.2
# Slack on top of the hard time limit before a message / a claimed analysis counts as abandoned:
# a third of the limit, at most a minute.
DELIVERY_MARGIN = 60.0
# Celery kills a prefork child that is not up within worker_proc_alive_timeout (4 s by default);
# loading TensorFlow and the model takes 4-6 s. The project sets 60 s; the check warns below this.
MIN_PROC_ALIVE_TIMEOUT = 30.0


def countdown_cap(time_limit: float) -> float:
    """The longest retry countdown: 30 s, or one run's time limit when that is shorter."""
    return max(RETRY_COUNTDOWN_MIN, min(RETRY_COUNTDOWN_MAX, float(time_limit)))


def margin(time_limit: float) -> float:
    return max(2.0, min(DELIVERY_MARGIN, float(time_limit) / 3))


def retry_countdown(retries: int, time_limit: float, rng: random.Random | None = None) -> float:
    """Seconds before retry number ``retries + 1``: exponential with a floor, a cap and some jitter."""
    rng = rng or random
    cap = countdown_cap(time_limit)
    base = min(cap, RETRY_COUNTDOWN_MIN * 2 ** min(max(0, retries), 30))
    jittered = base * (1 + rng.uniform(-RETRY_JITTER, RETRY_JITTER))
    return max(RETRY_COUNTDOWN_MIN, min(cap, jittered))


def visibility_timeout(time_limit: float) -> int:
    """The Redis ``visibility_timeout`` for tasks with hard time limit ``time_limit`` seconds: a
    retry's countdown plus one run plus the margin (180 s -> 270 s)."""
    return int(time_limit + countdown_cap(time_limit) + margin(time_limit))


def restore_interval(time_limit: float) -> int:
    """Seconds between kombu's sweeps for unacknowledged messages past the visibility timeout: a
    tenth of the timeout, at most 30 s (kombu's default sweep is every 10 x 10 = 100 s, which would
    add up to 100 s to every recovery)."""
    return max(1, min(30, visibility_timeout(time_limit) // 10))


def broker_transport_options(time_limit: float) -> dict:
    """``CELERY_BROKER_TRANSPORT_OPTIONS`` for a Redis broker (other brokers ignore the keys): a
    killed worker's message is back in the queue at most ``visibility_timeout`` + one sweep
    (270 + 27 s for the default 180 s limit) after it was delivered."""
    return {"visibility_timeout": visibility_timeout(time_limit),
            "unacked_restore_interval": restore_interval(time_limit), "unacked_restore_throttle": 1}


def claim_expires_after(time_limit: float) -> int:
    """Seconds after which a ``running`` analysis is abandoned: no task runs past its hard time
    limit, so one started longer ago than this belongs to a dead worker and may be claimed again
    (180 s -> 240 s)."""
    return int(time_limit + margin(time_limit))


def resend_after(time_limit: float, sends: int) -> int:
    """Seconds after its last send when the reconciler sends a request that is still unanswered
    again: a visibility timeout (by then a delivered message would have come back), doubling with
    every send (a long queue gets few duplicates), at most an hour."""
    return int(min(3600, visibility_timeout(time_limit) * 2 ** min(max(0, sends - 1), 10)))


def warm_up_deadline(proc_alive_timeout: float) -> float:
    """How long a worker child's model warm-up may hold up the child's start: well inside Celery's
    allowance, so a slow or hanging load never gets the child killed (and replaced, forever)."""
    return max(1.0, 0.75 * float(proc_alive_timeout))


# A claimed run abandoned this many times (its worker killed, or the hard time limit hit, each
# time) is marked failed instead of being handed out again: one bad image never kills workers forever.
MAX_ATTEMPTS = 5
