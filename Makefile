# Two commands: `make run` serves the demo portal, `make test` runs the whole suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The package itself: the same commands work in a checkout and from an installed wheel.
export FLASK_APP := portal
# htmx from the htmx.org npm package, pinned and checked against its published integrity.
HTMX := portal/static/vendor/htmx.min.js
# The suite's accessibility and HTML checkers (axe-core, vnu-jar) from npm, pinned exactly in
# package.json with their integrity in package-lock.json, which `npm ci` checks. Install
# scripts are off (vnu-jar's would fetch a Java; the system's Java 17 runs vnu.jar).
NODE_TOOLS := node_modules/.package-lock.json

.PHONY: run test install lint bench wheel clean

$(BIN)/flask: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/flask

$(HTMX): portal/assets.py
	$(PY) portal/assets.py

$(NODE_TOOLS): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(NODE_TOOLS)

install: $(BIN)/flask $(HTMX) $(NODE_TOOLS)

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

# The wheel operators install (`pip install dist/doorstep-*.whl`), htmx and demo data inside.
wheel: install
	$(BIN)/pip wheel --quiet --no-deps --no-build-isolation --wheel-dir dist .

clean:
	rm -rf $(VENV) instance .pytest_cache dist build $(HTMX) node_modules
