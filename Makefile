# make report            the whole study on the embedded sample (smoke profile, CPU, minutes) -> output/smoke/report/
# make report PROFILE=cpu DATA=../shared/data/pascal-part OUT=.   the real runs -> report/, figures/, results/
# make test              the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= smoke
DATA ?= data/sample
SEEDS ?= 0 1
OUT ?= output/$(PROFILE)
FORCE ?=
EXTRA ?=
DEVICE ?= auto

.PHONY: setup report test pdf-deps lab clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

# LaTeX for nbconvert's PDF route; best effort: without root or apt the report is HTML only (and says so).
pdf-deps:
	@if command -v xelatex >/dev/null && command -v pandoc >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing LaTeX and pandoc for the PDF report (about 600 MB, once)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    texlive-xetex texlive-fonts-recommended texlive-plain-generic pandoc >/dev/null) \
	  || echo "could not install LaTeX; the report will be HTML only"; \
	else echo "xelatex/pandoc missing and no root: the report will be HTML only (see README)"; fi

report: setup pdf-deps
	$(PY) -m seglib pipeline --profile $(PROFILE) --data $(DATA) --out $(OUT) --seeds $(SEEDS) --device $(DEVICE) $(if $(FORCE),--force,) $(if $(EXTRA),--extra $(EXTRA),)

test: setup pdf-deps
	$(PY) -m pytest -q

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf output executed runs
