# One command to try Townhall, one to test it. Both set themselves up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
export FLASK_APP := app.py

.PHONY: run test lint setup bench clean mailserver i18n-extract i18n-update i18n-compile

# Translations (issue 21): gettext catalogs in scheduler/translations/<lang>/LC_MESSAGES/messages.po.
TRANSLATIONS := scheduler/translations
LANGUAGES := de fr es zh_Hans
PO_FILES := $(foreach lang,$(LANGUAGES),$(TRANSLATIONS)/$(lang)/LC_MESSAGES/messages.po)
MO_FILES := $(PO_FILES:.po=.mo)
# Domain errors are raised with their message (shown translated by web/refusals.py): extracted like _().
DOMAIN_ERRORS := DomainError NotFound Conflict NotAllowed RateLimited InvalidInput SlugTaken SignupClosed \
	EventNotOpen EventCancelled EventFull InvalidTransition RuleGivesNothing BoardClosed
# bad(field, message): the domain's validation (domain/events.py, domain/series.py), shown translated by refusals.fields_of.
BABEL_KEYWORDS := -k _l -k lazy_gettext -k lazy_ngettext:1,2 -k ApiError:3 -k bad:2 $(foreach error,$(DOMAIN_ERRORS),-k $(error))

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
run: $(VENV)/.installed-app i18n-compile
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

## Set up and run the whole test suite (lint, SQLite and PostgreSQL, browser): first the tests that start
## no process, measure no time and drive no browser, $(PYTEST_WORKERS) at a time; then the others one by one,
## so that no other test competes with them for the machine. (Exit 5: a part had no test to run.)
PYTEST_WORKERS ?= 2
test: $(VENV)/.installed-test tests/js/node_modules/.installed i18n-compile
	$(BIN)/ruff check .
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m "not slow and not browser and not timing" $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(BIN)/pytest -m "slow or browser or timing" $(PYTEST_ARGS) || [ $$? -eq 5 ]

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

bench: $(VENV)/.installed-test
	for script in signup_bench reminder_bench calendar_bench; do $(BIN)/python bench/$$script.py || exit 1; done

## Every marked string of the code and templates into $(TRANSLATIONS)/messages.pot
i18n-extract: $(VENV)/.installed-app
	$(BIN)/pybabel extract -F babel.cfg $(BABEL_KEYWORDS) --no-location --sort-output \
		--project=Townhall --copyright-holder="Townhall contributors" -o $(TRANSLATIONS)/messages.pot .

## Merge the template into every catalog (new strings arrive empty: translate them, tests/test_translations.py checks)
i18n-update: i18n-extract
	$(BIN)/pybabel update -i $(TRANSLATIONS)/messages.pot -d $(TRANSLATIONS) --no-fuzzy-matching --ignore-obsolete --no-wrap

## The compiled catalogs (.mo, committed too) from the .po files
i18n-compile: $(MO_FILES)

$(TRANSLATIONS)/%/LC_MESSAGES/messages.mo: $(TRANSLATIONS)/%/LC_MESSAGES/messages.po | $(VENV)/.installed-app
	$(BIN)/pybabel compile -l $* -i $< -o $@

clean:
	rm -rf $(VENV) tests/js/node_modules .pytest_cache .ruff_cache
