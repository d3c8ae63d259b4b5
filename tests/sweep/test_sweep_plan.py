"""Expanding a sweep: the product of the axes less exclusions, stable ids, each run's config."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwzswap.backends import Backend, register_backend
from hwzswap.backends import registry
from hwzswap.config import load_config
from hwzswap.sweep.plan import config_problem, expand, run_id
from hwzswap.sweep.resources import fits, ray_options, run_resources
from hwzswap.sweep.spec import load_sweep, parse_sweep

from sweep_helpers import SMALL_SWEEP, write_sweep


def test_small_sweep_runs(small_sweep: Path) -> None:
    plan = expand(load_sweep(small_sweep))
    assert (plan.combinations, plan.excluded, plan.collapsed) == (4, 1, 0)
    assert [r.coords for r in plan.runs] == [
        {"backend": "lz4", "zswap.max_compression_ratio": 90},
        {"backend": "lz4", "zswap.max_compression_ratio": 250},
        {"backend": "zstd", "zswap.max_compression_ratio": 90},
    ]
    first = plan.runs[0]
    assert first.run_id.startswith("lz4_90-")
    assert first.config["zswap"] == {"max_compression_ratio": 90,
                                     "compressor": {"name": "lz4", "params": {}}}
    assert first.bench_args() == ["--backends", "lz4", "--workload", "roundtrip",
                                  "--pages", "48", "--seed", "3", "--repeat", "1"]
    assert first.resources == {"CPU": 1.0}
    assert config_problem(first) is None
    assert "max_compression_ratio" in config_problem(plan.runs[1])


def test_ids_are_stable_and_follow_every_setting(tmp_path: Path, small_sweep: Path) -> None:
    ids = [r.run_id for r in expand(load_sweep(small_sweep)).runs]
    assert ids == [r.run_id for r in expand(load_sweep(small_sweep)).runs]
    assert len(set(ids)) == len(ids)
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.copy(small_sweep, moved / "s.yaml")
    assert ids == [r.run_id for r in expand(load_sweep(moved / "s.yaml")).runs]
    changed = dict(SMALL_SWEEP, fixed={**SMALL_SWEEP["fixed"], "seed": 4})
    other = [r.run_id for r in expand(load_sweep(write_sweep(tmp_path, changed, "t.yaml"))).runs]
    assert not set(ids) & set(other)
    assert [i.split("-")[0] for i in ids] == [i.split("-")[0] for i in other]


def test_params_apply_to_the_backends_that_take_them() -> None:
    spec = parse_sweep({"axes": {"backend": ["lz4", "zstd"], "params.acceleration": [1, 8],
                                 "params.level": [1, 3]}})
    plan = expand(spec)
    got = {(r.backend, r.coords.get("params.acceleration"), r.coords.get("params.level"))
           for r in plan.runs}
    assert got == {("lz4", 1, None), ("lz4", 8, None), ("zstd", None, 1), ("zstd", None, 3)}
    assert plan.collapsed == 4
    for r in plan.runs:
        assert config_problem(r) is None
    lz4_8 = next(r for r in plan.runs if r.coords.get("params.acceleration") == 8)
    assert lz4_8.config["zswap"]["compressor"] == {"name": "lz4", "params": {"acceleration": 8}}


def test_run_config_layers(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        "zswap:\n  compressor: {name: zstd, params: {level: 5}}\n  exclusive_loads: true\n"
        "memory: {total_ram_mb: 64}\n", encoding="utf-8")
    spec = load_sweep(write_sweep(tmp_path, {
        "axes": {"backend": ["zstd", "lz4"], "batching": ["page", "async"]},
        "fixed": {"config": "base.yaml", "pool.type": "zbud", "memory.total_ram_mb": 32}}))
    runs = {(r.backend, r.coords["batching"]): r for r in expand(spec).runs}
    zstd = runs[("zstd", "async")].config
    assert zstd["zswap"]["compressor"] == {"name": "zstd", "params": {"level": 5}}
    assert zstd["zswap"]["batching"] == "async"
    assert zstd["zswap"]["exclusive_loads"] is True
    assert zstd["memory"] == {"total_ram_mb": 32} and zstd["pool"] == {"type": "zbud"}
    # the base config's params belong to zstd: lz4 starts from its own defaults
    assert runs[("lz4", "page")].config["zswap"]["compressor"] == {"name": "lz4", "params": {}}
    cfg = load_config(zstd)
    assert cfg.zswap.compressor.params["level"] == 5 and cfg.pool.type == "zbud"


def test_exclude_with_a_list_of_values() -> None:
    spec = parse_sweep({"axes": {"backend": ["lz4", "zstd", "deflate"], "seed": [0, 1]},
                        "exclude": [{"backend": ["zstd", "deflate"], "seed": 1}]})
    plan = expand(spec)
    assert plan.excluded == 2
    assert {(r.backend, r.coords["seed"]) for r in plan.runs} == {
        ("lz4", 0), ("lz4", 1), ("zstd", 0), ("deflate", 0)}


@settings(max_examples=20)
@given(st.dictionaries(st.sampled_from(["seed", "pages", "zswap.writeback_batch"]),
                       st.lists(st.integers(1, 50), min_size=1, max_size=3, unique=True),
                       max_size=3))
def test_plan_is_the_product(axes: dict[str, list[int]]) -> None:
    spec = parse_sweep({"axes": {"backend": ["lz4", "zstd"], **axes}})
    plan = expand(spec)
    n = 2 * len(list(itertools.product(*axes.values())))
    assert len(plan.runs) == plan.combinations == n
    assert len({r.run_id for r in plan.runs}) == n
    for r in plan.runs:
        assert r.run_id == run_id(r.coords, r.settings, spec.base_dir)


def test_resources_declared_by_drivers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_registered", {})

    @register_backend
    class NxCard(Backend):
        name = "test-nx-card"
        resources = {"nx842": 1}

        def compress(self, page: Any) -> bytes | None:  # pragma: no cover - never run here
            return None

        def decompress(self, data: Any) -> bytes:  # pragma: no cover
            raise NotImplementedError

    @register_backend
    class PerParams(NxCard):
        name = "test-per-params"

        @classmethod
        def resources(cls, params: dict[str, Any]) -> dict[str, float]:  # type: ignore[override]
            return {"GPU": 2} if params.get("big") else {}

    assert run_resources("test-nx-card", {}) == {"CPU": 1.0, "nx842": 1.0}
    assert run_resources("test-per-params", {"big": True}) == {"CPU": 1.0, "GPU": 2.0}
    assert run_resources("test-per-params", {}) == {"CPU": 1.0}
    assert run_resources("lz4-opencl", {"device_type": "gpu"}) == {"CPU": 1.0, "GPU": 1.0}
    assert run_resources("lz4-opencl", {"device_type": "any"}) == {"CPU": 1.0}
    assert run_resources("lz4", {}, {"lz4": {"CPU": 4, "iaa": 1}}) == {"CPU": 4.0, "iaa": 1.0}
    plan = expand(parse_sweep({"axes": {"backend": ["test-nx-card", "lz4-opencl"],
                                        "params.device_type": ["gpu"]}}))
    assert {r.backend: r.resources for r in plan.runs} == {
        "test-nx-card": {"CPU": 1.0, "nx842": 1.0},
        "lz4-opencl": {"CPU": 1.0, "GPU": 1.0}}


def test_ray_options_and_fits() -> None:
    assert ray_options({"CPU": 1.0, "GPU": 1.0, "nx842": 1.0}) == {
        "num_cpus": 1.0, "num_gpus": 1.0, "resources": {"nx842": 1.0}}
    assert ray_options({"CPU": 2.0}) == {"num_cpus": 2.0, "num_gpus": 0.0}
    assert fits({"CPU": 1.0, "nx842": 1.0}, {"CPU": 8.0, "nx842": 2.0})
    assert not fits({"CPU": 1.0, "nx842": 1.0}, {"CPU": 8.0})
    assert not fits({"CPU": 4.0}, {"CPU": 2.0})
