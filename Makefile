# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DEALERCARE_DATABASE_URL ?= sqlite:///$(CURDIR)/var/dealercare.db

.PHONY: run test install bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# the demo's SMS go to a fake Twilio API the app starts on this port (README, bot/demo.py)
run: export DEALERCARE_FAKE_TWILIO_PORT ?= 8001
run: $(STAMP)
	$(BIN)/dealercare db upgrade
	$(BIN)/dealercare demo load
	$(BIN)/dealercare serve

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/pipeline.py

clean:
	rm -rf $(VENV) var .pytest_cache
