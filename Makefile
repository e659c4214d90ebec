# make report            the whole study on the embedded sample (smoke profile, CPU, minutes) -> output/smoke/report/
# make report PROFILE=cpu DATA=../shared/data/pascal-part OUT=.   the real runs -> report/, figures/, results/
# make status ...        where each run of that study stands (same variables as report; MEASURE=1 times
#                         a few training steps here for runs not started, minutes on a CPU)
# make rerender          the committed report from results/ alone (no training)
# make inference PROFILE=paper DATA=... OUT=.   the experiments' inference images/s side by side -> OUT/results/inference.json
# make study DATA=../shared/data/pascal-part   the committed study (results/, report/): trains what is missing, renders
# make study-status ...  where the committed study stands (MEASURE=1 times a few steps here)
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
EXPERIMENTS ?=
DEVICE ?= auto

.PHONY: setup report status study study-status rerender inference test pdf-deps lab clean

# The committed study, in one place: the course report's protocol (paper) with three seeds, the experiments
# beyond it, the two scratch models at crop 256 (paper256; crop 512 waits for a GPU). Finished runs are
# skipped, committed records stand in for runs trained elsewhere, an unfinished run continues.
STUDY_VARS = PROFILE=paper OUT=. SEEDS="0 1 2" \
	EXPERIMENTS="deeplabv3plus_pretrained deeplabv3plus_pretrained_lovasz deeplabv3plus_lite2_scratch \
	deeplabv3plus_pretrained_hierarchy deeplabv3plus_pretrained_ce_lovasz deeplabv3plus_pretrained_best" \
	EXTRA="fcn_unet_scratch@paper256 deeplabv3plus_scratch@paper256"

# pip's own output goes to a log (its warnings are the machine's, not ours); a failure shows its tail
$(VENV)/.installed: pyproject.toml setup.py
	@echo "[setup] creating $(VENV) and installing seglib and its dependencies (minutes, once; log: $(VENV)/install.log)"
	@$(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --upgrade pip > $(VENV)/install.log 2>&1 || (tail -20 $(VENV)/install.log; exit 1)
	@$(PY) -m pip install -e '.[test]' >> $(VENV)/install.log 2>&1 || (tail -20 $(VENV)/install.log; exit 1)
	@touch $@
	@echo "[setup] done"

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
	$(PY) -m seglib pipeline --profile $(PROFILE) --data $(DATA) --out $(OUT) --seeds $(SEEDS) --device $(DEVICE) $(if $(FORCE),--force,) $(if $(EXTRA),--extra $(EXTRA),) $(if $(EXPERIMENTS),--experiments $(EXPERIMENTS),)

# where each run of that study stands (same variables as report); trains nothing
status: setup
	$(PY) -m seglib pipeline --status $(if $(MEASURE),--measure,) --profile $(PROFILE)$(if $(filter-out data/sample,$(DATA)), --data $(DATA),) --out $(OUT) --seeds $(SEEDS) $(if $(EXTRA),--extra $(EXTRA),) $(if $(EXPERIMENTS),--experiments $(EXPERIMENTS),)

study:
	@$(MAKE) --no-print-directory report $(STUDY_VARS)

study-status:
	@$(MAKE) --no-print-directory status $(STUDY_VARS)

# the committed report again from results/ alone: no training, no checkpoint (DATA=... where the
# photos are, if not in the folder the runs recorded)
rerender: setup pdf-deps
	$(PY) -m seglib pipeline --from-records --out . $(if $(filter-out data/sample,$(DATA)),--data $(DATA),)

# the report's inference speeds: the pretrained model and the experiments beyond the course report, timed
# in turn on the same photos (minutes on a CPU, nothing else running); then make rerender or make report
# INFERENCE: the experiments to time; empty, the pretrained model and those beyond the course report
INFERENCE ?=
inference: setup
	$(PY) -m seglib bench --experiments $(INFERENCE) --profile $(PROFILE) --data $(DATA) --device $(DEVICE) --json $(OUT)/results/inference.json

test: setup pdf-deps
	$(PY) -m pytest -q --durations=10

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf output executed runs
