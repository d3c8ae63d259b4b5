"""Config loading: defaults, round trips, and errors that name the file and the dotted key."""

from __future__ import annotations

import dataclasses
import glob
import os
import re
from pathlib import Path

import pytest
import yaml

import hwzswap.config as config_module
from hwzswap.config import ZswapConfig, ZswapKnobs, ZswapSettings, load_config
from hwzswap.errors import ConfigError, HwzswapError, InvalidParameterError

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
            z.verify_pages) == ("reclaim", "auto", None, 8, False)
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
    assert load_config({"zswap": {"async_max_batches": "auto"}}).zswap.async_max_batches == "auto"
    assert load_config({}).zswap.device_retry_s is None
    assert load_config({"zswap": {"device_retry_s": 2.5}}).zswap.device_retry_s == 2.5
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
    cfg.memory.total_ram_mb = 0
    with pytest.raises(ConfigError, match=r"memory\.total_ram_mb: must be an integer 1\.\."):
        load_config(cfg)
    assert isinstance(load_config(ZswapConfig()), ZswapConfig)
    with pytest.raises(dataclasses.FrozenInstanceError):  # the zswap knobs are checked when built
        cfg.zswap.max_pool_percent = 0  # type: ignore[misc]


def test_the_zswap_knobs_are_defined_once_for_the_file_and_the_engine():
    """One list of knobs: the config section and the engine policy are ZswapKnobs plus their
    own fields, every field has its check, and the module's YAML example shows every key."""
    from hwzswap.frontswap.policy import ZswapPolicy

    knobs = [f.name for f in dataclasses.fields(ZswapKnobs)]
    assert set(ZswapKnobs.CHECKS) == set(knobs)
    assert set(ZswapSettings.CHECKS) == {*knobs, "max_pool_percent"}
    assert {f.name for f in dataclasses.fields(ZswapSettings)} == {
        *knobs, "max_pool_percent", "compressor"}
    assert set(ZswapPolicy.CHECKS) == {f.name for f in dataclasses.fields(ZswapPolicy)} == {
        *knobs, "max_pool_pages"}
    assert set(load_config({}).to_dict()["zswap"]) == {*knobs, "max_pool_percent", "compressor"}
    policy = ZswapPolicy.from_config(load_config({"zswap": {"verify_pages": True}}))
    assert policy.verify_pages is True and policy.max_pool_pages == load_config({}).max_pool_pages
    for key in (*knobs, "max_pool_percent", "compressor"):
        assert f"\n      {key}: " in config_module.__doc__, key


@pytest.mark.parametrize(
    ("cls", "kwargs", "text"),
    [
        (ZswapKnobs, {"max_compression_ratio": 0}, "max_compression_ratio must be an integer 1..100"),
        (ZswapSettings, {"max_pool_percent": 101}, "max_pool_percent must be an integer 1..100"),
        (ZswapSettings, {"batching": "bulk"}, "batching must be one of page, folio, reclaim"),
        ("policy", {"max_pool_pages": 0}, "max_pool_pages must be an integer >= 1 or None"),
        ("policy", {"exclusive_loads": 1}, "exclusive_loads must be true or false, got 1"),
        ("policy", {"writeback_batch": 5000}, "writeback_batch must be an integer 1..4096"),
        ("policy", {"device_timeout_ms": float("nan")}, "device_timeout_ms must be a finite"),
    ],
)
def test_a_bad_knob_built_in_code_names_the_class_and_the_knob(cls, kwargs, text):
    from hwzswap.frontswap.policy import ZswapPolicy

    cls = ZswapPolicy if cls == "policy" else cls
    with pytest.raises(InvalidParameterError, match=re.escape(f"{cls.__name__}: {text}")):
        cls(**kwargs)


