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
# Distributions the whole-site scenario runs on in `make test` (role scenarios run on LAB_DISTRO, the
# database's on these too: ROLE_MATRIX_SCENARIOS).
MATRIX_DISTROS ?= trixie bookworm
# Scenarios run by `make test`: every role's on LAB_DISTRO; the whole site (which also holds the
# rolling deploys under load) on LAB_DISTRO and on every other MATRIX_DISTROS.
ROLE_SCENARIOS   := $(sort $(patsubst %/molecule.yml,%,$(wildcard roles/*/molecule/*/molecule.yml)))
MATRIX_SCENARIOS ?= molecule/site
# Role scenarios that also run on every other MATRIX_DISTROS: the database's, whose MariaDB differs
# (11.8 on Debian 13, 10.11 on Debian 12: TLS, binary log and mariadb-backup behaviour).
ROLE_MATRIX_SCENARIOS ?= roles/mysql/molecule/default roles/mysql_backup/molecule/default
# Other multi-host scenarios, on LAB_DISTRO: a startproject-style project of the user's own, deployed
# unchanged (docs/your-project.md).
SITE_SCENARIOS ?= molecule/project
# Scenarios run at once by `make test` (each logs to .cache/logs/).
JOBS ?= 2
# No-op converges `make converge-time` times.
RUNS ?= 3
# The suite's order: the whole site first, on the lab's distribution (the longest, with its rolling
# deploys) and on the others (its container names end in the distribution, so they run at once),
# then the other multi-host scenarios, then the role scenarios.
SUITE := $(foreach s,$(MATRIX_SCENARIOS),$(s)@$(LAB_IMAGE)) \
	$(foreach d,$(filter-out $(LAB_DISTRO),$(MATRIX_DISTROS)),$(foreach s,$(MATRIX_SCENARIOS),$(s)@local/debian-systemd:$(d))) \
	$(foreach s,$(SITE_SCENARIOS),$(s)@$(LAB_IMAGE)) \
	$(foreach s,$(filter-out $(MATRIX_SCENARIOS),$(ROLE_SCENARIOS)),$(s)@$(LAB_IMAGE)) \
	$(foreach d,$(filter-out $(LAB_DISTRO),$(MATRIX_DISTROS)),$(foreach s,$(ROLE_MATRIX_SCENARIOS),$(s)@local/debian-systemd:$(d)))

export BUNDLE_ROOT := $(ROOT)
export ANSIBLE_CONFIG := $(ROOT)/ansible.cfg
export PATH := $(BIN):$(PATH)
# The rolling-deploy tests of the whole-site scenario run on the lab's image only.
export ROLLOUT_TEST_IMAGE := $(LAB_IMAGE)
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
	@scripts/ensure-deb wrk wrk

