# The two commands a new user needs:
#   make run    set up and run the appliance on its embedded default
#   make test   set up and run the tests (what CI runs)

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
APPLIANCE_HOME ?= $(CURDIR)/.appliance-home
export APPLIANCE_HOME
API_PORT ?= 8000
PORTAL_PORT ?= 8001
APP := $(BIN)/appliance

.PHONY: run test lint typecheck perf services browser clean

# pip re-runs only when pyproject.toml changes. torch is pinned to 2.13.0: on the
# project's machines that resolves to a local CPU wheel (see README).
$(VENV)/.engine: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[engine]'
	touch $@

$(VENV)/.test: $(VENV)/.engine
	$(BIN)/pip install -q -e '.[engine,test]'
	touch $@

run: $(VENV)/.engine
	@$(APP) init
	@test -f "$(APPLIANCE_HOME)/models/tiny/config.json" || \
		$(APP) model make-tiny "$(APPLIANCE_HOME)/models/tiny"
	@$(APP) model list | grep -q '^tiny	' || \
		$(APP) model add tiny --path "$(APPLIANCE_HOME)/models/tiny"
	@key=$$($(APP) key create --user admin --name "make-run-$$(date +%s)" --expires-days 1 | tail -n 1) && \
	echo "" && \
	echo "Portal: http://127.0.0.1:$(PORTAL_PORT)/  (user admin; the password was printed by the first 'appliance init')" && \
	echo "A demo API key valid for one day was created. Try:" && \
	echo "" && \
	echo "  curl -s http://127.0.0.1:$(API_PORT)/v1/chat/completions \\" && \
	echo "    -H 'Authorization: Bearer $$key' \\" && \
	echo "    -H 'Content-Type: application/json' \\" && \
	echo "    -d '{\"model\": \"tiny\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}], \"max_tokens\": 16}'" && \
	echo ""
	$(APP) serve --api-port $(API_PORT) --portal-port $(PORTAL_PORT)

services:
	@bash .ci/services

browser:
	@bash .ci/chromium

# The SSO tests' OpenID provider (npm oidc-provider, locked in tests/oidc/).
node-deps:
	@bash .ci/node-deps

lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.test
	$(BIN)/mypy

test: $(VENV)/.test services browser node-deps lint typecheck
	$(BIN)/python -m pytest -m "not perf"

# The benchmark's peer, LiteLLM's proxy, lives in its own virtualenv so its pins
# never touch the appliance's; wrk generates the saturating load.
.venv-litellm/.installed:
	$(PYTHON) -m venv .venv-litellm
	.venv-litellm/bin/pip install -q --upgrade pip
	.venv-litellm/bin/pip install -q 'litellm[proxy]'
	touch $@

# The privacy benchmark's peer, Microsoft Presidio (spaCy and all), likewise: its runner
# uses only the pattern recognizers, on a NoOpNlpEngine (no language model to download).
.venv-presidio/.installed:
	$(PYTHON) -m venv .venv-presidio
	.venv-presidio/bin/pip install -q --upgrade pip
	.venv-presidio/bin/pip install -q presidio-analyzer
	touch $@

perf: $(VENV)/.test services .venv-litellm/.installed .venv-presidio/.installed
	@command -v wrk >/dev/null || bash .ci/apt-install wrk
	$(BIN)/python -m pytest -m perf tests/perf -s

clean:
	rm -rf $(VENV) .appliance-home .ruff_cache .mypy_cache *.egg-info
