"""Corpus source: a Python program doing ordinary data work (no fixed end; capture pauses it).

Builds an in-memory "inventory" of records from generated text: dicts of str/int/float, lists,
sets, a word index, JSON strings, and numpy arrays (counts, float measurements, an int matrix),
then keeps updating them. Deterministic (seeded).
"""

import json
import random
import sys

import numpy as np

rng = random.Random(1234)
WORDS = [
    "alpha", "kernel", "page", "swap", "memory", "cache", "compress", "device", "queue", "batch",
    "latency", "throughput", "python", "object", "string", "list", "dict", "array", "thread",
    "lock", "buffer", "offset", "length", "header", "record", "index", "value", "client", "server",
]
CITIES = ["Berlin", "Austin", "Osaka", "Lyon", "Porto", "Quito", "Tunis", "Hanoi", "Perth"]

records = []
index: dict[str, list[int]] = {}
by_city: dict[str, set[int]] = {c: set() for c in CITIES}
blobs = []
arrays = []
step = 0
while True:
    for _ in range(2000):
        rid = len(records)
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 12))]
        rec = {
            "id": rid,
            "name": f"{rng.choice(WORDS).title()} {rng.choice(WORDS)}-{rid:06d}",
            "city": rng.choice(CITIES),
            "price": round(rng.uniform(1, 500), 2),
            "qty": rng.randint(0, 1000),
            "tags": words,
            "note": " ".join(words).capitalize() + ".",
        }
        records.append(rec)
        by_city[rec["city"]].add(rid)
        for w in set(words):
            index.setdefault(w, []).append(rid)
        if rid % 10 == 0:
            blobs.append(json.dumps(rec, sort_keys=True))
    step += 1
    if step % 5 == 0:
        n = 50_000
        arrays.append(np.cumsum(np.random.default_rng(step).integers(0, 4, n)))  # int64 counters
        arrays.append(np.random.default_rng(step).normal(20.0, 3.0, n // 2).round(2))  # readings
        arrays.append((np.arange(n // 4, dtype=np.int32) % 977).reshape(-1, 25))  # small ints
        totals = {c: sum(records[i]["price"] for i in list(ids)[:200]) for c, ids in by_city.items()}
        print(f"step {step}: {len(records)} records, {len(arrays)} arrays, {len(totals)} cities", flush=True)
    if len(records) > 400_000:  # keep memory bounded: drop the oldest quarter, keep going
        drop = len(records) // 4
        del records[:drop]
        del blobs[: len(blobs) // 4]
        del arrays[: len(arrays) // 4]
        sys.stdout.flush()
