"""The YAML reading configs and sweep files share (hwzswap.yamlfile): a key written twice in
one mapping is an error naming the file and both lines, not a silent override; a misspelt key
is answered with the key it is close to."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from hwzswap.config import load_config
from hwzswap.errors import ConfigError
from hwzswap.sweep.spec import load_sweep
from hwzswap.yamlfile import bounded_loader, read_bounded

ROOT = Path(__file__).resolve().parents[1]


def _refusal(load: Callable[[Path], object], path: Path, text: str) -> str:
    """Write ``text`` to ``path`` and return the message of the :class:`ConfigError` that
    ``load`` (``load_config`` or ``load_sweep``) answers it with; loading it fails the test."""
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load(path)
    return str(exc.value)


def test_a_section_given_twice_in_a_config_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    # PyYAML kept only the second zswap: the lz4 silently became lzo
    msg = _refusal(load_config, path, "zswap:\n  compressor: lz4\nmemory:\n  total_ram_mb: 64\n"
                                      "zswap:\n  enabled: true\n")
    assert msg.startswith(f"{path}: ")
    assert "'zswap' is given twice" in msg and "line 5" in msg and "first on line 1" in msg


def test_a_key_given_twice_in_a_section_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("zswap:\n  compressor: lz4\n  max_pool_percent: 10\n  compressor: zstd\n")
    with pytest.raises(ConfigError, match=r"line 4, column 3: the key 'compressor' is given "
                                          r"twice .*first on line 2"):
        load_config(path)


def test_an_axis_given_twice_in_a_sweep_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("axes:\n  backend: [lz4]\n  backend: [zstd]\n")
    with pytest.raises(ConfigError, match=r"s\.yaml: .*'backend' is given twice"):
        load_sweep(path)


def test_merge_keys_may_still_be_overridden() -> None:
    text = "base: &b {enabled: true, x: 1}\nzswap:\n  <<: *b\n  enabled: false\n"
    raw = yaml.load(text, Loader=bounded_loader(16, 100))  # noqa: S506 (a SafeLoader)
    assert raw["zswap"] == {"enabled": False, "x": 1}


def test_the_shipped_configs_and_sweeps_have_no_key_twice() -> None:
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        load_config(path)
    for path in sorted((ROOT / "configs" / "sweeps").glob("*.yaml")):
        load_sweep(path)


def test_a_misspelt_config_key_gets_the_key_it_is_close_to(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    msg = _refusal(load_config, path, "zwsap:\n  x: 1\nzswap:\n  compresor: lz4\n"
                                      "  compressor: {nmae: lz4}\n"
                                      "pool:\n  totally_unlike_anything: 1\n")
    assert f"{path}: zwsap: unknown section; did you mean 'zswap'?" in msg
    assert f"{path}: zswap.compresor: unknown key; did you mean 'compressor'? (known keys:" in msg
    assert f"{path}: zswap.compressor.nmae: unknown key; did you mean 'name'?" in msg
    assert f"{path}: pool.totally_unlike_anything: unknown key (known keys:" in msg


def test_a_misspelt_sweep_setting_gets_the_setting_it_is_close_to(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    msg = _refusal(load_sweep, path, "axes:\n  backend: [lz4]\n  zwsap.max_pool_percent: [10]\n"
                                     "fixd: {}\nexclude: []\n")
    assert "fixd: unknown key; did you mean 'fixed'?" in msg
    assert "axes.zwsap.max_pool_percent: unknown setting" in msg
    assert "did you mean 'zswap.max_pool_percent'?" in msg
    path.write_text("axes:\n  backends: [lz4]\n")
    with pytest.raises(ConfigError, match=r"axes\.backends: unknown setting; did you mean "
                                          r"'backend'\?"):
        load_sweep(path)


@pytest.mark.parametrize("text, words", [
    ("zswap:\n\tcompressor: lz4\n", "line 2, column 1: found character '\\t' that cannot start "
                                    "any token (while scanning for the next token); YAML "
                                    "indents with spaces, not tabs"),
    ("zswap:\n  compressor: lz4\n   enabled: true\n",
     "line 3, column 11: mapping values are not allowed here"),
    ("zswap: [1, 2\n", "(while parsing a flow sequence (line 1))"),
])
def test_yaml_syntax_errors_are_one_line_with_the_place(text: str, words: str,
                                                        tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    msg = _refusal(load_config, path, text)
    assert msg.startswith(f"{path}: invalid YAML: line ") and words in msg
    assert "<unicode string>" not in msg and "^" not in msg and "\n" not in msg
    sweep = tmp_path / "s.yaml"
    sweep.write_text(text)
    with pytest.raises(ConfigError, match=r"s\.yaml: invalid YAML: line \d+, column \d+: "):
        load_sweep(sweep)


@pytest.mark.parametrize(("content", "expect"), [
    (b"zswap: {enabled: true}\n" + b"#" * (1 << 20), "larger than 1048576 bytes; not a {what}"),
    (b"zswap:\n  enabled: \xff\n", "not a UTF-8 text file"),
    (b"zswap: {max_pool_percent: 2020-13-45}\n", "invalid YAML value: ValueError: month"),
])
def test_configs_and_sweep_files_are_read_by_one_reader(content: bytes, expect: str,
                                                        tmp_path: Path) -> None:
    """The same broken file gets the same refusal from both loaders, naming the file and what
    it should have been (one reader, hwzswap.yamlfile.read_yaml_file)."""
    path = tmp_path / "f.yaml"
    path.write_bytes(content)
    for load, what in ((load_config, "config file"), (load_sweep, "sweep file")):
        with pytest.raises(ConfigError) as exc:
            load(path)
        assert str(exc.value).startswith(f"{path}: ")
        assert expect.format(what=what) in str(exc.value)
    for load, what in ((load_config, "config file"), (load_sweep, "sweep file")):
        with pytest.raises(ConfigError, match=f"an empty {what} name"):
            load("  ")
        with pytest.raises(ConfigError, match=f"a {what} path cannot contain a NUL byte"):
            load("a\0b.yaml")
        with pytest.raises(ConfigError, match=f"{tmp_path}/missing.yaml: cannot read the {what}"):
            load(tmp_path / "missing.yaml")


def test_a_bounded_read_stops_one_byte_past_the_limit(tmp_path: Path) -> None:
    """A file of exactly the limit is read whole; one byte more is refused without reading it
    all; one that cannot be read, or that is no regular file (an endless device, a FIFO that
    would block the reader forever), is named with the reason."""
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    kw = {"unreadable": "cannot read the thing", "too_large": "too big for a thing"}
    assert read_bounded(path, 100, ConfigError, **kw) == b"x" * 100
    with pytest.raises(ConfigError, match=rf"^{path}: too big for a thing$"):
        read_bounded(path, 99, ConfigError, **kw)
    with pytest.raises(ConfigError, match=r"^/dev/zero: cannot read the thing: a character "
                                          r"device, not a regular file \(give the path of a "
                                          r"file; standard input and pipes are not read here\)$"):
        read_bounded("/dev/zero", 1 << 20, ConfigError, **kw)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer: a blocking open would wait forever
    with pytest.raises(ConfigError, match=rf"^{fifo}: cannot read the thing: a FIFO, not a "):
        read_bounded(fifo, 100, ConfigError, **kw)
    with pytest.raises(ConfigError, match=rf"^{tmp_path}/gone: cannot read the thing: No such"):
        read_bounded(tmp_path / "gone", 100, ConfigError, **kw)
    with pytest.raises(ConfigError, match=rf"^{tmp_path}: cannot read the thing: a directory"):
        read_bounded(tmp_path, 100, ConfigError, **kw)


def test_a_config_or_sweep_file_may_come_through_a_pipe(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """``--config <(...)`` worked before FIFOs were refused: a pipe is read to its end; a FIFO
    no one writes to ends with a clear error after the wait (it blocked for ever once), and
    one that sends too much is refused at the limit."""
    import threading

    import hwzswap.yamlfile as yf

    fifo = tmp_path / "s.yaml"
    os.mkfifo(fifo)

    def write(text: bytes) -> threading.Thread:
        def run() -> None:
            try:
                with open(fifo, "wb") as f:  # blocks until the reader has opened it
                    f.write(text)
            except BrokenPipeError:  # the reader stopped at its limit
                pass
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    t = write(b"zswap:\n  compressor: lz4\n")
    assert load_config(fifo).zswap.compressor.name == "lz4"
    t.join(5)
    t = write(b"axes:\n  backend: [lz4, zstd]\n")
    assert load_sweep(fifo).axes == {"backend": ["lz4", "zstd"]}
    t.join(5)
    monkeypatch.setattr(yf, "PIPE_WAIT_S", 0.2)
    for load, what in ((load_config, "config file"), (load_sweep, "sweep file")):
        with pytest.raises(ConfigError, match=rf"^{fifo}: cannot read the {what}: the pipe sent "
                                              r"nothing for 0\.2 s"):
            load(fifo)
    t = write(b"#" * (2 << 20))
    with pytest.raises(ConfigError, match=rf"^{fifo}: larger than"):
        load_config(fifo)
    t.join(5)


@pytest.mark.parametrize("text", [
    "seed: [" + "1," * 400_000 + "1]\n",          # one flow list of 400001 values
    "seed:\n" + "  - x\n" * 200_000,              # a block list
    "m: {" + ", ".join(f"k{i}: 1" for i in range(60_000)) + "}\n",  # a wide mapping
])
def test_a_file_of_very_many_values_is_refused_while_composing(text: str, tmp_path: Path) -> None:
    """Refused once the limit of values is passed, before the rest is built: a 1 MiB file of
    small values took seconds and hundreds of MB to be refused after it was composed whole."""
    path = tmp_path / "f.yaml"
    path.write_text(text[: 1 << 20])
    for load, what in ((load_config, "config file"), (load_sweep, "sweep file")):
        with pytest.raises(ConfigError, match=rf"^{path}: more than 10000 values; not a {what}$"):
            load(path)
    # the composer stopped at the value past the limit, early in the file
    loader = bounded_loader(16, 100, max_nodes=10_000)(path.read_text())
    try:
        with pytest.raises(yaml.YAMLError, match="^more than 10000 values$"):
            loader.get_single_node()
        assert loader._nodes == 10_001
        assert loader.get_mark().index < len(path.read_text()) // 2
    finally:
        loader.dispose()


def test_a_config_through_a_pipe_numbered_past_1024_is_read(tmp_path: Path,
                                                             fds_past_1024: None) -> None:
    """A process with many files open (RLIMIT_NOFILE raised) opens the FIFO as a descriptor
    numbered 1024 or above, which select(2) cannot watch: it is still read (it was a bare
    ValueError)."""
    import threading

    fifo = tmp_path / "c.yaml"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb") as f:  # blocks until the reader has opened it
            f.write(b"zswap:\n  compressor: lz4\n")

    t = threading.Thread(target=write, daemon=True)
    t.start()
    assert load_config(fifo).zswap.compressor.name == "lz4"
    t.join(5)
