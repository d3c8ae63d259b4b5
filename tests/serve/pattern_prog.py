"""A program with a working set larger than its memory limit: it fills ``MiB`` of anonymous
memory with a per-page pattern (index, a pseudo-random run, compressible text), reads every
page back twice and exits 0 only if every byte is right. Usage: pattern_prog.py MiB."""

import sys

PAGE = 4096


def page(i: int) -> bytes:
    x = (i * 0x9E3779B97F4A7C15) & (2**64 - 1)
    rnd = bytearray()
    for _ in range(64):  # 512 pseudo-random bytes
        x ^= (x << 13) & (2**64 - 1)
        x ^= x >> 7
        x ^= (x << 17) & (2**64 - 1)
        rnd += x.to_bytes(8, "little")
    body = i.to_bytes(8, "little") + bytes(rnd) + (b"hwzswap page %08d " % i) * 200
    return body[:PAGE]


def main() -> int:
    mib = int(sys.argv[1])
    n = mib * 256
    mem = bytearray(n * PAGE)
    for i in range(n):
        mem[i * PAGE:(i + 1) * PAGE] = page(i)
    for _ in range(2):
        for i in range(n):
            if mem[i * PAGE:(i + 1) * PAGE] != page(i):
                print(f"page {i} is wrong", flush=True)
                return 1
    print(f"verified {n} pages", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
