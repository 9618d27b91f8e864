# mpc_bio: set-up and entry points. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: install run test test-slow bench clean default-surrogate

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel

# Order matters: CPU torch from disk first (a bare `torch` requirement pulls a CUDA build),
# then l4casadi built against it without build isolation, then the package itself.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install torch==2.13.0
	$(PIP) install scikit-build cmake ninja
	$(PY) -c "import l4casadi" 2>/dev/null || CMAKE_POLICY_VERSION_MINIMUM=3.5 $(PIP) install --no-build-isolation l4casadi
	$(PIP) install -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/mpc-bio run scenarios/closed_loop_mpc.toml --out runs/main --overwrite

test: install
	$(VENV)/bin/ruff check mpc_bio tests benchmarks
	$(VENV)/bin/ruff format --check mpc_bio tests benchmarks
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

bench: install
	for b in benchmarks/*.py; do [ $$b = benchmarks/report.py ] || $(PY) $$b || exit 1; done
	$(PY) benchmarks/report.py --readme

# Remake the shipped e_coli_core surrogate from scratch: the paper's grid with the l2 tie-break,
# refined where interpolation misses pFBA, then a 3x64 net with sharpened SiLU and an input warp
# (about 1 min sampling + 20 min training on one core).
default-surrogate: install
	$(VENV)/bin/mpc-bio sample e_coli_core --tie-break l2 --refine 0.005 --refine-depth 4 --no-figure --out runs/ecoli_refined_d4
	$(VENV)/bin/mpc-bio train --data runs/ecoli_refined_d4 --out mpc_bio/data/surrogates/e_coli_core \
	  --hidden 64,64,64 --sharpness 30 --input-knees 0.5,0.5 --epochs 1600 --patience 1600 --batch-size 1024 \
	  --growth-weight 10 --lbfgs-steps 0 --threads 1 --device cpu --evaluate 1000

clean:
	rm -rf $(VENV) runs .pytest_cache
