# The two commands: `make run` (set up + demo + web server and worker) and `make test` (set up + whole suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export DJANGO_SETTINGS_MODULE ?= rcmweb.settings.local

.PHONY: run test setup venv node migrate demo lint bench-ingest bench-tiles clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall only when requirements.txt changes.
$(VENV)/.installed: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --progress-bar on -r requirements.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

venv: $(VENV)/.installed
node: node_modules/.installed

migrate: venv node
	$(PY) manage.py migrate --no-input

setup: migrate

demo: setup
	$(PY) manage.py load_demo

run: demo
	$(PY) manage.py repair_reviews
	@echo "Starting the web server and a Celery worker (Ctrl-C stops both)."
	@echo "Open http://127.0.0.1:$(PORT)/ and log in with one of the accounts above."
	PORT=$(PORT) $(VENV)/bin/honcho start -f Procfile

test: setup
	DJANGO_SETTINGS_MODULE=rcmweb.settings.test $(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS); \
	  rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; rc=0; fi; exit $$rc

lint: venv
	$(VENV)/bin/ruff check .

bench-ingest: setup
	$(PY) bench/ingest.py

bench-tiles: setup
	$(PY) bench/tiles.py

clean:
	rm -rf var
