# One entry point for users and CI. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT        := $(CURDIR)
VENV        := $(ROOT)/.venv
BIN         := $(VENV)/bin
PYTHON      ?= python3

# Which Debian the lab and the scenarios run: trixie (Debian 13, the default) or bookworm (Debian 12).
LAB_DISTRO  ?= trixie
# Users with registry access may name a published systemd image instead; then nothing is built.
LAB_IMAGE   ?= local/debian-systemd:$(LAB_DISTRO)
# Distributions the whole-site scenario runs on in `make test` (role scenarios run on LAB_DISTRO).
MATRIX_DISTROS ?= trixie bookworm
# Scenarios run by `make test`, as <dir>:<scenario>; the last ones also run on every MATRIX_DISTROS.
ROLE_SCENARIOS   := $(sort $(patsubst %/molecule.yml,%,$(wildcard roles/*/molecule/*/molecule.yml)))
MATRIX_SCENARIOS ?= molecule/site
# Multi-host scenarios run on LAB_DISTRO only (the rolling deploys under load).
TOP_SCENARIOS ?= molecule/deploy
# Scenarios run at once by `make test` (each logs to .cache/logs/).
JOBS ?= 2

export BUNDLE_ROOT := $(ROOT)
export ANSIBLE_CONFIG := $(ROOT)/ansible.cfg
export PATH := $(BIN):$(PATH)
export PY_COLORS ?= 0
export ANSIBLE_FORCE_COLOR ?= 0

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# ---- toolchain -------------------------------------------------------------------------------
$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { \
	  echo "make: $(PYTHON) cannot build a virtualenv: install python3-venv (apt-get install python3-venv)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Build .venv with the pinned toolchain (seconds when nothing changed)

.PHONY: engine
engine: ## Make sure a Docker engine answers (installs and starts Debian's docker.io as root)
	@scripts/ensure-engine

.PHONY: tools
tools: ## Install the load generator the deploy tests and the benchmarks use (wrk; root)
	@scripts/ensure-wrk

.PHONY: images
images: engine ## Build the lab base images (Debian 13 and 12) unless LAB_IMAGE names a published one
	@for d in $(sort $(LAB_DISTRO) $(MATRIX_DISTROS)); do \
	  img=$$( [[ $$d == $(LAB_DISTRO) ]] && echo "$(LAB_IMAGE)" || echo "local/debian-systemd:$$d" ); \
	  if [[ $$img == local/* ]]; then scripts/build-image "$$d" "$$img"; \
	  else docker image inspect "$$img" >/dev/null 2>&1 || docker pull "$$img"; fi; \
	done

# ---- the lab --------------------------------------------------------------------------------
.PHONY: lab
lab: venv images ## Build the lab (containers from inventories/lab), deploy site.yml on it, print where it answers
	LAB_IMAGE=$(LAB_IMAGE) ansible-playbook playbooks/lab.yml
	ansible-playbook playbooks/site.yml
	@scripts/lab-summary

.PHONY: deploy
deploy: venv ## Roll a new release out on the lab, one host at a time: make deploy [ARGS='-e rollout_canary=true']
	ansible-playbook playbooks/deploy.yml $(ARGS)

.PHONY: rollback
rollback: venv ## Roll the lab back to the release it ran before the last deploy
	ansible-playbook playbooks/rollback.yml $(ARGS)

.PHONY: bench
bench: ## Load the lab's site through the balancer with wrk; prints req/s, latency, errors per page
	@scripts/bench

.PHONY: lab-destroy
lab-destroy: venv ## Remove the lab containers (and the facts cached about them)
	ansible-playbook playbooks/lab-destroy.yml
	rm -rf .cache/facts

# ---- the demo app's own tests, against a real MariaDB and memcached on this machine -------------
APP_VENV := $(ROOT)/.cache/app-venv
APP_TEST_ENV := SCOREBOARD_DB_HOST=127.0.0.1 SCOREBOARD_DB_PORT=3306 SCOREBOARD_DB_USER=scoreboard \
	SCOREBOARD_DB_PASSWORD=scoreboard SCOREBOARD_CACHE_SERVERS=127.0.0.1:11211

$(APP_VENV)/.installed: app/requirements.txt app/requirements-test.txt
	$(PYTHON) -m venv $(APP_VENV)
	$(APP_VENV)/bin/pip install --quiet --disable-pip-version-check -r app/requirements-test.txt
	@touch $@

.PHONY: app-test
app-test: $(APP_VENV)/.installed ## The demo app's test suite (starts MariaDB and memcached here; root)
	bash app/tests/services.sh
	cd app && $(APP_TEST_ENV) $(APP_VENV)/bin/python -m pytest -q -p no:cacheprovider

# ---- checks ----------------------------------------------------------------------------------
.PHONY: lint
lint: venv ## yamllint, ansible-lint (production profile), syntax check of every playbook
	yamllint --strict .
	ansible-lint --offline
	@for p in playbooks/*.yml; do \
	  ansible-playbook --syntax-check "$$p" >/dev/null || { echo "syntax check failed: $$p" >&2; exit 1; }; \
	done; echo "syntax check: every playbook parses"

.PHONY: scenario
scenario: venv images ## Run one scenario: make scenario S=roles/common/molecule/default [LAB_DISTRO=bookworm]
	@test -n "$(S)" || { echo "make scenario: set S, e.g. S=roles/common/molecule/default (see 'make scenarios')" >&2; exit 2; }
	scripts/run-scenario "$(S)" "$(LAB_IMAGE)"

.PHONY: scenarios
scenarios: ## List the scenarios `make test` runs
	@printf '%s\n' $(TOP_SCENARIOS) $(MATRIX_SCENARIOS) $(filter-out $(MATRIX_SCENARIOS),$(ROLE_SCENARIOS))

.PHONY: test
test: lint app-test images tools ## The whole suite: lint, the app's tests, every scenario on Debian 13, the whole site on Debian 12 too
	JOBS=$(JOBS) scripts/run-suite "$(LAB_IMAGE)" $(TOP_SCENARIOS) $(MATRIX_SCENARIOS) $(filter-out $(MATRIX_SCENARIOS),$(ROLE_SCENARIOS))
	@for d in $(filter-out $(LAB_DISTRO),$(MATRIX_DISTROS)); do \
	  JOBS=$(JOBS) scripts/run-suite "local/debian-systemd:$$d" $(MATRIX_SCENARIOS) || exit 1; \
	done
	@echo "make test: all scenarios passed"

.PHONY: clean
clean: ## Remove test containers left behind by an interrupted run
	@ids=$$(docker ps -aq --filter label=owner=molecule 2>/dev/null); \
	  [[ -z $$ids ]] || docker rm -f $$ids >/dev/null; echo "removed test containers: $${ids:-none}"
