# PAWHome: `make run` serves the gateway in embedded mode; `make test` runs the whole suite
# against real MariaDB/MySQL and Redis (see tests/services.py for how they are found).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000

.PHONY: run test install install-dev migrate seed worker beat flower supervisor openapi bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

migrate: install
	$(BIN)/python -m pawhome.migrate

seed: migrate
	$(BIN)/python -m pawhome.demo

run: seed
	$(BIN)/python run_gateway.py --port $(PORT)

test: install-dev
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

worker: install
	$(BIN)/python run_worker.py

supervisor: install
	mkdir -p var/log supervisor/run
	$(BIN)/supervisord -c supervisor/supervisord.conf

openapi: install
	$(BIN)/python -m gateway.openapi

bench: install-dev
	$(BIN)/python bench/bench_gateway.py

clean:
	rm -rf $(VENV) var/*.db var/log
