"""Swap slots at the public frontswap ops: the one check of a batch's offsets and folio sizes,
and the one message style for a bad ``(type, offset)``, shared by the zswap cache and the swap
layer (each checks the slots of its own ops with these)."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

from hwzswap.errors import InvalidInputError, SwapDeviceError

#: ``type`` by another name: the functions below take a swap ``type`` argument, which hides the
#: builtin inside them.
_kind = type


def value_text(value: Any) -> str:
    """A bad value for a message: an int as itself, anything else with its type, bounded."""
    text = repr(value)
    text = f"{text[:40]}..." if len(text) > 40 else text
    return text if value.__class__ is int else f"{type(value).__name__} {text}"


def slot_error(op: str, type: Any, offset: Any, nr_pages: int | None,
               active: Sequence[int]) -> SwapDeviceError:
    """The one error for a bad ``(type, offset)`` at a public op, in one style for zswap and the
    swap layer: a type that is not on, an offset that is not an integer, or out of range."""
    if nr_pages is None:
        return SwapDeviceError(
            f"{op}: swap type {value_text(type)} is not on (swapon it first; active types: "
            f"{sorted(active) or 'none'})"
        )
    if offset.__class__ is bool or not hasattr(offset, "__index__"):
        return SwapDeviceError(f"{op}: an offset must be an integer, got {value_text(offset)}")
    return SwapDeviceError(
        f"{op}: offset {operator.index(offset)} is outside swap type {type} "
        f"(slots 0..{nr_pages - 1})"
    )


def batch_offsets(op: str, type: int, offsets: Any, nr_pages: int, what: str) -> list[int]:
    """A batch's offsets as distinct ints in ``0..nr_pages - 1`` (numpy integers are fine), or
    the slot error (:func:`slot_error`) naming the first bad one; a repeated offset raises
    :class:`InvalidInputError` (``what`` says what the batch is)."""
    offs = offsets if offsets.__class__ is list else list(offsets)
    if set(map(_kind, offs)) != {int}:  # not all plain ints: numpy integers are converted
        bad = next((o for o in offs if o.__class__ is bool or not hasattr(o, "__index__")),
                   None)
        if bad is not None:
            raise slot_error(op, type, bad, nr_pages, ())
        offs = list(map(operator.index, offs))
    if offs:
        lo, hi = min(offs), max(offs)
        if lo < 0 or hi >= nr_pages:
            raise slot_error(op, type, lo if lo < 0 else hi, nr_pages, ())
        if len(set(offs)) != len(offs):
            raise InvalidInputError(
                f"{op}: an offset appears twice in one batch ({what} holds distinct slots)"
            )
    return offs




def folio_groups(folios: Sequence[int] | None, n: int, op: str) -> list[int]:
    """Folio sizes of a batch of ``n`` pages, checked (positive ints summing to ``n``);
    ``None``: every page its own folio."""
    if folios is None:
        return [1] * n
    try:
        sizes = [operator.index(f) for f in folios]
    except TypeError:
        raise InvalidInputError(f"{op}: folio sizes must be integers") from None
    if any(s < 1 for s in sizes) or sum(sizes) != n:
        raise InvalidInputError(
            f"{op}: folio sizes {sizes[:8]}{'...' if len(sizes) > 8 else ''} must be >= 1 and "
            f"add up to the {n} pages of the batch"
        )
    return sizes