# One image per distribution; scripts/build-image rebuilds one only when its recipe changed.
define build_images
	@for d in $(1); do \
	  img=$$( if [[ $$d == $(LAB_DISTRO) ]]; then echo "$(LAB_IMAGE)"; else echo "local/debian-systemd:$$d"; fi ); \
	  if [[ $$img == local/* ]]; then scripts/build-image "$$d" "$$img"; \
	  elif ! docker image inspect "$$img" >/dev/null 2>&1; then docker pull "$$img"; fi; \
	done
endef

.PHONY: images
images: engine ## Build the lab's base image (LAB_DISTRO only) unless LAB_IMAGE names a published one
	$(call build_images,$(LAB_DISTRO))

.PHONY: test-images
test-images: engine ## Build the base image of every distribution `make test` runs (LAB_DISTRO and MATRIX_DISTROS)
	$(call build_images,$(sort $(LAB_DISTRO) $(MATRIX_DISTROS)))

# ---- the lab --------------------------------------------------------------------------------
.PHONY: plan
plan: venv ## Print the site plan per host: numbers, why, live values, N-1; changes nothing (PLAN_ARGS='-i inventories/<site>/hosts.yml')
	@scripts/plan-report $(PLAN_ARGS)

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

# The benchmark's own virtualenv: the plot's matplotlib, which the test suite does not need.
BENCH_VENV := $(ROOT)/.cache/bench-venv
$(BENCH_VENV)/.installed: requirements-bench.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	@touch $@

.PHONY: bench
bench: venv tools $(BENCH_VENV)/.installed ## Tuned vs stock on the lab, side by side (about 10 min): .cache/bench/latest/
	$(BENCH_VENV)/bin/python scripts/bench.py

.PHONY: drills
drills: venv tools ## Game-day drills on the lab, one fault at a time under load (a few min): .cache/drills/latest/ [ARGS='--only apache-kill --check']
	$(BIN)/python scripts/drills.py $(ARGS)

.PHONY: converge-time
converge-time: ## Time a no-op site.yml on the running lab, RUNS times (3): each run, then min and median
	@RUNS=$(RUNS) scripts/converge-time

.PHONY: lab-destroy
lab-destroy: venv ## Remove the lab containers (and the facts cached about them)
	ansible-playbook playbooks/lab-destroy.yml
	rm -rf .cache/facts

# ---- the demo app's own tests, against a real MariaDB and memcached on this machine -------------
APP_VENV := $(ROOT)/.cache/app-venv
APP_TEST_ENV := DATABASE_URL='mysql://scoreboard:scoreboard@127.0.0.1:3306/scoreboard?charset=utf8mb4' \
	CACHE_URL=pymemcache://127.0.0.1:11211

$(APP_VENV)/.installed: app/requirements.txt app/requirements-test.txt
	$(PYTHON) -m venv $(APP_VENV)
	$(APP_VENV)/bin/pip install --quiet --disable-pip-version-check -r app/requirements-test.txt
	@touch $@

.PHONY: app-test
app-test: $(APP_VENV)/.installed ## The demo app's test suite (starts MariaDB and memcached here; root)
	bash app/tests/services.sh
	cd app && $(APP_TEST_ENV) $(APP_VENV)/bin/python -m pytest -q -p no:cacheprovider

# ---- checks ----------------------------------------------------------------------------------
# Every shell script the repository runs on the controller (by its #! line), for shellcheck; the
# templated scripts under roles/ are Jinja and are checked on the hosts by their tests.
SHELL_SCRIPTS = $(shell git ls-files -- scripts .ci app | xargs -r grep -lsE '^\#!.*\b(ba)?sh\b' 2>/dev/null)

.PHONY: lint
lint: venv ## shellcheck, yamllint, ansible-lint (production profile), syntax check of every playbook
	@scripts/ensure-deb shellcheck shellcheck
	shellcheck -S style $(SHELL_SCRIPTS)
	yamllint --strict .
	ansible-lint --offline
	@for p in playbooks/*.yml; do \
	  ansible-playbook --syntax-check "$$p" >/dev/null || { echo "syntax check failed: $$p" >&2; exit 1; }; \
	done; echo "syntax check: every playbook parses"

.PHONY: scenario
# The load generator too: the multi-host scenarios' deploy tests and drills run wrk.
scenario: venv images tools ## Run one scenario: make scenario S=roles/common/molecule/default [LAB_DISTRO=bookworm]
	@test -n "$(S)" || { echo "make scenario: set S, e.g. S=roles/common/molecule/default (see 'make scenarios')" >&2; exit 2; }
	scripts/run-scenario "$(S)" "$(LAB_IMAGE)"

.PHONY: scenarios
scenarios: ## List the scenarios `make test` runs, as <scenario>@<image>
	@printf '%s\n' $(SUITE)

.PHONY: script-test
script-test: venv engine ## Tests of the controller's code: the scripts' exit statuses, the image build (root), the plugins
	pytest -q -p no:cacheprovider tests

# Every Debian package `make test` needs on this machine, installed one after the other before the
# checks below run side by side (two apt-get runs at once would fail on apt's lock): wrk, shellcheck,
# debootstrap for the images, MariaDB and memcached for the app's tests.
.PHONY: test-deps
test-deps: engine
	@scripts/ensure-deb wrk wrk
	@scripts/ensure-deb shellcheck shellcheck
	@scripts/ensure-deb debootstrap debootstrap
	@scripts/ensure-deb mariadbd mariadb-server
	@scripts/ensure-deb memcached memcached

# Lint, the script and app tests and the image builds share nothing, so they run side by side (each
# target's output is printed whole when it ends); then the scenarios, JOBS at a time.
.PHONY: test
test: venv test-deps ## The whole suite: lint, script and app tests, every scenario; prints where the time went
	$(MAKE) --no-print-directory --output-sync=target -j4 lint script-test app-test test-images
	JOBS=$(JOBS) scripts/run-suite $(SUITE)
	@echo "make test: all scenarios passed"

.PHONY: clean
clean: ## Remove test containers left behind by an interrupted run
	@ids=$$(docker ps -aq --filter label=owner=molecule 2>/dev/null || true); \
	  [[ -z $$ids ]] || docker rm -f $$ids >/dev/null; echo "removed test containers: $${ids:-none}"
