"""No module of the package uses another module's private names.

Each module keeps its insides to itself: a name that starts with one underscore is used only in
the module that defines it. A package may import its own private *submodules* (a compiled part
such as ``pool/_zscore`` or its Python reference ``frontswap/_hotpath_py``), but only their
public names. (Issue 11: a renamed private method once sent every store to a fallback with the
whole suite green, because C code called it from outside.) The check reads the source: imports
(absolute and relative), attribute chains from an imported module, and ``getattr``-style calls
with a constant name; and the method names the C sources call.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import hwzswap

PACKAGE = Path(hwzswap.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_submodule(package: str, name: str) -> bool:
    """Whether ``package.name`` is a module or package of the source tree (a ``.py`` file, a
    package directory, or a compiled extension, built or not: its ``.c`` source)."""
    base = PACKAGE.parent.joinpath(*package.split("."))
    return ((base / f"{name}.py").exists() or (base / name / "__init__.py").exists()
            or (base / f"{name}.c").exists() or any(base.glob(f"{name}.*.so")))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _absolute(module: str | None, level: int, own_package: str) -> str | None:
    """The absolute name of a ``from`` import's module (``level`` dots: relative to
    ``own_package``)."""
    if level == 0:
        return module
    base = own_package.split(".")
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _root(node: ast.expr) -> str | None:
    """The name at the start of an attribute chain (``a`` in ``a.b.c``)."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


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
                if alias.name.split(".")[0] != "hwzswap":
                    continue
                modules.add(alias.asname or "hwzswap")
                parent, _, last = alias.name.rpartition(".")
                private = [p for p in alias.name.split(".") if _private(p)]
                if private and not (private == [last] and parent == own_package):
                    found.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            src = _absolute(node.module, node.level, own_package)
            if not src or src.split(".")[0] != "hwzswap":
                continue
            if any(_private(part) for part in src.split(".")) \
                    and src.rpartition(".")[0] != own_package:
                found.append(f"line {node.lineno}: from {src} import ...")
            for alias in node.names:
                if _is_submodule(src, alias.name):
                    modules.add(alias.asname or alias.name)
                    if _private(alias.name) and src != own_package:
                        found.append(f"line {node.lineno}: imports {src}.{alias.name}, a "
                                     f"private module of another package")
                elif _private(alias.name):
                    found.append(f"line {node.lineno}: imports {src}.{alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) \
                and _root(node.value) in modules:
            found.append(f"line {node.lineno}: uses {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("getattr", "setattr", "hasattr", "delattr") \
                and len(node.args) >= 2 and _root(node.args[0]) in modules \
                and isinstance(node.args[1], ast.Constant) \
                and isinstance(node.args[1].value, str) and _private(node.args[1].value):
            found.append(f"line {node.lineno}: uses {ast.unparse(node)}")
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
        "from .runner import _STORE1\n"  # relative, private
        "import hwzswap.frontswap.system\n"
        "hwzswap.frontswap.system._as_page\n"  # through the dotted module path
        "getattr(kernels, '_hidden')\n"  # by name
    )
    found = private_uses(probe, "hwzswap.bench.probe")
    text = "\n".join(found)
    for what in ("workload._ZS_SLACK", "pool._zscore", "z._crc32", "bench._probe_helper",
                 "runner._STORE1", "system._as_page", "'_hidden'"):
        assert what in text, found
    assert len(found) == 7, found
    own = private_uses("from hwzswap.pool import _zscore\n_zscore.ZsCore\n"
                       "import hwzswap.pool._zscore as zs\nfrom . import _handles\n",
                       "hwzswap.pool.zsmalloc_c")
    assert own == [], own  # a package's own private submodules, public names: fine


#: Private-looking names that are public API of the standard library (namedtuple's).
_STDLIB_API = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}


def foreign_member_uses(source: str) -> list[str]:
    """Every ``x._name`` in ``source`` where ``x`` is not ``self`` or ``cls`` (another
    object: ``self.zswap._load`` reaches into the zswap cache from the swap system) and
    ``_name`` is defined nowhere in the module (not a function, class, assigned name or
    attribute, argument or ``__slots__`` entry of its own), nor on a standard-library module
    it imports (``sys._current_frames``). A member of ``self`` inherited from a base class is
    not another object's. A heuristic: a name the module also uses for its own members
    (``self._lock`` beside ``other._lock``) is not flagged, whoever's object it is read on."""
    tree = ast.parse(source)
    own: set[str] = set()
    outside: set[str] = set()  # local names bound to modules from outside the package
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            own.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            own.add(node.id)
        elif isinstance(node, ast.arg):
            own.add(node.arg)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.isidentifier():
            own.add(node.value)  # __slots__ entries, getattr/setattr names
        elif isinstance(node, ast.Import):
            outside.update((a.asname or a.name).split(".")[0] for a in node.names
                           if a.name.split(".")[0] != "hwzswap")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] != "hwzswap":
            outside.update(a.asname or a.name for a in node.names)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _private(node.attr)) \
                or node.attr in own or node.attr in _STDLIB_API:
            continue
        value = node.value
        if isinstance(value, ast.Name) and value.id in ("self", "cls"):
            continue  # inherited
        if _root(value) in outside:
            continue
        found.append(f"line {node.lineno}: uses {ast.unparse(node)}")
    return found


def test_no_module_reaches_into_another_modules_objects() -> None:
    problems = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        uses = foreign_member_uses(path.read_text(encoding="utf-8"))
        if uses:
            problems[str(path.relative_to(PACKAGE.parent))] = uses
    assert not problems, problems


def test_the_object_check_finds_what_it_looks_for() -> None:
    probe = (
        "import sys\n"
        "class A:\n"
        "    __slots__ = ('_slot',)\n"
        "    def __init__(self, zswap):\n"
        "        self._mine = 1\n"
        "        self.zswap = zswap\n"
        "    def f(self, other):\n"
        "        self.zswap._load_checked(1)\n"  # another module's object: found
        "        other._mine, other._slot\n"  # this module's own names: fine
        "        self._inherited()\n"  # a base class's member: fine
        "        sys._current_frames()\n"  # the standard library: fine
        "        return other._replace(x=1)\n"  # namedtuple API: fine
    )
    found = foreign_member_uses(probe)
    assert len(found) == 1 and "self.zswap._load_checked" in found[0], found


def test_compiled_code_calls_only_public_names_that_exist() -> None:
    """The C core calls Python methods by name (the page allocator's, its pool class's error
    helpers, ``memoryview.release``): each must be public and exist, so a rename fails this
    test instead of an AttributeError (or a silent fallback) at run time."""
    from hwzswap.pool.allocator import PageAllocator
    from hwzswap.pool.zsmalloc_c import ZsPool

    names: set[str] = set()
    for source in PACKAGE.rglob("*.c"):
        # (str_arg_*: argument names for error messages, never called)
        names |= set(re.findall(r'INTERN\((?!str_arg_)\w+,\s*"(\w+)"\)', source.read_text()))
    assert names, "no method names found: the pattern no longer matches the C sources"
    for name in sorted(names):
        assert not _private(name), name
        assert any(hasattr(owner, name) for owner in (ZsPool, PageAllocator, memoryview)), name
