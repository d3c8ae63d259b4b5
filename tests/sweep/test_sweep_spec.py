"""The sweep file: structure and run settings validated, every error naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwzswap.errors import ConfigError
from hwzswap.sweep.spec import SweepSpecError, load_sweep, parse_sweep

from sweep_helpers import SMALL_SWEEP, write_sweep


def _problems(tmp_path: Path, doc: object) -> str:
    path = tmp_path / "bad.yaml"
    import yaml

    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(SweepSpecError) as info:
        load_sweep(path)
    assert isinstance(info.value, ConfigError)
    return str(info.value)


def test_small_sweep_loads(small_sweep: Path) -> None:
    spec = load_sweep(small_sweep)
    assert list(spec.axes) == ["backend", "zswap.max_compression_ratio"]
    assert spec.fixed["pages"] == 48
    assert spec.exclude == [{"backend": ["zstd"], "zswap.max_compression_ratio": [250]}]
    assert spec.source == str(small_sweep)


@pytest.mark.parametrize(("doc", "key", "words"), [
    ({"axes": {"backend": ["lz4"]}, "runs": 3}, "runs", "unknown key"),
    ({"axes": {"backend": "lz4"}}, "axes.backend", "non-empty list"),
    ({"axes": {"backend": []}}, "axes.backend", "non-empty list"),
    ({"axes": {"backend": ["lz4"], "pages": [0, 64]}}, "axes.pages[0]", ">= 1"),
    ({"axes": {"backend": ["lz4"], "seed": [-1]}}, "axes.seed[0]", ">= 0"),
    ({"axes": {"backend": ["lz4", "lz4"]}}, "axes.backend", "listed twice"),
    ({"axes": {"backend": ["lz4"], "pagez": [1]}}, "axes.pagez", "unknown setting"),
    ({"axes": {"backend": ["lz4"], "zswapp.max_pool_percent": [1]}},
     "axes.zswapp.max_pool_percent", "dotted config key starts with one of"),
    ({"axes": {"backend": ["lz4"], "zswap.compressor": ["zstd"]}},
     "axes.zswap.compressor", "params.<name>"),
    ({"axes": {"backend": ["lz4"], "params.a.b": [1]}}, "axes.params.a.b", "one level"),
    ({"axes": {"backend": ["lz4"], "params.acceleration": [[1, 2]]}},
     "axes.params.acceleration[0]", "single value"),
    ({"axes": {"backend": ["no-such-codec"]}}, "axes.backend[0]", "no backend named"),
    ({"axes": {"pages": [64]}}, "axes.backend", "no backend"),
    ({"axes": {"backend": ["lz4"]}, "fixed": {"backend": "zstd"}}, "fixed.backend",
     "also an axis"),
    ({"axes": {"backend": ["lz4"]}, "fixed": {"repeat": 0}}, "fixed.repeat", ">= 1"),
    ({"axes": {"backend": ["lz4"]}, "exclude": [{"seed": 1}]}, "exclude[0].seed",
     "not an axis"),
    ({"axes": {"backend": ["lz4"]}, "exclude": [{"backend": "lz5"}]}, "exclude[0].backend",
     "never matches"),
    ({"axes": {"backend": ["lz4"]}, "exclude": {"backend": "lz4"}}, "exclude", "list"),
    ({"axes": {"backend": ["lz4"]}, "resources": {"lz4": {"GPU": -1}}}, "resources.lz4.GPU",
     "must be a number from 0 to 1e+15, got -1"),
    ({"axes": {"backend": ["lz4"]}, "resources": {"lz4": {"GPU": 10 ** 400}}},
     "resources.lz4.GPU", "must be a number from 0 to 1e+15, got "),  # was OverflowError
    ({"axes": {"backend": ["lz4"]}, "resources": {"lz4": {"GPU": float("inf")}}},
     "resources.lz4.GPU", "got inf"),
    ({"axes": {"backend": ["lz4"]}, "resources": {"lz4": {"GPU": float("nan")}}},
     "resources.lz4.GPU", "got nan"),
    ({"axes": {"backend": ["lz4"]}, "resources": {"lz4": {"GPU": True}}},
     "resources.lz4.GPU", "got True"),
    ({"axes": {"backend": ["lz4"]}, "fixed": {"config": "missing.yaml"}}, "fixed.config",
     "cannot read"),
])
def test_errors_name_file_and_key(tmp_path: Path, doc: dict, key: str, words: str) -> None:
    text = _problems(tmp_path, doc)
    assert f"bad.yaml: {key}: " in text
    assert words in text


def test_every_problem_at_once(tmp_path: Path) -> None:
    text = _problems(tmp_path, {"axes": {"backend": ["lz4"], "pages": [0]},
                                "fixed": {"seed": "x"}, "extra": 1})
    assert text.startswith("3 problems in ")
    for key in ("axes.pages[0]", "fixed.seed", "extra"):
        assert f": {key}: " in text


def test_not_a_mapping_and_bad_yaml(tmp_path: Path) -> None:
    assert "a sweep file is a mapping" in _problems(tmp_path, [1, 2])
    bad = tmp_path / "broken.yaml"
    bad.write_text("axes: [unclosed\n", encoding="utf-8")
    with pytest.raises(SweepSpecError, match="broken.yaml: invalid YAML"):
        load_sweep(bad)
    with pytest.raises(SweepSpecError, match="cannot read the sweep file"):
        load_sweep(tmp_path / "absent.yaml")


def test_paths_are_relative_to_the_sweep_file(tmp_path: Path) -> None:
    from hwzswap.bench.corpus import load_bundled
    from hwzswap.bench.workload import build_workload, save_workload

    sub = tmp_path / "sweeps"
    sub.mkdir()
    (sub / "base.yaml").write_text("zswap: {max_pool_percent: 30}\n", encoding="utf-8")
    (sub / "c.pages").write_bytes(bytes(4096))  # the files a sweep names must exist
    save_workload(build_workload("roundtrip", load_bundled(max_pages=8), seed=1), sub / "w.hwzwl")
    path = write_sweep(sub, {"axes": {"backend": ["lz4"], "corpus": ["bundled", "c.pages"]},
                             "fixed": {"config": "base.yaml", "workload": "w.hwzwl"}})
    spec = load_sweep(path)
    assert spec.axes["corpus"] == [None, str(sub / "c.pages")]
    assert spec.fixed["config"] == str(sub / "base.yaml")
    assert spec.fixed["workload"] == str(sub / "w.hwzwl")
    assert spec.base_configs[str(sub / "base.yaml")] == {"zswap": {"max_pool_percent": 30}}
    # a built-in workload stays a name
    assert parse_sweep({"axes": {"backend": ["lz4"], "workload": ["pressure"]}}
                       ).axes["workload"] == ["pressure"]


def test_config_values_are_left_to_the_run(tmp_path: Path) -> None:
    # 250 % is refused by the config loader, but per run (a FAILED record), not here.
    spec = load_sweep(write_sweep(tmp_path, SMALL_SWEEP))
    assert spec.axes["zswap.max_compression_ratio"] == [90, 250]


def test_a_bad_base_config_is_named(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("zswap: {max_pool_percent: 300}\n", encoding="utf-8")
    text = _problems(tmp_path, {"axes": {"backend": ["lz4"]}, "fixed": {"config": "base.yaml"}})
    assert "bad.yaml: fixed.config: " in text
    assert "base.yaml: zswap.max_pool_percent: must be an integer 1..100, got 300" in text


def test_hostile_yaml_is_refused_at_once(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    bomb.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(SweepSpecError, match="bomb.yaml: (invalid YAML: more than|more than)"):
        load_sweep(bomb)
    loop = tmp_path / "loop.yaml"
    loop.write_text("axes: &a {backend: [lz4], self: *a}\n", encoding="utf-8")
    with pytest.raises(SweepSpecError, match="loop.yaml"):
        load_sweep(loop)
    big = tmp_path / "big.yaml"
    big.write_text("#" * (2 << 20), encoding="utf-8")
    with pytest.raises(SweepSpecError, match="big.yaml: larger than"):
        load_sweep(big)


def test_shipped_sweeps_are_valid() -> None:
    from hwzswap.sweep.plan import config_problem, expand

    shipped = sorted((Path(__file__).resolve().parents[2] / "configs" / "sweeps").glob("*.yaml"))
    assert shipped
    for path in shipped:
        plan = expand(load_sweep(path))
        assert plan.runs and [config_problem(r) for r in plan.runs] == [None] * len(plan.runs)
    example = expand(load_sweep(shipped[0]))
    assert {r.coords["batching"] for r in example.runs} == {"page", "folio", "reclaim", "async"}
