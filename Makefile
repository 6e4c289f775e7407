# One command to try Townhall, one to test it. Both set themselves up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
export FLASK_APP := app.py

.PHONY: run test lint setup bench clean mailserver

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-app: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed-app

tests/js/node_modules/.installed: tests/js/package.json tests/js/package-lock.json
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed-test

## Set up, migrate, seed the demo event and serve Townhall at http://$(HOST):$(PORT) (make run PORT=5100)
run: $(VENV)/.installed-app
	$(BIN)/flask db upgrade
	$(BIN)/flask seed-demo
	FLASK_RUN_HOST=$(HOST) FLASK_RUN_PORT=$(PORT) $(BIN)/flask run

## A local SMTP server that prints every message it gets: MAIL_URL=smtp://127.0.0.1:8025 make run
SMTP_PORT ?= 8025
mailserver: $(VENV)/.installed-mailserver
	$(BIN)/python -m aiosmtpd -n -l $(HOST):$(SMTP_PORT)

$(VENV)/.installed-mailserver: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -q -e '.[mailserver]'
	touch $@

## Set up and run the whole test suite (lint, SQLite and PostgreSQL, browser)
test: $(VENV)/.installed-test tests/js/node_modules/.installed
	$(BIN)/ruff check .
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

bench: $(VENV)/.installed-test
	for script in signup_bench reminder_bench calendar_bench; do $(BIN)/python bench/$$script.py || exit 1; done

clean:
	rm -rf $(VENV) tests/js/node_modules .pytest_cache .ruff_cache
