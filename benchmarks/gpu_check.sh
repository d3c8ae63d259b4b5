#!/usr/bin/env bash
# benchmarks/gpu_check.sh: lz4-opencl on a GPU, in one go, for a person who has one.
#
# What it does (issue 12), everything written under one results folder:
#   1. records the machine (nvidia-smi, CPU, kernel, Python);
#   2. makes a Python environment next to the results (a venv with the system's packages
#      visible, or `pip install --target` where venv is unavailable) and installs what is
#      missing: numpy, lz4, zstandard, pyyaml, rich, matplotlib, platformdirs, pyopencl, pytools,
#      and on a GPU the nvCOMP wheels and cupy matching the driver's CUDA major version;
#   3. points the OpenCL ICD loader at NVIDIA's OpenCL driver (libnvidia-opencl.so.1, e.g. in
#      /usr/local/nvidia/lib64) through an ICD file and OCL_ICD_VENDORS;
#   4. installs this checkout with `pip install --no-deps --no-build-isolation --target DIR .`
#      and runs everything from outside the source tree, against that copy;
#   5. runs the tuner (`hwzswap tune lz4-opencl --refresh`), benchmarks/bench_opencl.py with the
#      nvCOMP rows and the copy bandwidth, and the stack benchmark (`hwzswap bench --backends
#      lz4,lz4-opencl`, in the engine modes page,reclaim,async when `--batching` exists);
#   6. writes SUMMARY.md with the figures and the commands.
#
# Usage:
#   benchmarks/gpu_check.sh                 # on a machine with an NVIDIA GPU
#   benchmarks/gpu_check.sh --pocl --quick  # no GPU: the same steps on PoCL's CPU device
#   benchmarks/gpu_check.sh --dry-run       # print the plan (every command), run nothing
# Options:
#   --out DIR        results folder (default benchmarks/results/gpu_check_<host>_<UTC time>)
#   --python PY      interpreter to build the environment from (default: python3)
#   --env DIR        where the environment and the installed copy go (default:
#                    ~/.cache/hwzswap/gpu_check_env, reused by later runs; kept out of the
#                    results folder, which holds only what a reader needs)
#   --use-current    use PY as it is (no venv; still installs what is missing with its pip)
#   --pocl           run on PoCL's CPU device instead of a GPU (tests this script anywhere)
#   --quick          small sizes (about a minute on PoCL)
#   --pages N        pages for the stack benchmark (default 20000; 2000 with --quick)
#   --no-install     install nothing (every module must import already)
#   --dry-run        print the commands without running them
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=python3
OUT=""
ENVDIR=""
MODE=gpu
QUICK=0
DRY=0
INSTALL=1
USE_CURRENT=0
PAGES=""

