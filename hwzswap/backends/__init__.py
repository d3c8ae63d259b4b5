"""Compressor backends: the contract, the registry and the built-in codecs."""

from hwzswap.backends.contract import (
    PAGE_SIZE,
    Backend,
    Capabilities,
    CompOp,
    OpKind,
    OpStatus,
    Param,
    run_ops,
)
from hwzswap.backends.registry import (
    ENTRY_POINT_GROUP,
    BackendInfo,
    available_backends,
    backend_from_config,
    backend_names,
    get_backend,
    get_backend_class,
    register_backend,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "PAGE_SIZE",
    "Backend",
    "BackendInfo",
    "Capabilities",
    "CompOp",
    "OpKind",
    "OpStatus",
    "Param",
    "available_backends",
    "backend_from_config",
    "backend_names",
    "get_backend",
    "get_backend_class",
    "register_backend",
    "run_ops",
]
