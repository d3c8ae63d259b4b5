"""Config loading: defaults, round trips, and errors that name the file and the dotted key."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest
import yaml

from hwzswap.config import ZswapConfig, load_config
from hwzswap.errors import ConfigError, HwzswapError

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted(glob.glob(str(ROOT / "configs" / "*.yaml")))


def test_defaults_are_the_v9_settings_with_lzo():
    cfg = load_config({})
    z = cfg.zswap
    assert cfg.source == "<dict>"
    assert z.enabled is True
    assert z.compressor.name == "lzo"
    assert (z.max_pool_percent, z.max_compression_ratio, z.accept_threshold_percent) == (20, 80, 90)
    assert (z.max_outstanding_writebacks, z.writeback_batch) == (64, 16)
    assert z.same_filled_pages is True and z.exclusive_loads is False
    assert z.entry_checksum is False  # not a kernel knob: off, the kernel's behaviour and cost
    assert cfg.pool.type == "zsmalloc"
    assert cfg.swap.path is None and cfg.swap.model == "none"
    # 256 MiB = 65536 pages; 20 % of it; the accept threshold 90 % of that.
    assert cfg.max_pool_pages == 65536 * 20 // 100
    assert cfg.accept_pool_pages == cfg.max_pool_pages * 90 // 100


def test_default_yaml_selects_lzo():
    cfg = load_config(ROOT / "configs" / "default.yaml")
    assert cfg.zswap.compressor.name == "lzo"
    assert cfg.source.endswith("default.yaml")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: Path(p).name)
def test_every_bundled_config_loads_and_round_trips(path):
    cfg = load_config(path)
    again = load_config(cfg.to_dict())
    assert again == cfg
    assert load_config(yaml.safe_load(yaml.safe_dump(cfg.to_dict()))) == cfg


def test_entry_checksum_is_loaded_round_trips_and_reaches_the_policy():
    from hwzswap.frontswap.policy import ZswapPolicy

    cfg = load_config({"zswap": {"entry_checksum": True}})
    assert cfg.zswap.entry_checksum is True and cfg.to_dict()["zswap"]["entry_checksum"] is True
    assert load_config(cfg.to_dict()) == cfg
    assert ZswapPolicy.from_config(cfg).entry_checksum is True
    assert ZswapPolicy.from_config(load_config({})).entry_checksum is False


def test_engine_keys_default_load_and_round_trip():
    z = load_config({}).zswap
    assert (z.batching, z.async_max_batches, z.device_timeout_ms, z.device_fail_after,
            z.verify_pages) == ("reclaim", 4, None, 8, False)
    raw = {"batching": "async", "async_max_batches": 16, "device_timeout_ms": 2.5,
           "device_fail_after": 1, "verify_pages": True}
    cfg = load_config({"zswap": raw})
    for key, value in raw.items():
        assert getattr(cfg.zswap, key) == value
        assert cfg.to_dict()["zswap"][key] == value
    assert load_config(cfg.to_dict()) == cfg
    assert load_config(yaml.safe_load(yaml.safe_dump(cfg.to_dict()))) == cfg
    for mode in ("page", "folio", "reclaim", "async"):
        assert load_config({"zswap": {"batching": mode}}).zswap.batching == mode
    assert load_config({"zswap": {"device_timeout_ms": 100}}).zswap.device_timeout_ms == 100
    assert load_config({"zswap": {"device_timeout_ms": None}}).zswap.device_timeout_ms is None


def test_compressor_forms_and_param_defaults():
    cfg = load_config({"zswap": {"compressor": {"name": "lz4", "params": {"acceleration": 3}}}})
    assert cfg.zswap.compressor.name == "lz4"
    assert cfg.zswap.compressor.params == {"acceleration": 3}
    cfg = load_config({"zswap": {"compressor": "zstd"}})
    assert cfg.zswap.compressor.params["level"] >= 1  # defaults filled in from the backend


def test_load_config_revalidates_an_edited_config():
    cfg = load_config({})
    cfg.zswap.max_pool_percent = 0
    with pytest.raises(ConfigError, match=r"zswap\.max_pool_percent: must be an integer 1\.\.100"):
        load_config(cfg)
    assert isinstance(load_config(ZswapConfig()), ZswapConfig)


@pytest.mark.parametrize(
    ("raw", "key", "text"),
    [
        ({"zwsap": {}}, "zwsap", "unknown section"),
        ({"zswap": {"max_pool_precent": 5}}, "zswap.max_pool_precent", "unknown key"),
        ({"zswap": {"max_pool_percent": 250}}, "zswap.max_pool_percent",
         "must be an integer 1..100, got 250"),
        ({"zswap": {"max_pool_percent": "20"}}, "zswap.max_pool_percent", "got '20'"),
        ({"zswap": {"max_compression_ratio": 0}}, "zswap.max_compression_ratio", "1..100"),
        ({"zswap": {"accept_threshold_percent": 101}}, "zswap.accept_threshold_percent", "0..100"),
        ({"zswap": {"enabled": 1}}, "zswap.enabled", "must be true or false"),
        ({"zswap": {"same_filled_pages": "yes"}}, "zswap.same_filled_pages", "true or false"),
        ({"zswap": {"entry_checksum": "crc32"}}, "zswap.entry_checksum", "true or false"),
        ({"zswap": {"writeback_batch": 0}}, "zswap.writeback_batch", "1..4096"),
        ({"zswap": {"batching": "batch"}}, "zswap.batching", "page, folio, reclaim, async"),
        ({"zswap": {"batching": None}}, "zswap.batching", "page, folio, reclaim, async"),
        ({"zswap": {"async_max_batches": 0}}, "zswap.async_max_batches", "integer >= 1"),
        ({"zswap": {"async_max_batches": 2.0}}, "zswap.async_max_batches", "integer >= 1"),
        ({"zswap": {"device_timeout_ms": 0}}, "zswap.device_timeout_ms", "> 0 or null"),
        ({"zswap": {"device_timeout_ms": -5}}, "zswap.device_timeout_ms", "> 0 or null"),
        ({"zswap": {"device_timeout_ms": ".inf"}}, "zswap.device_timeout_ms", "finite number"),
        ({"zswap": {"device_timeout_ms": float("nan")}}, "zswap.device_timeout_ms", "finite"),
        ({"zswap": {"device_timeout_ms": True}}, "zswap.device_timeout_ms", "number"),
        ({"zswap": {"device_fail_after": 0}}, "zswap.device_fail_after", "integer >= 1"),
        ({"zswap": {"device_fail_after": False}}, "zswap.device_fail_after", "integer >= 1"),
        ({"zswap": {"verify_pages": "crc32"}}, "zswap.verify_pages", "true or false"),
        ({"zswap": {"max_outstanding_writebacks": True}}, "zswap.max_outstanding_writebacks",
         "integer"),
        ({"zswap": {"compressor": "lzz"}}, "zswap.compressor", "unknown compressor"),
        ({"zswap": {"compressor": {"name": "nope"}}}, "zswap.compressor.name",
         "unknown compressor"),
        ({"zswap": {"compressor": {"name": "lz4", "params": {"acceleration": 0}}}},
         "zswap.compressor.params.acceleration", ">= 1"),
        ({"zswap": {"compressor": {"name": "lz4", "params": {"level": 3}}}},
         "zswap.compressor.params.level", "unknown parameter 'level'"),
        ({"zswap": {"compressor": {"name": "lz4", "parms": {}}}}, "zswap.compressor.parms",
         "unknown key"),
        ({"zswap": {"compressor": 5}}, "zswap.compressor", "backend name"),
        ({"zswap": []}, "zswap", "must be a mapping"),
        ({"memory": {"total_ram_mb": 0}}, "memory.total_ram_mb", "integer"),
        ({"pool": {"type": "z3fold"}}, "pool.type", "zsmalloc, zbud"),
        ({"pool": {"max_pages_per_zspage": 17}}, "pool.max_pages_per_zspage", "1..16"),
        ({"pool": {"type": "zbud", "max_pages_per_zspage": 4}}, "pool.max_pages_per_zspage",
         "only applies to pool.type zsmalloc"),
        ({"swap": {"nr_pages": -1}}, "swap.nr_pages", "integer"),
        ({"swap": {"path": ""}}, "swap.path", "file path or null"),
        ({"swap": {"model": "tape"}}, "swap.model", "none, hdd, ssd, custom"),
        ({"swap": {"model": "custom", "read_mb_s": 100}}, "swap.write_mb_s",
         "required with model: custom"),
        ({"swap": {"model": "custom", "read_mb_s": 0, "write_mb_s": 5}}, "swap.read_mb_s", "> 0"),
        ({"swap": {"model": "hdd", "latency_us": 5}}, "swap.latency_us",
         "only applies with model: custom"),
    ],
)
def test_bad_values_name_the_dotted_key(raw, key, text):
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    msg = str(info.value)
    assert msg.startswith(f"<dict>: {key}: "), msg
    assert text in msg
    assert isinstance(info.value, HwzswapError)


def test_every_problem_is_reported_at_once(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "zswap:\n  max_pool_percent: 250\n  bogus: 1\n"
        "  compressor: {name: lz4, params: {acceleration: -1}}\n"
        "swap:\n  model: tape\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert msg.startswith(f"4 problems in {path}:")
    for key in ("zswap.max_pool_percent", "zswap.bogus", "zswap.compressor.params.acceleration",
                "swap.model"):
        assert f"{path}: {key}: " in msg
    assert len(info.value.errors) == 4


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("zswap:\n  max_pool_percent: 250\n")
    expect = rf"^{path}: zswap\.max_pool_percent: must be an integer 1\.\.100, got 250$"
    with pytest.raises(ConfigError, match=expect):
        load_config(str(path))

    path.write_text("zswap: [unclosed\n")
    with pytest.raises(ConfigError, match=rf"^{path}: invalid YAML"):
        load_config(path)

    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match=rf"^{path}: the top level must be a mapping"):
        load_config(path)

    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read the config file"):
        load_config(tmp_path / "missing.yaml")

    path.write_text("")  # an empty file is all defaults
    assert load_config(path) == load_config({})

    with pytest.raises(ConfigError, match="YAML file path, a dict or a ZswapConfig"):
        load_config(42)  # type: ignore[arg-type]


def test_custom_model_round_trip():
    cfg = load_config({"swap": {"model": "custom", "read_mb_s": 100, "write_mb_s": 50,
                                "latency_us": 10}})
    assert (cfg.swap.latency_us, cfg.swap.read_mb_s, cfg.swap.write_mb_s) == (10.0, 100.0, 50.0)
    assert load_config(cfg.to_dict()) == cfg
    cfg = load_config({"swap": {"model": "custom", "read_mb_s": 1, "write_mb_s": 2}})
    assert cfg.swap.latency_us == 0.0
