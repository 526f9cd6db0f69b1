# Two commands: `make run` serves the demo portal, `make test` runs the whole suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := app

.PHONY: run test install lint bench clean

$(BIN)/flask: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/flask

install: $(BIN)/flask

run: install
	$(BIN)/flask init-db
	@test -f instance/.seeded || ($(BIN)/flask seed && touch instance/.seeded)
	PORTAL_PAYMENT_PROVIDERS=$${PORTAL_PAYMENT_PROVIDERS:-offline,test-checkout} \
	PORTAL_MAIL_URL=$${PORTAL_MAIL_URL:-} \
	PORTAL_STAFF_MFA=$${PORTAL_STAFF_MFA:-optional} \
	$(BIN)/flask run --port 5000 --with-threads

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check portal tests bench
	$(BIN)/ruff format --check portal tests bench

bench: install
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) instance .pytest_cache
