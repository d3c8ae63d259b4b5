"""Config fuzz (issue 16): random and mutated YAML configs, and random values at every key.

Whatever the input, ``load_config`` returns a config or raises :class:`ConfigError` (never
another exception, never a crash or a hang) whose message stays bounded in size, whatever the
size of the bad value.
"""

from __future__ import annotations

import glob
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwzswap.config import ZswapConfig, load_config
from hwzswap.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SEEDS = [Path(p).read_text() for p in sorted(glob.glob(str(ROOT / "configs" / "*.yaml")))]
# Characters that change a YAML document's structure, plus a few that change its values.
YAML_CHARS = "&*[]{}:,-?!|>'\"\n #%@`\\0123456789.eEx~\t\0\x85\u2028"

SECTIONS = {
    "zswap": ["enabled", "compressor", "max_pool_percent", "max_compression_ratio",
              "accept_threshold_percent", "same_filled_pages", "exclusive_loads",
              "max_outstanding_writebacks", "writeback_batch", "background_writeback",
              "entry_checksum", "batching", "async_max_batches", "device_timeout_ms",
              "device_fail_after", "device_retry_s", "driver_watchdog", "verify_pages",
              "bogus"],
    "memory": ["total_ram_mb"],
    "pool": ["type", "max_pages_per_zspage"],
    "swap": ["path", "nr_pages", "model", "reuse", "allow_large", "latency_us", "read_mb_s",
             "write_mb_s"],
    "nope": ["x"],
}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40),
    st.sampled_from(["lz4", "zstd", "lzo", "842", "deflate", "lz4hc", "zbud", "zsmalloc",
                     "custom", "hdd", "async", "page", "", "\0", "a\0b", ".inf", "-1"]),
    st.integers(min_value=-(1 << 80), max_value=1 << 80),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.dictionaries(st.one_of(st.text(max_size=12), st.integers(), st.none()), inner,
                        max_size=6),
    ),
    max_leaves=30,
)

FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _load(source):
    """Load ``source``; only success or a bounded ConfigError may come out."""
    try:
        cfg = load_config(source)
    except ConfigError as exc:
        msg = str(exc)
        assert msg
        problems = len(getattr(exc, "errors", ())) or 1
        assert len(msg) <= 1000 * problems + 1000, msg[:300]
        return None
    assert isinstance(cfg, ZswapConfig)
    assert load_config(cfg.to_dict()) == cfg  # what loads, round-trips
    return cfg


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(YAML_CHARS) | st.characters(), max_size=200))
def test_random_yaml_text(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "c.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _load(path)


@FUZZ
@given(
    seed=st.sampled_from(SEEDS),
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.sampled_from(["insert", "delete", "replace"]),
                  st.text(alphabet=YAML_CHARS, min_size=1, max_size=4)),
        min_size=1, max_size=8,
    ),
)
def test_mutated_bundled_configs(tmp_path_factory, seed, edits):
    text = seed
    for at, how, chunk in edits:
        i = at % (len(text) + 1)
        if how == "insert":
            text = text[:i] + chunk + text[i:]
        elif how == "delete":
            text = text[:i] + text[i + len(chunk):]
        else:
            text = text[:i] + chunk + text[i + len(chunk):]
    path = tmp_path_factory.mktemp("fuzz") / "c.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _load(path)


@FUZZ
@given(
    picks=st.lists(
        st.tuples(st.sampled_from(sorted(SECTIONS)), st.integers(min_value=0), values),
        max_size=6,
    ),
    as_yaml=st.booleans(),
)
def test_random_values_at_every_key(tmp_path_factory, picks, as_yaml):
    raw: dict = {}
    for section, index, value in picks:
        keys = SECTIONS[section]
        raw.setdefault(section, {})[keys[index % len(keys)]] = value
    if as_yaml:
        path = tmp_path_factory.mktemp("fuzz") / "c.yaml"
        path.write_text(yaml.safe_dump(raw))
        _load(path)
    else:
        _load(raw)
