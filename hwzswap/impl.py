"""The one switch between the compiled parts and their Python references.

``HWZSWAP_IMPL=c`` (the default) uses the compiled, self-contained parts: the zsmalloc core
(``hwzswap.pool._zscore``) and zswap's index and batch scans (``hwzswap.frontswap._hotpath``).
``HWZSWAP_IMPL=py`` uses their Python references, which behave the same and need no compiler;
``make test`` runs the pool and frontswap suites under both (as python-lz4 and
python-zstandard test one API over two backends).

The choice is read once, at import; it names every place that asks it, so nothing else in the
package decides between the two.
"""

from __future__ import annotations

import os

from hwzswap.errors import ConfigError

IMPLS = ("c", "py")


def _read_impl() -> str:
    value = os.environ.get("HWZSWAP_IMPL", "c").strip().lower() or "c"
    if value not in IMPLS:
        raise ConfigError(
            f"environment variable HWZSWAP_IMPL: must be one of {', '.join(IMPLS)}; "
            f"got {value[:40]!r}"
        )
    return value


#: "c" or "py": which implementation of the compiled parts this process uses.
IMPL = _read_impl()


def compiled() -> bool:
    """True when the compiled parts are in use (``HWZSWAP_IMPL=c``)."""
    return IMPL == "c"


__all__ = ["IMPL", "IMPLS", "compiled"]