while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --python) PY="$2"; shift 2 ;;
    --env) ENVDIR="$2"; shift 2 ;;
    --use-current) USE_CURRENT=1; shift ;;
    --pocl) MODE=pocl; shift ;;
    --quick) QUICK=1; shift ;;
    --pages) PAGES="$2"; shift 2 ;;
    --no-install) INSTALL=0; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${OUT:-$ROOT/benchmarks/results/gpu_check_$(hostname -s 2>/dev/null || echo host)_$STAMP}"
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac
ENVDIR="${ENVDIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hwzswap/gpu_check_env}"
case "$ENVDIR" in /*) ;; *) ENVDIR="$PWD/$ENVDIR" ;; esac
if [ "$MODE" = gpu ]; then DEVTYPE=gpu; else DEVTYPE=cpu; fi
if [ -z "$PAGES" ]; then
  if [ "$QUICK" = 1 ]; then PAGES=2000; else PAGES=20000; fi
fi
if [ "$MODE" = gpu ]; then
  if [ "$QUICK" = 1 ]; then BATCHES=4096,16384; REPEAT=3; else BATCHES=4096,16384,65536; REPEAT=5; fi
else
  if [ "$QUICK" = 1 ]; then BATCHES=1024,4096; REPEAT=1; else BATCHES=1024,4096,16384; REPEAT=5; fi
fi

mkdir -p "$OUT"
LOG="$OUT/log.txt"
: >"$LOG"
say() { echo "== $*" | tee -a "$LOG" >&2; }
# run CMD...: log it, then run it (or only print it with --dry-run)
run() {
  echo "\$ $*" >>"$LOG"
  if [ "$DRY" = 1 ]; then echo "[dry-run] $*"; return 0; fi
  "$@" 2>&1 | tee -a "$LOG"
  return "${PIPESTATUS[0]}"
}
# step NAME CMD...: like run, but a failure is recorded and the script goes on
FAILED=()
step() {
  local name="$1"; shift
  say "$name"
  if ! run "$@"; then FAILED+=("$name"); say "FAILED: $name (see log.txt)"; fi
}

say "gpu_check: mode $MODE, results in $OUT"

# -- 1. the machine ---------------------------------------------------------------------------
{
  echo "date: $STAMP"
  echo "host: $(hostname 2>/dev/null || true)"
  echo "kernel: $(uname -srm)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //')"
  echo "cpus: $(nproc 2>/dev/null || echo '?')"
  echo "python: $($PY -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || echo "$PY missing")"
  echo "checkout: $ROOT ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'no git'))"
} >"$OUT/machine.txt"
CUDA_MAJOR=""
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || true
  CUDA_MAJOR="$(sed -n 's/.*CUDA Version: *\([0-9]*\)\..*/\1/p' "$OUT/nvidia-smi.txt" | head -1)"
elif [ "$MODE" = gpu ]; then
  say "no nvidia-smi here: assuming CUDA 13 wheels; NVIDIA's OpenCL driver is looked for below (use --pocl to run on PoCL without a GPU)"
fi
CUDA_MAJOR="${CUDA_MAJOR:-13}"
cat "$OUT/machine.txt" >>"$LOG"

# -- 2. the Python environment ----------------------------------------------------------------
SITE="$ENVDIR/site"            # --target installs (where venv is unavailable)
INSTALLED="$ENVDIR/hwzswap"    # the installed copy of this checkout
PYBIN="$PY"
PIP_TARGET=""
if [ "$USE_CURRENT" = 0 ] && [ "$INSTALL" = 1 ]; then
  say "environment in $ENVDIR"
  if [ "$DRY" = 1 ]; then
    run "$PY" -m venv --system-site-packages "$ENVDIR/venv"
    PYBIN="$ENVDIR/venv/bin/python"
  elif [ -x "$ENVDIR/venv/bin/python" ] || "$PY" -m venv --system-site-packages "$ENVDIR/venv" >>"$LOG" 2>&1; then
    PYBIN="$ENVDIR/venv/bin/python"
  else
    say "python -m venv is unavailable: installing with pip --target $SITE"
    mkdir -p "$SITE"
    PIP_TARGET="$SITE"
  fi
fi
export PYTHONPATH="$INSTALLED${PIP_TARGET:+:$PIP_TARGET}"

pip_install() {  # pip_install PKG...: into the venv, or --target the site folder
  if [ -n "$PIP_TARGET" ]; then
    run "$PYBIN" -m pip install -q --target "$PIP_TARGET" "$@"
  else
    run "$PYBIN" -m pip install -q "$@"
  fi
}
# module:pip-name pairs the run needs; each missing one is installed
NEEDED="numpy:numpy lz4:lz4 zstandard:zstandard yaml:pyyaml rich:rich matplotlib:matplotlib
platformdirs:platformdirs pytools:pytools pyopencl:pyopencl numba:numba setuptools:setuptools wheel:wheel"
if [ "$MODE" = pocl ]; then NEEDED="$NEEDED pocl_binary_distribution:pocl-binary-distribution"; fi
MISSING=()
for pair in $NEEDED; do
  mod="${pair%%:*}"; pkg="${pair#*:}"
  if [ "$DRY" = 1 ] || ! "$PYBIN" -c "import $mod" >/dev/null 2>&1; then MISSING+=("$pkg"); fi
