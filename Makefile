# Two commands do all the set-up on a fresh Debian machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the tests use for real: broker and its clients, the browser, independent checkers.
TEST_DEBS := mosquitto mosquitto-clients chromium rclone avahi-utils systemd iproute2 util-linux curl ffmpeg
PY313 ?= $(shell for p in $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.13*/bin/python3.13 2>/dev/null) $$(command -v python3.13); do "$$p" -V >/dev/null 2>&1 && { echo "$$p"; break; }; done)
VENV313 ?= .venv313

.PHONY: demo test bench clean system-test-deps

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "hub needs Python >= 3.11"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,embedded-broker]'
	touch $@

# The demo runs with the embedded broker if Mosquitto can't be installed.
demo: $(STAMP)
	@command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || \
	  ( $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients ) || \
	  echo "mosquitto could not be installed: the demo uses the embedded amqtt broker (demo only)"
	@command -v ffmpeg >/dev/null || \
	  ( $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg ) || \
	  echo "ffmpeg could not be installed: the demo library has pictures and documents but no films"
	-$(SUDO) systemctl disable --now mosquitto >/dev/null 2>&1
	$(VENV)/bin/hub demo $(DEMO_ARGS)

system-test-deps:
	@missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  $(SUDO) systemctl disable --now mosquitto >/dev/null 2>&1 || true; \
	fi

# pjlink-advance (an independent PJLink projector emulator) needs Python 3.13.
$(VENV313)/.installed:
	@test -n "$(PY313)" || { echo "Python 3.13 is needed for pjlink-advance (pyenv install 3.13)"; exit 1; }
	$(PY313) -m venv $(VENV313)
	$(VENV313)/bin/pip install -q pjlink-advance==0.2.0
	touch $@

# Each run gets its own temporary root: pytest prunes old runs' folders under a shared one.
test: $(STAMP) system-test-deps $(VENV313)/.installed
	tmp=$$(mktemp -d -t hub-tests-XXXXXX) && \
	  PYTEST_DEBUG_TEMPROOT=$$tmp scripts/in-netns $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; rm -rf "$$tmp"; exit $$rc

bench: $(STAMP) system-test-deps
	scripts/in-netns $(PY) bench/roundtrip.py
	scripts/in-netns $(PY) bench/memory.py

clean:
	rm -rf $(VENV) $(VENV313) build *.egg-info .pytest_cache .hypothesis
