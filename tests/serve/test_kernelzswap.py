"""The kernel's zswap parameters saved and put back (:mod:`hwzswap.serve.kernelzswap`), and
the owner-record path that uses them (:func:`hwzswap.serve.chain.undo_owner`). Plain files
stand in for ``/sys/module/zswap/parameters``: the real ones are machine-wide."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwzswap.serve import chain, kernelzswap


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory of parameter files in place of zswap's (as the kernel shows them)."""
    d = tmp_path / "parameters"
    d.mkdir()
    for key, value in {"enabled": "N", "compressor": "lzo", "max_pool_percent": "20",
                       "shrinker_enabled": "N", "zpool": "zsmalloc"}.items():
        (d / key).write_text(f"{value}\n")
    monkeypatch.setattr(kernelzswap, "ZSWAP_SYS", d)
    return d


def _now(d: Path) -> dict[str, str]:
    return {p.name: p.read_text().strip() for p in d.iterdir() if p.is_file()}


def test_saved_parameters_are_put_back_enabled_first_and_only_where_changed(
        fake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saved = kernelzswap.save()
    assert saved == {"enabled": "N", "compressor": "lzo", "max_pool_percent": "20",
                     "shrinker_enabled": "N"}  # the run's keys only (not zpool)
    assert kernelzswap.available() and not kernelzswap.is_enabled()
    for key, value in (("compressor", "zstd"), ("shrinker_enabled", "Y"), ("enabled", "Y")):
        kernelzswap.write(key, value)
    assert kernelzswap.is_enabled()
    written: list[str] = []
    write = kernelzswap.write
    monkeypatch.setattr(kernelzswap, "write",
                        lambda key, value: (written.append(key), write(key, value))[1])
    back, changed, failed = kernelzswap.restore(saved)
    assert written == ["enabled", "compressor", "shrinker_enabled"]  # not max_pool_percent
    assert back == list(kernelzswap.KEYS) and failed == []
    assert changed == [f"{fake / k} back to {saved[k]}" for k in written]
    assert _now(fake) == {**saved, "zpool": "zsmalloc"}
    # only the keys asked for
    kernelzswap.write("enabled", "Y")
    kernelzswap.write("compressor", "zstd")
    assert kernelzswap.restore(saved, keys={"compressor"})[0] == ["compressor"]
    assert _now(fake)["enabled"] == "Y" and _now(fake)["compressor"] == "lzo"


def test_a_parameter_that_cannot_be_put_back_is_named_with_the_command(fake: Path) -> None:
    kernelzswap.write("enabled", "Y")
    kernelzswap.write("compressor", "zstd")
    (fake / "compressor").unlink()
    (fake / "compressor").mkdir()  # cannot be read or written now
    back, changed, failed = kernelzswap.restore({"enabled": "N", "compressor": "lzo"})
    assert back == ["enabled"] and changed == [f"{fake / 'enabled'} back to N"]
    assert len(failed) == 1 and failed[0].startswith(
        f"{fake / 'compressor'} is not back to 'lzo' (") and failed[0].endswith(
        f"`echo lzo > {fake / 'compressor'}`"), failed


def test_a_record_is_put_back_only_as_a_mapping_of_known_keys(fake: Path) -> None:
    kernelzswap.write("enabled", "Y")
    for junk in (None, [], "N", {}, 5):
        assert kernelzswap.restore_recorded(junk) == ([], [])
    assert _now(fake)["enabled"] == "Y"
    changed, failed = kernelzswap.restore_recorded({"enabled": "N", "zpool": "zbud",
                                                    "../x": "1"})
    assert changed == [f"{fake / 'enabled'} back to N"] and failed == []
    assert _now(fake)["enabled"] == "N" and _now(fake)["zpool"] == "zsmalloc"
    assert not (fake.parent / "x").exists()


def test_undo_owner_puts_the_recorded_parameters_back_and_says_what_it_could_not(
        fake: Path, tmp_path: Path) -> None:
    """What the server of a dead run and ``swap off`` of its chain both do: cgroups (none
    here; only ``hwzswap-*`` directories are ever touched) and the zswap parameters."""
    other = tmp_path / "not-hwzswap"
    other.mkdir()
    kernelzswap.write("enabled", "Y")
    kernelzswap.write("shrinker_enabled", "Y")
    (fake / "shrinker_enabled").unlink()
    (fake / "shrinker_enabled").mkdir()
    done, left = chain.undo_owner({"cgroups": [str(other)],
                                   "zswap": {"enabled": "N", "shrinker_enabled": "N"}})
    assert done == [f"{fake / 'enabled'} back to N"]
    assert len(left) == 1 and "shrinker_enabled is not back to 'N'" in left[0], left
    assert other.is_dir() and _now(fake)["enabled"] == "N"
    assert chain.undo_owner({}) == ([], [])