@pytest.mark.parametrize(
    ("raw", "key", "text"),
    [
        ({"zwsap": {}}, "zwsap", "unknown section"),
        ({"zswap": {"compressor": 842}}, "zswap.compressor",
         'got 842 (YAML read it as a number: write it quoted, "842")'),
        ({"zswap": {"compressor": {"name": 842}}}, "zswap.compressor.name", 'quoted, "842"'),
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
        ({"zswap": {"async_max_batches": 0}}, "zswap.async_max_batches", "auto or an integer"),
        ({"zswap": {"async_max_batches": 2.0}}, "zswap.async_max_batches", "integer 1..4096"),
        ({"zswap": {"async_max_batches": 4097}}, "zswap.async_max_batches", "integer 1..4096"),
        ({"zswap": {"async_max_batches": "many"}}, "zswap.async_max_batches", "got 'many'"),
        ({"zswap": {"device_timeout_ms": 0}}, "zswap.device_timeout_ms",
         "> 0 and <= 86400000 (a day) or null"),
        ({"zswap": {"device_retry_s": 0}}, "zswap.device_retry_s",
         "> 0 and <= 86400 (a day) or null"),
        ({"zswap": {"device_retry_s": "soon"}}, "zswap.device_retry_s",
         "> 0 and <= 86400 (a day) or null"),
        ({"zswap": {"device_timeout_ms": -5}}, "zswap.device_timeout_ms",
         "> 0 and <= 86400000 (a day) or null"),
        ({"zswap": {"device_timeout_ms": ".inf"}}, "zswap.device_timeout_ms", "finite number"),
        ({"zswap": {"device_timeout_ms": float("nan")}}, "zswap.device_timeout_ms", "finite"),
        ({"zswap": {"device_timeout_ms": True}}, "zswap.device_timeout_ms", "number"),
        ({"zswap": {"device_fail_after": 0}}, "zswap.device_fail_after", "integer 1..1000000"),
        ({"zswap": {"device_fail_after": False}}, "zswap.device_fail_after", "integer 1..1000000"),
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
        ({"swap": {"model": "custom", "read_mb_s": 0, "write_mb_s": 5}}, "swap.read_mb_s",
         ">= 0.001 and <= 1e+09 (1 KB/s to 1 PB/s)"),
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


# -- issue 16: bounded errors, alias bombs, NUL bytes, nr_pages limits ------------------------


def _alias_bomb(levels: int = 8, width: int = 9) -> str:
    """``levels`` lists of ``width`` aliases of the level below: ``width**levels`` leaves."""
    inner = ", ".join(["1"] * width)
    parts = [f"&l0 [{inner}]"]
    for i in range(1, levels + 1):
        parts.append(f"&l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "[" + ", ".join(parts) + "]"


def test_an_alias_bomb_fails_fast_and_small(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(f"zswap:\n  max_pool_percent: {_alias_bomb()}\n")
    assert path.stat().st_size < 600  # the 417-byte bomb, give or take
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: more than 10000 values once aliases are expanded")
    assert len(msg) < 300
    # Small enough to pass the size check, the value is still shown only as an excerpt.
    path.write_text(f"zswap:\n  max_pool_percent: {_alias_bomb(levels=3)}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: zswap.max_pool_percent: must be an integer 1..100, got [[1")
    assert "(9 items)" in msg and len(msg) < 300


def test_recursive_deep_and_huge_documents_are_refused(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("zswap: &a {compressor: {name: lz4, params: *a}}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: a value contains itself"):
        load_config(path)
    path.write_text("zswap: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match=rf"^{path}: invalid YAML: values nested more than 32"):
        load_config(path)
    path.write_text("# padding\n" * 200_000)
    with pytest.raises(ConfigError, match=rf"^{path}: larger than 1048576 bytes"):
        load_config(path)
    loop: dict = {}
    loop["zswap"] = loop
    with pytest.raises(ConfigError, match=r"^<dict>: a value contains itself"):
        load_config(loop)
    wide = {"zswap": {"compressor": {"name": "lz4", "params": {"x": list(range(20_000))}}}}
    with pytest.raises(ConfigError, match=r"^<dict>: more than 10000 values"):
        load_config(wide)


@pytest.mark.parametrize(
    ("text", "key", "expect"),
    [
        ("zswap: {max_pool_percent: " + "x" * 5000 + "}", "zswap.max_pool_percent",
         "... (5000 characters)"),
        ("zswap: {enabled: [" + ", ".join(["1"] * 3000) + "]}", "zswap.enabled",
         "(3000 items)"),
        ("swap: {model: {" + ", ".join(f"k{i}: {i}" for i in range(500)) + "}}", "swap.model",
         "(500 items)"),
        ("zswap:\n  ? " + "k" * 3000 + "\n  : 1", "zswap.'kkkk", "unknown key"),
        ("zswap: {compressor: " + "z" * 3000 + "}", "zswap.compressor", "is not a backend name"),
    ],
)
def test_bad_values_are_shown_as_bounded_excerpts(tmp_path, text, key, expect):
    path = tmp_path / "c.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: {key}"), msg[:200]
    assert expect in msg and len(msg) < 600 + len(str(path))  # the known keys included


def test_odd_scalars_are_config_errors(tmp_path):
    path = tmp_path / "c.yaml"
    for text, expect in [
        ("zswap: {max_pool_percent: 2020-13-45}", "invalid YAML value: ValueError: month"),
        ("zswap: {max_pool_percent: " + "9" * 5000 + "}", "invalid YAML value: ValueError"),
        ("? [a, b]\n: 1", "invalid YAML: .*unhashable key"),
        ("zswap: {compressor: {name: lz4, params: {1: 2}}}",
         r"zswap\.compressor\.params\.1: a parameter name must be a string"),
        ("1: 2", "1: unknown section"),
    ]:
        path.write_text(text + "\n")
        with pytest.raises(ConfigError, match=rf"^{path}: {expect}"):
            load_config(path)


def test_a_nul_byte_in_swap_path_is_a_clear_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"^<dict>: swap\.path: must not contain a NUL byte"):
        load_config({"swap": {"path": "a\0b"}})
    path = tmp_path / "c.yaml"
    path.write_text('swap: {path: "a\\0b"}\n')
    with pytest.raises(ConfigError, match=rf"^{path}: swap\.path: must not contain a NUL byte"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot contain a NUL byte"):
        load_config(str(tmp_path / "c\0.yaml"))


def test_nr_pages_is_limited_by_free_disk_unless_allow_large(tmp_path):
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    n = 1 << 30  # 4 TiB of swap file: more than this machine's free disk
    assert (n + 1) * 4096 > free
    raw = {"swap": {"path": str(tmp_path / "s.img"), "nr_pages": n}}
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    msg = str(info.value)
    assert msg.startswith("<dict>: swap.nr_pages: 1073741824 pages need a swap file of 4096.0 GiB")
    assert f"but {tmp_path} has" in msg and "swap.allow_large: true" in msg
    raw["swap"]["allow_large"] = True
    cfg = load_config(raw)
    assert cfg.swap.allow_large and cfg.swap.nr_pages == n
    assert load_config(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match=r"swap\.nr_pages: .* but /\S* has"):
        load_config({"swap": {"nr_pages": n}})  # a temporary file: the temporary directory
    assert load_config({"swap": {"nr_pages": 1024, "path": str(tmp_path / "s.img")}})


def test_swap_size_problems_name_the_numbers():
    from hwzswap.config import swap_size_problems

    assert swap_size_problems(1000, None, free_disk=1 << 30, available_memory=1 << 30) == []
    (disk,) = swap_size_problems(1000, "/x/s.img", free_disk=4096 * 1000,
                                 available_memory=1 << 30)
    assert disk.startswith("1000 pages need a swap file of 3.9 MiB (4100096 bytes), but /x has "
                           "3.9 MiB free")
    (mem,) = swap_size_problems(1 << 20, "/x/s.img", free_disk=1 << 40,
                                available_memory=3 << 20)
    assert mem.startswith("1048576 pages need 2.0 MiB of swap maps (2 bytes a page), more than "
                          "half of the 3.0 MiB of memory available")


def test_reuse_and_allow_large_keys():
    cfg = load_config({})
    assert cfg.swap.reuse is False and cfg.swap.allow_large is False
    cfg = load_config({"swap": {"reuse": True}})
    assert cfg.swap.reuse is True and cfg.to_dict()["swap"]["reuse"] is True
    for key in ("reuse", "allow_large"):
        with pytest.raises(ConfigError, match=rf"^<dict>: swap\.{key}: must be true or false"):
            load_config({"swap": {key: "yes"}})


def test_an_empty_config_file_name_is_named_as_such() -> None:
    with pytest.raises(ConfigError, match="an empty config file name"):
        load_config("")


def test_default_yaml_spells_every_key_out_with_the_built_in_values():
    """docs/bench.md relies on it (a key written in a file counts, even at its default):
    every key the loader knows is in configs/default.yaml, with the built-in value."""
    import yaml

    written = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    built_in = load_config({}).to_dict()

    def keys(d: dict, prefix: str = "") -> set[str]:
        out: set[str] = set()
        for k, v in d.items():
            if isinstance(v, dict) and k != "compressor":
                out |= keys(v, f"{prefix}{k}.")
            else:
                out.add(f"{prefix}{k}")
        return out

    assert keys(built_in) <= keys(written), keys(built_in) - keys(written)
    assert load_config(ROOT / "configs" / "default.yaml").to_dict() == built_in
