# rigctl: the two commands a newcomer needs.
#   make demo   install everything, bring up a lab host, run the main job against it
#   make test   install everything, run the test suite (one fault of each kind)
#   make test-slow   the rest of the fault matrix (every kill point, each variant)
# Everything else here is what those two stand on.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rigctl-installed
LAB_DIR ?= $(or $(RIGCTL_LAB_DIR),$(HOME)/.cache/rigctl/lab)

# Debian packages the controller needs: the lab (systemd-nspawn, debootstrap), SSH keys,
# a Python able to make virtualenvs, zstd (the tests pack Ollama archives as upstream does), and
# dpkg-dev and gnupg (the tests build and sign a double of NVIDIA's apt repository).
SYSTEM_PACKAGES := systemd-container debootstrap openssh-client iproute2 python3-venv ca-certificates zstd dpkg-dev gnupg

.PHONY: demo test test-slow test-gpu-builds setup system-packages lint dupcheck lab-down

demo: setup
	@echo "==> 1/4 bringing up one lab host (Debian bookworm under systemd-nspawn, sshd on 127.0.1.1)"
	$(BIN)/rigctl lab up 1
	@echo "==> 2/4 detecting it over SSH through pyinfra"
	$(BIN)/rigctl detect inventories/lab.py
	@echo "==> 3/4 planning: runtime and flags from the hardware and the model's real size"
	$(BIN)/rigctl plan inventories/lab.py
	@echo "==> 4/4 provisioning: build llama.cpp from source, fetch the model, serve it, smoke-check it"
	$(BIN)/rigctl provision inventories/lab.py
	@echo
	@echo "The lab host is still serving, for you to use:"
	@echo "  KEY=\$$(ssh -i $(LAB_DIR)/ssh/id_ed25519 -o UserKnownHostsFile=$(LAB_DIR)/ssh/known_hosts root@127.0.1.1 cat /etc/rigctl/rigctl-llama-server/api-key)"
	@echo "  curl -s http://127.0.1.1:8080/v1/chat/completions -H \"Authorization: Bearer \$$KEY\" -H 'Content-Type: application/json' -d '{\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}'"
	@echo "  $(BIN)/rigctl provision inventories/lab.py   # again: changes nothing"
	@echo "  $(BIN)/rigctl lab down                       # stop and remove the lab hosts"
	@echo "==> and a smoke benchmark of its endpoint: 1 and 4 concurrent users"
	$(BIN)/rigctl bench inventories/lab.py --concurrency 1,4 --duration 5 --max-tokens 64

# The exhaustive fault cases (marked `exhaustive`) are left to test-slow, and the GPU backends'
# builds on lab hosts (marked `gpu_build`) to test-gpu-builds: `make test test-slow
# test-gpu-builds` runs every test there is.
test: setup lint
	$(BIN)/python -m pytest -m "not exhaustive and not gpu_build"

test-slow: setup
	$(BIN)/python -m pytest -m exhaustive

test-gpu-builds: setup
	$(BIN)/python -m pytest -m gpu_build

setup: system-packages $(STAMP)

system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null; then \
	    echo "rigctl: error: needs these Debian packages (or your OS's equivalents): $$missing" >&2; exit 2; \
	  fi; \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "rigctl: error: run as root to install: $$missing" >&2; exit 2; \
	  fi; \
	  echo "==> installing system packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml setup.py
	@echo "==> creating $(VENV) and installing rigctl with its test dependencies"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,lab]'
	@touch $(STAMP)

lint: setup dupcheck
	$(BIN)/ruff check .
	$(BIN)/mypy rigctl cli roles deploys

# Repeated code in the core (pylint's duplicate-code check, configured in pyproject.toml).
dupcheck: setup
	$(BIN)/pylint rigctl cli roles deploys

lab-down: setup
	$(BIN)/rigctl lab down
