# The two commands a new user needs:
#   make run    set up and run the appliance on its embedded default
#   make test   set up and run the tests (what CI runs)
#   make check  the fast loop while developing: lint, types and the quick tests, in parallel

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
APPLIANCE_HOME ?= $(CURDIR)/.appliance-home
export APPLIANCE_HOME
# `make run API_PORT=8010`, or the settings themselves (APPLIANCE_API_PORT, ...).
API_PORT ?= $(or $(APPLIANCE_API_PORT),8000)
PORTAL_PORT ?= $(or $(APPLIANCE_PORTAL_PORT),8001)
APP := $(BIN)/appliance

.PHONY: run test check lint typecheck perf pentest services browser clean wheelhouse deploy-tools

# pip re-runs only when pyproject.toml changes. torch is pinned to 2.13.0: on the
# project's machines that resolves to a local CPU wheel (see docs/operations.md). The run
# extra is the OpenAI SDK, so the README's Python snippet works in this virtualenv.
$(VENV)/.engine: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[engine,run]'
	touch $@

$(VENV)/.test: $(VENV)/.engine
	$(BIN)/pip install -q -e '.[engine,test]'
	touch $@

# Every port is checked before anything is printed or started; the demo key is kept in
# $(APPLIANCE_HOME)/demo-api-key (0600) and reused while it is valid.
run: export APPLIANCE_API_PORT = $(API_PORT)
run: export APPLIANCE_PORTAL_PORT = $(PORTAL_PORT)
run: $(VENV)/.engine
	@$(APP) init
	@test -f "$(APPLIANCE_HOME)/models/tiny/config.json" || \
		$(APP) model make-tiny "$(APPLIANCE_HOME)/models/tiny"
	@$(APP) model list | grep -q '^tiny	' || \
		$(APP) model add tiny --path "$(APPLIANCE_HOME)/models/tiny"
	@$(BIN)/python -c 'from appliance.serve import preflight; preflight()'
	@key=$$($(BIN)/python -c 'from appliance.bootstrap import print_demo_key; print_demo_key()') && \
	echo "" && \
	echo "Portal:  http://127.0.0.1:$(PORTAL_PORT)/  (user admin; its password was printed by the first 'appliance init')" && \
	echo "Auditor: the audit pages need the auditor role, which admin does not have. Create an auditor account:" && \
	echo "           APPLIANCE_HOME=$(APPLIANCE_HOME) $(APP) user create auditor --role auditor" && \
	echo "         (its password is the last line; an auditor signs in with it, no TOTP needed)" && \
	echo "Demo API key (kept in $(APPLIANCE_HOME)/demo-api-key, reused while valid). Try:" && \
	echo "" && \
	echo "  curl -s http://127.0.0.1:$(API_PORT)/v1/chat/completions \\" && \
	echo "    -H 'Authorization: Bearer $$key' \\" && \
	echo "    -H 'Content-Type: application/json' \\" && \
	echo "    -d '{\"model\": \"tiny\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}], \"max_tokens\": 16}'" && \
	echo ""
	$(APP) serve

services:
	@bash .ci/services

# Debian packages the deployment tests need (nginx, promtool, docker-compose, sudo, chrony).
deploy-tools:
	@bash .ci/deploy-tools

# Every wheel the appliance needs, in one directory, for air-gapped installs: ansible/
# copies it to the nodes and installs with pip --no-index. The dependencies (engine extra
# included; torch is the local CPU wheel) are fetched again only when pyproject.toml
# changes; the appliance's own wheel is rebuilt every time. vLLM, for GPU nodes, is not
# fetched here (it brings CUDA torch): wheelhouse/vllm-requirements.txt records what to
# download into wheelhouse/vllm/ on a connected machine like the GPU nodes.
# The wheels are resolved by the nodes' own Python (Debian 12's 3.11 by default, in a
# virtualenv of its own): a dependency marked for another patch release is not missed.
WHEELHOUSE := wheelhouse
WHEELHOUSE_PYTHON ?= /usr/bin/python3
VLLM_REQUIREMENT = $(shell sed -n 's/^vllm_package: *"\(.*\)"$$/\1/p' ansible/roles/vllm/defaults/main.yml)

.venv-wheelhouse/.created:
	$(WHEELHOUSE_PYTHON) -m venv .venv-wheelhouse
	.venv-wheelhouse/bin/pip install -q --upgrade pip
	touch $@

$(WHEELHOUSE)/.dependencies: pyproject.toml .venv-wheelhouse/.created
	.venv-wheelhouse/bin/pip wheel -q --wheel-dir $(WHEELHOUSE) '.[engine]'
	touch $@

wheelhouse: $(WHEELHOUSE)/.dependencies
	rm -f $(WHEELHOUSE)/appliance-*.whl
	.venv-wheelhouse/bin/pip wheel -q --no-deps --wheel-dir $(WHEELHOUSE) .
	@printf '%s\n' \
		'# The vLLM wheels for GPU nodes (ansible role vllm installs them with --no-index).' \
		'# On a connected machine with the GPU nodes'"'"' OS and Python, run:' \
		'#   pip download --dest $(WHEELHOUSE)/vllm -r $(WHEELHOUSE)/vllm-requirements.txt' \
		'$(VLLM_REQUIREMENT)' > $(WHEELHOUSE)/vllm-requirements.txt
	@echo "wheelhouse: $$(ls $(WHEELHOUSE)/*.whl | wc -l) wheels in $(WHEELHOUSE)/; GPU nodes also need $(VLLM_REQUIREMENT) (see $(WHEELHOUSE)/vllm-requirements.txt)"

browser:
	@bash .ci/chromium

# The SSO tests' OpenID provider (npm oidc-provider, locked in tests/oidc/).
node-deps:
	@bash .ci/node-deps

# lint-imports: the layering contracts of pyproject.toml ([tool.importlinter]).
lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache --no-logo

typecheck: $(VENV)/.test
	$(BIN)/mypy

test: $(VENV)/.test services browser node-deps deploy-tools wheelhouse lint typecheck
	$(BIN)/python -m pytest -m "not perf"

# The fast loop beside the full one (about three minutes on two cores): ruff, mypy and the
# tests that need no browser, no deployment, no training run and no benchmark, on two
# pytest-xdist workers (each with its own PostgreSQL databases and Redis database).
# `make test` stays the complete suite, and what CI runs.
check: $(VENV)/.test services lint typecheck
	$(BIN)/python -m pytest -n 2 -m "not slow and not browser and not deploy and not perf" -q

# The outside test's checklist (tests/pentest) against a freshly served appliance in a
# temporary home, on free loopback ports: every route as every role, CSRF, XSS in Chromium,
# bad input, sessions, lockout, the engine's port, the audit export, kills under load.
# Bounded (about three minutes on two cores, ten at most); exits 1 on a finding above low.
# `make pentest PENTEST_ARGS=--quick` runs the reduced pass of tests/pentest/test_pentest.py.
pentest: $(VENV)/.test browser
	$(BIN)/python -m tests.pentest $(PENTEST_ARGS)

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
	rm -rf $(VENV) .venv-wheelhouse .appliance-home .ruff_cache .mypy_cache *.egg-info