done
if [ "${#MISSING[@]}" -gt 0 ]; then
  if [ "$INSTALL" = 1 ]; then
    step "install ${MISSING[*]}" pip_install "${MISSING[@]}"
  else
    say "missing and --no-install: ${MISSING[*]}"
  fi
fi
# lzo is optional for this run (the lzo backend is then listed as unavailable)
if [ "$INSTALL" = 1 ] && ! "$PYBIN" -c "import lzo" >/dev/null 2>&1; then
  step "install python-lzo (optional)" pip_install python-lzo || true
fi
if [ "$MODE" = gpu ] && [ "$INSTALL" = 1 ]; then
  if [ "$DRY" = 1 ] || ! "$PYBIN" -c "import cupy; from nvidia import nvcomp" >/dev/null 2>&1; then
    step "install nvCOMP and cupy (CUDA $CUDA_MAJOR)" pip_install \
      "nvidia-nvcomp-cu$CUDA_MAJOR" "nvidia-libnvcomp-cu$CUDA_MAJOR" "cupy-cuda${CUDA_MAJOR}x"
  fi
fi

# -- 3. NVIDIA's OpenCL driver for the ICD loader ---------------------------------------------
if [ "$MODE" = gpu ]; then
  ICD=""
  for lib in /usr/local/nvidia/lib64/libnvidia-opencl.so.1 /usr/lib/x86_64-linux-gnu/libnvidia-opencl.so.1 \
             /usr/lib64/libnvidia-opencl.so.1 /usr/lib/libnvidia-opencl.so.1; do
    if [ -e "$lib" ]; then ICD="$lib"; break; fi
  done
  if [ -z "$ICD" ]; then
    ICD="$(ldconfig -p 2>/dev/null | sed -n 's/.*libnvidia-opencl.so.1 .*=> //p' | head -1)"
  fi
  if [ -z "$ICD" ] && [ "$DRY" = 1 ]; then ICD=/usr/local/nvidia/lib64/libnvidia-opencl.so.1; fi
  if [ -z "$ICD" ]; then
    say "libnvidia-opencl.so.1 not found: NVIDIA's OpenCL driver is not installed"; exit 1
  fi
  mkdir -p "$ENVDIR/vendors"
  echo "$ICD" >"$ENVDIR/vendors/nvidia.icd"
  export OCL_ICD_VENDORS="$ENVDIR/vendors"
  say "OpenCL ICD: $ICD (OCL_ICD_VENDORS=$OCL_ICD_VENDORS)"
fi
export POCL_CACHE_DIR="$ENVDIR/pocl-cache"
export HWZSWAP_CACHE_DIR="$OUT/tune-cache"   # the tuner measures afresh; its choice is kept here
mkdir -p "$POCL_CACHE_DIR" "$HWZSWAP_CACHE_DIR"

# -- 4. this checkout, installed; everything runs from outside the source tree -----------------
step "install hwzswap (--no-deps --target)" "$PYBIN" -m pip install -q --no-deps \
  --no-build-isolation --upgrade --target "$INSTALLED" "$ROOT"
if [ "$DRY" = 0 ] && ! (cd "$OUT" && "$PYBIN" -c "import hwzswap.pool._zscore" >/dev/null 2>&1); then
  say "the compiled parts are not importable: using their Python references (HWZSWAP_IMPL=py)"
  export HWZSWAP_IMPL=py
