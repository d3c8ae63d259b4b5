"""Write a large, deterministic C file that makes ``gcc -O2`` use a lot of memory and time.

Many functions with loops, switches, struct arithmetic and inlinable helpers: the optimiser's
IR, alias sets and register allocator state are the anonymous memory the corpus captures.
Usage: gen_big_c.py OUT.c [FUNCTIONS]
"""

import random
import sys

out = sys.argv[1]
nfuncs = int(sys.argv[2]) if len(sys.argv) > 2 else 1500
rng = random.Random(42)
ops = ["+", "-", "*", "^", "|", "&"]

with open(out, "w") as f:
    f.write("#include <stdint.h>\n#include <string.h>\n\n")
    f.write("struct rec { int64_t a, b; uint32_t c[8]; double d; char name[16]; };\n\n")
    f.write("static inline uint32_t mix(uint32_t x) { x ^= x >> 16; x *= 0x7feb352dU; "
            "x ^= x >> 15; x *= 0x846ca68bU; return x ^ (x >> 16); }\n\n")
    for i in range(nfuncs):
        f.write(f"int64_t f{i}(struct rec *r, int n, const uint32_t *v) {{\n")
        f.write("  int64_t acc = 0; uint32_t h = 2166136261U;\n")
        f.write("  for (int i = 0; i < n; i++) {\n")
        f.write("    switch ((v[i] + i) % 7) {\n")
        for case in range(7):
            op = rng.choice(ops)
            k = rng.randint(1, 1 << 20)
            f.write(f"    case {case}: acc = (acc {op} (int64_t)mix(v[i] + {k}U)) + r[i & 7].c[{case}]; "
                    f"r[i & 7].b += acc >> {rng.randint(1, 9)}; break;\n")
        f.write("    default: break;\n    }\n")
        f.write(f"    for (int j = 0; j < 8; j++) {{ h = (h ^ r[j].c[(i + j) & 7]) * 16777619U; "
                f"r[j].d = r[j].d * {rng.random():.6f} + (double)(h & 0xff); }}\n")
        f.write("  }\n")
        if i:
            f.write(f"  if (n > {rng.randint(4, 64)}) acc += f{rng.randrange(i)}(r, n / 2, v + 1);\n")
        f.write(f"  memcpy(r[{i % 8}].name, \"func{i % 10000:05d}\", 10);\n")
        f.write("  return acc ^ (int64_t)h;\n}\n\n")
