# Everything a fresh clone needs (Debian, root, Python 3.11 + pip): `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export POCL_CACHE_DIR ?= $(CURDIR)/.pocl-cache
# PoCL's CPU device: let kernels use both cores and keep its cache in the tree.
export POCL_MAX_PTHREAD_COUNT ?= 2

.PHONY: install demo test bench clean system-packages

install: $(STAMP)

# Debian packages: liblzo2-dev (python-lzo builds against it) and pocl-opencl-icd (a PoCL
# whose kernel library picks a build variant by CPU features: the pocl wheel that pyopencl
# brings asks LLVM for the host CPU by name, and fails on CPUs newer than its LLVM, such as
# AMD's family 26, with "unknown target CPU 'generic'"). Its platform is listed first.
system-packages:
	@missing=""; \
	[ -f /usr/include/lzo/lzo1x.h ] || missing="$$missing liblzo2-dev"; \
	[ -f /etc/OpenCL/vendors/pocl.icd ] || missing="$$missing pocl-opencl-icd"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml setup.py hwzswap/pool/_zscore.c hwzswap/frontswap/_hotpath.c | system-packages
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[opencl,test,ray]'
	mkdir -p $(POCL_CACHE_DIR)
	touch $(STAMP)

# The engine designs side by side: v9's page-at-a-time store beside reclaim passes and async
# submission, for a CPU codec, the OpenCL batch device, zstd and the emulated NX-842.
DEMO_BACKENDS ?= lz4,lz4-opencl,zstd,842-nx
demo: install
	$(VENV)/bin/hwzswap backends
	$(VENV)/bin/hwzswap bench --workload roundtrip --backends $(DEMO_BACKENDS) --batching page,reclaim,async --repeat 1 --json benchmarks/results/demo.json --plot benchmarks/results/demo.png

# The whole suite on the compiled parts, then the pool and frontswap suites again on their
# Python references (HWZSWAP_IMPL=py), as python-lz4 tests both of its backends.
test: install
	$(PY) -m pytest -q
	HWZSWAP_IMPL=py $(PY) -m pytest -q tests/pool tests/frontswap

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(POCL_CACHE_DIR) .pytest_cache .hypothesis

# The compiled parts under AddressSanitizer and UndefinedBehaviorSanitizer: scripts/asan.sh
# rebuilds _zscore and _hotpath with -fsanitize=address,undefined into build/asan (the normal
# in-place build stays as it is), then runs tests/pool and tests/frontswap/test_hotpath.py
# against that build with libasan/libubsan preloaded, including a long seeded fuzz of the pool
# and the index against their Python references (HWZSWAP_FUZZ_ROUNDS rounds of 400 operations
# each, default 1000; `make test` runs 4). Any sanitizer report fails it (reports are kept in
# build/asan/report.*). About 3 minutes on 2 busy cores; `make asan HWZSWAP_FUZZ_ROUNDS=20` is
# a short version (under a minute) for CI.
.PHONY: asan
asan: install
	HWZSWAP_FUZZ_ROUNDS=$(or $(HWZSWAP_FUZZ_ROUNDS),1000) PY=$(PY) sh scripts/asan.sh