fi
cd "$OUT"
if [ "$DRY" = 0 ]; then
  where="$("$PYBIN" -c 'import hwzswap, os; print(os.path.dirname(hwzswap.__file__))')"
  case "$where" in "$ROOT"/*) say "hwzswap imports from the source tree ($where), not the copy"; exit 1 ;; esac
  say "hwzswap from $where"
fi
HW=("$PYBIN" -m hwzswap)

# -- 5. the runs --------------------------------------------------------------------------------
step "OpenCL devices" "$PYBIN" -c "import pyopencl as cl
for p in cl.get_platforms():
    for d in p.get_devices():
        print(repr(p.name.strip()), repr(d.name.strip()), cl.device_type.to_string(d.type), d.driver_version)"
step "tuner" "${HW[@]}" tune lz4-opencl --refresh --device-type "$DEVTYPE"
step "hwzswap backends (the tuned configuration in use)" "${HW[@]}" backends
if [ "$DRY" = 0 ]; then
  "${HW[@]}" tune lz4-opencl --device-type "$DEVTYPE" >"$OUT/tune.md" 2>>"$LOG" || true
  "${HW[@]}" tune lz4-opencl --device-type "$DEVTYPE" --json >"$OUT/tune.json" 2>>"$LOG" || true
fi
step "bench_opencl (with nvCOMP rows where they import)" "$PYBIN" "$ROOT/benchmarks/bench_opencl.py" \
  --device-type "$DEVTYPE" --batch-sizes "$BATCHES" --repeat "$REPEAT" --out "$OUT/opencl_$DEVTYPE"
BATCHING=()
if [ "$DRY" = 1 ] || "${HW[@]}" bench --help 2>/dev/null | grep -q -- "--batching"; then
  BATCHING=(--batching page,reclaim,async)
else
  say "this checkout's 'hwzswap bench' has no --batching: running its default engine mode only"
fi
step "stack benchmark" "${HW[@]}" bench --backends lz4,lz4-opencl "${BATCHING[@]}" --pages "$PAGES" \
  --json "$OUT/stack.json"
# The bench builds lz4-opencl with its default device choice ("auto"): a GPU whose driver did
# not load would leave PoCL's CPU device in its place, and the rows would still be there.
# So the rows must name a device of the type this check is for.
step "stack rows ran on the $DEVTYPE" "$PY" -c '
import json, sys
doc = json.load(open(sys.argv[1]))
rows = [r for r in doc["results"] if r["backend"] == "lz4-opencl"]
bad = [r["description"] for r in rows if "(" + sys.argv[2] + "," not in r["description"]]
print("\n".join(r["description"] for r in rows))
sys.exit(1 if not rows or bad else 0)
' "$OUT/stack.json" "$DEVTYPE"

# -- 6. the summary ---------------------------------------------------------------------------
if [ "$DRY" = 0 ]; then
  {
    echo "# lz4-opencl GPU check ($MODE), $STAMP"
    echo
    echo '```'
    cat "$OUT/machine.txt"
    [ -f "$OUT/nvidia-smi.txt" ] && sed -n '1,15p' "$OUT/nvidia-smi.txt"
    echo '```'
    echo
    echo "Commands: see log.txt (each one follows a \`\$\`). Failed steps: ${FAILED[*]:-none}."
    echo
    echo "## Tuner"
    echo
    cat "$OUT/tune.md" 2>/dev/null || echo "(no tuner output)"
    echo
    if [ -f "$OUT/opencl_$DEVTYPE.md" ]; then
      sed 's/^# /## /' "$OUT/opencl_$DEVTYPE.md"
    else
      echo "(no bench_opencl output)"
    fi
    echo
    echo "## Stack benchmark"
    echo
    echo "stack.json; the table:"
    echo
    echo '```'
    sed -n '/^\$ .*bench --backends/,$p' "$OUT/log.txt" | tail -n 40
    echo '```'
  } >"$OUT/SUMMARY.md"
  say "wrote $OUT/SUMMARY.md"
fi
if [ "${#FAILED[@]}" -gt 0 ]; then
  say "failed steps: ${FAILED[*]}"
  exit 1
fi
say "done: $OUT"
