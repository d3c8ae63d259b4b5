#!/bin/sh
# make asan: the compiled parts (hwzswap.pool._zscore, hwzswap.frontswap._hotpath) rebuilt
# with AddressSanitizer + UndefinedBehaviorSanitizer into build/asan (the in-place build that
# every other run uses is left alone), then the pool and index suites, with a long seeded
# random-operation fuzz (HWZSWAP_FUZZ_ROUNDS rounds of 400 operations each on the pool and on
# the index, default 1000), run against that build with the sanitizer runtimes preloaded (the
# interpreter itself is not instrumented). Any report stops the run and fails it. Needs gcc
# with libasan and libubsan (Debian: part of gcc). ASAN_TESTS overrides the tests to run.
set -eu
PY=${PY:-.venv/bin/python}
CC=${CC:-gcc}
OUT=build/asan
export HWZSWAP_FUZZ_ROUNDS="${HWZSWAP_FUZZ_ROUNDS:-1000}"
TESTS=${ASAN_TESTS:-tests/pool tests/frontswap/test_hotpath.py}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g"
rm -rf "$OUT"
mkdir -p "$OUT"
CC="$CC" CFLAGS="$SAN" LDFLAGS="-fsanitize=address,undefined" \
    "$PY" setup.py -q build_ext --force --build-lib "$OUT/lib" --build-temp "$OUT/tmp" \
    > "$OUT/build.log" 2>&1 || { cat "$OUT/build.log"; exit 1; }
ASAN_LIB=$("$CC" -print-file-name=libasan.so)
UBSAN_LIB=$("$CC" -print-file-name=libubsan.so)
for lib in "$ASAN_LIB" "$UBSAN_LIB"; do
    [ -f "$lib" ] || { echo "asan: $lib not found (install gcc's sanitizer runtimes)"; exit 1; }
done
# detect_leaks=0: CPython keeps its own memory to the end, which LeakSanitizer would report.
# PYTHONMALLOC=malloc: every allocation goes through malloc, where ASan can see it.
status=0
# Reports go to files ($OUT/report.PID): pytest captures stderr, and a report ends the process.
ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:exitcode=86:log_path=$OUT/report" \
UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$OUT/report" \
PYTHONMALLOC=malloc HWZSWAP_ASAN_LIB="$OUT/lib" PYTHONPATH=scripts \
LD_PRELOAD="$ASAN_LIB $UBSAN_LIB" \
    "$PY" -m pytest -q -p asan_ext -p no:cacheprovider $TESTS \
    > "$OUT/test.log" 2>&1 || status=$?
tail -n 15 "$OUT/test.log"
if ls "$OUT"/report.* > /dev/null 2>&1; then
    head -n 40 "$OUT"/report.*
    echo "asan: sanitizer reports: $(ls "$OUT"/report.*)"
    exit 1
fi
[ "$status" -eq 0 ] || { echo "asan: the tests failed (exit $status), see $OUT/test.log"; exit 1; }
echo "asan: no sanitizer reports ($HWZSWAP_FUZZ_ROUNDS fuzz rounds); log in $OUT/test.log"
