# cotrain — the two commands: `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test install system-deps bench clean help

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/:\t/'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $(STAMP)

install: $(STAMP) system-deps  ## create .venv and install cotrain (torch==2.13.0 pinned)

system-deps:  ## install espeak-ng with apt-get when missing (spoken-digits); never fatal
	@command -v espeak-ng >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing espeak-ng (apt-get)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null) \
	      || echo "espeak-ng could not be installed: spoken-digits will be skipped"; \
	  else echo "espeak-ng missing and apt-get unavailable: spoken-digits will be skipped"; fi; }

demo: install  ## generate the small world, co-train one model on 7 tasks, print per-task results
	$(BIN)/cotrain train --demo

test: install  ## run the test suite (pytest's exit 5, "no tests ran", is a failure)
	@$(BIN)/python -m pytest -n 2 -q tests; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest ran no tests: failing"; exit 1; fi; exit $$rc

bench: install  ## the experiments E1-E7 (small presets), the retrieval and overhead and shared-machine benchmarks
	$(BIN)/python benchmarks/e1_vl_multitask.py
	$(BIN)/python benchmarks/e2_vl_ablations.py
	$(BIN)/python benchmarks/e3_vl_transfer.py
	$(BIN)/python benchmarks/e4_schedules.py
	$(BIN)/python benchmarks/e5_cotrain_vs_single.py
	$(BIN)/python benchmarks/e6_unit.py
	$(BIN)/python benchmarks/e7_cvlp.py
	$(BIN)/python benchmarks/e7_cvlp.py --section E7R --tasks coco-ir --arms none mlm+itm
	$(BIN)/python benchmarks/retrieval_eval.py
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/shared_machine.py

clean:
	rm -rf $(VENV) runs outputs .cotrain_data
