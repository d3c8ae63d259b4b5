# Everything a fresh clone needs (Debian, root, Python 3.11 + pip): `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export POCL_CACHE_DIR ?= $(CURDIR)/.pocl-cache
# PoCL's CPU device: let kernels use both cores and keep its cache in the tree.
export POCL_MAX_PTHREAD_COUNT ?= 2

.PHONY: install demo test bench clean lzo-headers

install: $(STAMP)

lzo-headers:
	@if [ ! -f /usr/include/lzo/lzo1x.h ]; then \
	  echo "installing liblzo2-dev (python-lzo builds against it)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq liblzo2-dev; \
	fi

$(STAMP): pyproject.toml setup.py hwzswap/pool/_zscore.c hwzswap/frontswap/_hotpath.c | lzo-headers
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[opencl,test]'
	mkdir -p $(POCL_CACHE_DIR)
	touch $(STAMP)

demo: install
	$(VENV)/bin/hwzswap backends
	$(VENV)/bin/hwzswap bench --workload roundtrip --json benchmarks/results/demo.json --plot benchmarks/results/demo.png

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(POCL_CACHE_DIR) .pytest_cache .hypothesis
