# django-image-hashtags: set-up, demo, tests.
#
#   make demo     set up .venv, migrate, create the demo user, run http://127.0.0.1:8000
#   make test     set up .venv and run the test suite
#   make worker   run a Celery worker on the gpu queue (needs CELERY_BROKER_URL, default local Redis)
#   make bench    run the benchmarks in benchmarks/
#   make venv     create .venv and install requirements.txt (only when it changed)
#   make clean    remove build artefacts and caches (keeps .venv, the demo database and media)
#   make distclean  clean + remove .venv

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
WORKER_QUEUES ?= gpu
# Threads of `make worker`: analyses side by side share forward passes (HASHTAGS BATCH_MAX, default 16).
WORKER_CONCURRENCY ?= 16
PYTEST_ARGS ?=
RUNSERVER_ARGS ?=
BENCHMARKS ?= $(sort $(wildcard benchmarks/[!_]*.py))

# TensorFlow is chatty on import; keep warnings and errors only.
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1

.DEFAULT_GOAL := help
.PHONY: help venv demo demo-user test worker bench clean distclean

help:
	@sed -n '3,9p' Makefile | sed 's/^# *//'

# --- virtualenv -------------------------------------------------------------
# .venv/.installed is a stamp: pip runs again only when requirements.txt is newer.
venv: $(VENV)/.installed

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -r requirements.txt
	@touch $@

# Test-only tools (browser driver, contract tester), for `make test` only.
$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# --- demo site --------------------------------------------------------------
# Idempotent: creates demo/demo once, and keeps it staff + superuser.
define DEMO_USER_PY
from django.contrib.auth import get_user_model
User = get_user_model()
user, created = User.objects.get_or_create(username="demo")
if created:
    user.set_password("demo")
user.is_staff = user.is_superuser = user.is_active = True
user.save()
print("Demo user %s: username 'demo', password 'demo'" % ("created" if created else "ready"))
endef
export DEMO_USER_PY

# The demo runs with DEBUG on (the settings' default is off, and off refuses the published key).
demo demo-user worker: export DJANGO_DEBUG ?= 1

demo-user: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py shell --verbosity 0 -c "$$DEMO_USER_PY"

demo: demo-user
	@echo "Demo site: http://$(HOST):$(PORT)/  (sign in as demo / demo; admin at /admin/)"
	$(PY) manage.py runserver $(RUNSERVER_ARGS) $(HOST):$(PORT)

# --- tests, worker, benchmarks ---------------------------------------------
# Two sessions: the app's tests (tests/, tests.settings: a minimal host app) and the demo site's
# (project/tests/, project.test_settings). Both run; the target fails if either does.
test: venv $(VENV)/.installed-dev
	$(PY) -m pytest -q $(PYTEST_ARGS); app=$$?; \
	$(PY) -m pytest -q --ds=project.test_settings $(PYTEST_ARGS) project/tests; demo=$$?; \
	test $$app -eq 0 -a $$demo -eq 0

worker: export CELERY_BROKER_URL ?= redis://127.0.0.1:6379/0
worker: venv
	$(VENV)/bin/celery -A project worker -Q $(WORKER_QUEUES) --pool=threads --concurrency=$(WORKER_CONCURRENCY) --loglevel=INFO

bench: venv
	@test -n "$(BENCHMARKS)" || { echo "no benchmarks in benchmarks/"; exit 1; }
	@set -e; for script in $(BENCHMARKS); do \
		echo "== $$script"; $(PY) $$script; \
	done

# --- cleaning ---------------------------------------------------------------
clean:
	rm -rf build dist .pytest_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
