"""No module of the package uses another module's private names.

Each module keeps its insides to itself: a name that starts with one underscore is used only in
the module that defines it. A package may import its own private *submodules* (a compiled part
such as ``pool/_zscore`` or its Python reference ``frontswap/_hotpath_py``), but only their
public names. (Issue 11: a renamed private method once sent every store to a fallback with the
whole suite green, because C code called it from outside.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import hwzswap

PACKAGE = Path(hwzswap.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_submodule(package: str, name: str) -> bool:
    """Whether ``package.name`` is a module or package of the source tree (a ``.py`` file, a
    package directory or a compiled extension)."""
    base = PACKAGE.parent.joinpath(*package.split("."))
    return ((base / f"{name}.py").exists() or (base / name / "__init__.py").exists()
            or any(base.glob(f"{name}.*.so")))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(source: str, module: str, is_package: bool = False) -> list[str]:
    """Every use, in the ``source`` of ``module``, of a private name of another module of the
    package."""
    own_package = module if is_package else module.rpartition(".")[0]
    tree = ast.parse(source)
    found: list[str] = []
    modules: set[str] = set()  # local names bound to package modules
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "hwzswap":
                    modules.add(alias.asname or alias.name.split(".")[0])
                    if any(_private(part) for part in alias.name.split(".")):
                        found.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "hwzswap":
            if any(_private(part) for part in node.module.split(".")) \
                    and node.module.rpartition(".")[0] != own_package:
                found.append(f"line {node.lineno}: from {node.module} import ...")
            for alias in node.names:
                if _is_submodule(node.module, alias.name):
                    modules.add(alias.asname or alias.name)
                    if _private(alias.name) and node.module != own_package:
                        found.append(f"line {node.lineno}: imports {node.module}.{alias.name}, "
                                     f"a private module of another package")
                elif _private(alias.name):
                    found.append(f"line {node.lineno}: imports {node.module}.{alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) \
                and isinstance(node.value, ast.Name) and node.value.id in modules:
            found.append(f"line {node.lineno}: uses {node.value.id}.{node.attr}")
    return found


def test_no_module_uses_a_private_name_of_another() -> None:
    problems = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        uses = private_uses(path.read_text(encoding="utf-8"), _module_name(path),
                            path.name == "__init__.py")
        if uses:
            problems[str(path.relative_to(PACKAGE.parent))] = uses
    assert not problems, problems


def test_the_check_finds_what_it_looks_for() -> None:
    """The checker itself: each kind of use it must find, and what it must let pass."""
    probe = (
        "from hwzswap.bench.workload import _ZS_SLACK, build_workload\n"  # private name
        "from hwzswap.pool import _zscore\n"  # another package's private module
        "import hwzswap.frontswap.zswap as z\n"
        "z._crc32(b'')\n"  # a module's private attribute
        "from hwzswap.frontswap import kernels\n"
        "kernels.ZswapTree\n"  # public: fine
        "from hwzswap.bench import _probe_helper\n"  # not a module, a private name
    )
    found = private_uses(probe, "hwzswap.bench.probe")
    assert len(found) == 4, found
    own = private_uses("from hwzswap.pool import _zscore\n_zscore.ZsCore\n",
                       "hwzswap.pool.zsmalloc_c")
    assert own == []  # a package's own private submodule, public names: fine
    text = "\n".join(found)
    for what in ("workload._ZS_SLACK", "pool._zscore", "z._crc32", "bench._probe_helper"):
        assert what in text, found
