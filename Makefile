# Two commands do all the set-up on a fresh Debian machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the tests use for real: broker and its clients, the browser, independent checkers.
TEST_DEBS := mosquitto mosquitto-clients chromium rclone avahi-utils systemd iproute2 util-linux curl ffmpeg poppler-utils
PY313 ?= $(shell for p in $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.13*/bin/python3.13 2>/dev/null) $$(command -v python3.13); do "$$p" -V >/dev/null 2>&1 && { echo "$$p"; break; }; done)
VENV313 ?= .venv313
VENVHA ?= .venvha
HA_REQUIREMENTS := tests/homeassistant/requirements.txt

.PHONY: demo test bench clean system-test-deps peers313

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

# Independent peers that need Python 3.13: pjlink-advance (a PJLink projector emulator), aioshelly
# (Shelly Gen2 client) and hatasmota (Tasmota discovery) with aiomqtt as its MQTT glue. The stamp's
# name carries the list, so a venv made for an older list is topped up.
PEERS313 := pjlink-advance==0.2.0 aioshelly==14.0.1 hatasmota==0.10.2 aiomqtt==2.5.1
PEERS313_STAMP := $(VENV313)/.installed-$(shell echo '$(PEERS313)' | md5sum | cut -c1-8)
$(PEERS313_STAMP):
	@test -n "$(PY313)" || { echo "Python 3.13 is needed for the peers in $(VENV313) (pyenv install 3.13)"; exit 1; }
	test -x $(VENV313)/bin/python || $(PY313) -m venv $(VENV313)
	$(VENV313)/bin/pip install -q $(PEERS313)
	touch $@ $(VENV313)/.installed
peers313: $(PEERS313_STAMP)

# A real Home Assistant for the MQTT discovery test (it needs Python >= 3.13), complete up front:
# the test runs it with --skip-pip and without network. uv installs its ~200 packages in about 2
# minutes where pip took over 10; it lives beside the venv because HA pins a uv of its own.
$(VENVHA)/.installed: $(HA_REQUIREMENTS)
	@test -n "$(PY313)" || { echo "Python 3.13 is needed for Home Assistant (pyenv install 3.13)"; exit 1; }
	test -x $(VENVHA)/bin/python || $(PY313) -m venv $(VENVHA)
	test -x $(VENVHA)/.uv/bin/uv || $(VENVHA)/bin/pip install -q --target $(VENVHA)/.uv uv==0.13.9
	$(VENVHA)/.uv/bin/uv pip install -q --python $(VENVHA)/bin/python -r $(HA_REQUIREMENTS)
	touch $@

# Each run gets its own temporary root: pytest prunes old runs' folders under a shared one.
test: $(STAMP) system-test-deps $(PEERS313_STAMP) $(VENVHA)/.installed
	tmp=$$(mktemp -d -t hub-tests-XXXXXX) && \
	  PYTEST_DEBUG_TEMPROOT=$$tmp scripts/in-netns $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; rm -rf "$$tmp"; exit $$rc

bench: $(STAMP) system-test-deps
	scripts/in-netns $(PY) bench/roundtrip.py
	scripts/in-netns $(PY) bench/sync_bench.py --only first --only kill
	scripts/in-netns $(PY) bench/memory.py

clean:
	rm -rf $(VENV) $(VENV313) $(VENVHA) build *.egg-info .pytest_cache .hypothesis
