"""The swap system: the kernel's swap layer around the zswap cache, and ``open_zswap``.

``swap_out`` offers a page to zswap and, if zswap rejects it, writes it to the swap device;
``swap_in`` asks zswap first, then the device (``swap_out_batch`` and ``swap_in_batch`` do the
same for a reclaim batch and a readahead batch); ``swap_free`` releases the slot (invalidating the
zswap entry). Each swap type has a swap map (slot in use or free) so a freed or never-used slot
is never read, whatever stale bytes the file may hold there.

Guarantee: at every moment, each page accepted by ``swap_out`` and not freed comes back byte-exact
from ``swap_in``, from the pool or from the file -- through rejections, writeback, device errors
during writeback and concurrent use from several threads. Operations on one ``(type, offset)``
must not run concurrently with each other (as the kernel's page lock ensures); different offsets
may be used from any number of threads.

``swapon``, ``swapoff`` and ``close`` are set-up operations: do not run them while other threads
use the same swap type.

With ``exclusive_loads: true`` a ``swap_in`` hands the page back and frees the slot (the page now
lives only in the caller's memory, as after a kernel swap-in with exclusive loads).
"""

from __future__ import annotations

import os
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwzswap.backends.contract import Backend, check_page, check_pages
from hwzswap.config import ZswapConfig, load_config
from hwzswap.errors import (
    ConfigError,
    InvalidInputError,
    InvalidParameterError,
    SwapDeviceError,
)
from hwzswap.frontswap.policy import ZswapPolicy
from hwzswap.frontswap.swapdev import DeviceModel, SwapDevice
from hwzswap.frontswap.zswap import ZswapCache, batch_offsets, batch_range_error
from hwzswap.frontswap._hotpath import claim_slots  # type: ignore[import-not-found]  # noqa: I001
from hwzswap.pool.base import Pool

PAGE_SIZE = 4096

_DEVICE_KEYS = ("pswpin", "pswpout", "swap_model_us", "swap_io_us", "swap_failed_reads",
                "swap_failed_writes")


def device_model_from_config(config: ZswapConfig) -> DeviceModel:
    """The :class:`DeviceModel` named by ``config.swap``."""
    s = config.swap
    return DeviceModel.preset(
        s.model, latency_us=s.latency_us, read_mb_s=s.read_mb_s, write_mb_s=s.write_mb_s
    )


class SwapSystem:
    """Swap areas (type -> :class:`SwapDevice`) with a :class:`ZswapCache` in front of them.

    Build one with :func:`open_zswap`. Attributes: ``config``, ``zswap``, ``backend``, ``pool``,
    ``devices`` (type -> device).
    """

    def __init__(
        self,
        config: ZswapConfig,
        backend: Backend,
        pool: Pool,
        policy: ZswapPolicy | None = None,
        *,
        owns_backend: bool = False,
        model: DeviceModel | None = None,
    ) -> None:
        self.config = config
        self.backend = backend
        self.pool = pool
        self.model = model if model is not None else device_model_from_config(config)
        self.devices: dict[int, SwapDevice] = {}
        self._swap_maps: dict[int, bytearray] = {}
        self._temp_paths: dict[int, weakref.finalize] = {}
        self._owns_backend = owns_backend
        self._closed = False
        self.zswap = ZswapCache(
            backend, pool, policy if policy is not None else ZswapPolicy.from_config(config),
            writeback_target=self,
        )
        self._exclusive = self.zswap.policy.exclusive_loads
        self._zstore = self.zswap.store
        self._zload = self.zswap.load
        # A hit in zswap is swap_in's common case: that path compiled, the rest to the method.
        fast = self.zswap.load_hit_path(SwapSystem.swap_in.__get__(self))
        if fast is not None:
            self.swap_in = fast  # type: ignore[method-assign]
        self._zstore_batch = self.zswap._store_batch_checked
        self._zload_batch = self.zswap._load_batch_checked

    # -- swap areas ----------------------------------------------------------------------------

    def swapon(
        self,
        type: int,
        nr_pages: int,
        path: str | os.PathLike[str] | None = None,
        model: DeviceModel | None = None,
    ) -> SwapDevice:
        """Activate swap ``type`` on a file of ``nr_pages`` slots (``path=None``: a temporary
        file, unlinked from the moment it is opened: :meth:`SwapDevice.temporary`)."""
        if self._closed:
            raise SwapDeviceError("swapon after the swap system was closed")
        if type.__class__ is not int or type < 0:
            raise SwapDeviceError(f"swapon: swap type must be an int >= 0, got {type!r}")
        if type in self.devices:
            raise SwapDeviceError(
                f"swapon: swap type {type} is already on ({self.devices[type].path})"
            )
        model = model if model is not None else self.model
        if path is None:
            dev = SwapDevice.temporary(nr_pages, model)
        else:
            dev = SwapDevice(path, nr_pages, model, reuse=self.config.swap.reuse)
        try:
            self.zswap.init(type, nr_pages)
        except BaseException:
            dev.close()
            raise
        self.devices[type] = dev
        self._swap_maps[type] = bytearray(nr_pages)
        return dev

    def swapoff(self, type: int) -> None:
        """Deactivate swap ``type``: drop its zswap entries, close (and remove a temporary)
        file. The pages it held are gone (there is no RAM to bring them back into)."""
        dev = self.devices.get(type)
        if dev is None:
            raise SwapDeviceError(f"swapoff: swap type {type!r} is not on")
        self.zswap.invalidate_area(type)
        del self.devices[type]
        del self._swap_maps[type]
        dev.close()
        fin = self._temp_paths.pop(type, None)
        if fin is not None:
            fin()

    # -- the swap layer ------------------------------------------------------------------------

    def swap_out(self, type: int, offset: int, page: Any) -> bool:
        """Swap a page out to slot ``(type, offset)``: into zswap (``True``) or, if zswap
        rejects it, onto the swap device (``False``). A device failure raises
        :class:`SwapDeviceError` and leaves the slot free (the caller still has the page)."""
        # zswap checks the type, the offset range and the page (a bad one raises before
        # anything changes), so the swap map is marked after it: one lookup on the hot path.
        # Nothing can read the slot in between (ops on one slot are serialised by the caller).
        try:
            stored = self._zstore(type, offset, page)
        except SwapDeviceError:
            raise self._bad_slot(type, offset, "swap_out") from None
        self._swap_maps[type][offset] = 1
        if stored:
            return True
        if page.__class__ is not bytes:
            page = check_page(page).tobytes()
        self._write_device(type, offset, page)
        return False

    def swap_out_batch(self, type: int, offsets: Sequence[int], pages: np.ndarray) -> list[bool]:
        """Swap out a batch: one ``store_batch`` call into zswap, then device writes for the
        rejected pages. Returns one bool per page, as :meth:`swap_out`."""
        smap = self._swap_maps.get(type)
        if smap is None:
            raise self._bad_slot(type, 0, "swap_out_batch")
        pages = check_pages(pages)
        # One C call checks the usual batch (ints in range, distinct) and claims its slots;
        # anything else takes the slow path, which names the problem.
        offs = claim_slots(smap, offsets, len(pages))
        if offs is None:
            offs = self._claim_slots_slow(type, smap, offsets, len(pages))
        results = self._zstore_batch(type, offs, pages)  # checked above: not again in zswap
        if all(results):
            return results
        first_error: SwapDeviceError | None = None
        for i, ok in enumerate(results):
            if not ok:
                try:
                    self._write_device(type, offs[i], pages[i])
                except SwapDeviceError as exc:
                    first_error = first_error or exc
        if first_error is not None:
            raise first_error
        return results

    def _claim_slots_slow(self, type: int, smap: bytearray, offsets: Sequence[Any],
                          n: int) -> list[int]:
        """``swap_out_batch``'s offsets when ``claim_slots`` declined them: convert them (numpy
        integers are fine), raise the error that fits, or mark the slots in use."""
        offs = batch_offsets(offsets, "swap_out_batch")
        if offs:
            lo, hi = min(offs), max(offs)
            if lo < 0 or hi >= len(smap):
                raise self._bad_slot(type, lo if lo < 0 else hi, "swap_out_batch")
        if len(offs) != n or len(set(offs)) != len(offs):
            raise InvalidInputError(
                f"swap_out_batch: {len(offs)} offsets for {n} pages; one distinct offset per page"
            )
        for off in offs:
            smap[off] = 1
        return offs

    def swap_in(self, type: int, offset: int) -> bytes:
        """The page in slot ``(type, offset)``: from zswap, else from the swap device.

        Raises :class:`SwapDeviceError` for a slot that is not in use (never swapped out, or
        freed), or when the device fails; :class:`~hwzswap.errors.CorruptDataError` when the
        zswap object is corrupt.
        """
        # zswap first: it holds entries only for slots in use (swap_free invalidates before it
        # clears the map), so a hit needs no swap map check.
        try:
            page = self._zload(type, offset)
        except SwapDeviceError:
            raise self._bad_slot(type, offset, "swap_in") from None
        if page is None:
            page = self._read_device(type, offset)
        if self._exclusive:
            self._swap_maps[type][offset] = 0
            self.devices[type].discard(offset)
        return page

    def swap_in_batch(self, type: int, offsets: Sequence[int]) -> list[bytes]:
        """The pages of a batch of slots of swap ``type`` (a readahead cluster, the kernel's
        ``vm.page-cluster``): zswap first, in one :meth:`ZswapCache.load_batch` (one
        ``decompress_batch`` for a batch backend), then the misses from the swap device.

        Returns what :meth:`swap_in` on each offset in order returns, with the same counters
        and, with ``exclusive_loads``, every slot freed. The offsets must be distinct and in
        range. All or nothing: a slot not in use (:class:`SwapDeviceError`, checked before
        anything is read), a corrupt zswap object
        (:class:`~hwzswap.errors.CorruptDataError`) or a device read failure raises and
        frees nothing, so every page of the batch can still be swapped in (after a failed device
        read, zswap's ``loads_hit``/``loads_miss`` have counted the batch's lookups).
        """
        smap = self._swap_maps.get(type)
        if smap is None:
            raise self._bad_slot(type, 0, "swap_in_batch")
        offs = batch_offsets(offsets, "swap_in_batch")
        bad = batch_range_error(offs, len(smap), "swap_in_batch",
                                "a readahead batch names distinct slots", "swap it in once")
        if bad is not None:
            raise self._bad_slot(type, bad, "swap_in_batch")
        # zswap holds entries only for slots in use, so checking the map first is the check
        # swap_in makes on a miss, made before any entry is touched.
        for off in offs:
            if not smap[off]:
                raise SwapDeviceError(
                    f"swap_in_batch of swap type {type} offset {off}: the slot is not in use "
                    f"(never swapped out, or freed); nothing in the batch was read"
                )
        exclusive = self._exclusive
        # Exclusive loads free the zswap entries only once the device reads succeeded too, so a
        # failing read loses none of the pages zswap held.
        pages = self._zload_batch(type, offs, False)
        dev = self.devices[type]
        hits = len(offs)
        for i, page in enumerate(pages):
            if page is None:
                pages[i] = dev.read_page(offs[i])
                hits -= 1
        if exclusive:
            if hits:
                self.zswap._drop_loaded(type, offs)
            discard = dev.discard
            for off in offs:
                smap[off] = 0
                discard(off)
        return pages  # type: ignore[return-value]  # every None was replaced

    def _read_device(self, type: int, offset: int) -> bytes:
        """``swap_in``'s miss path: the slot must be in use; read it from the device."""
        smap = self._swap_maps.get(type)
        try:
            if smap is None or offset < 0:
                raise IndexError
            in_use = smap[offset]
        except (IndexError, TypeError):
            raise self._bad_slot(type, offset, "swap_in") from None
        if not in_use:
            raise SwapDeviceError(
                f"swap_in of swap type {type} offset {offset}: the slot is not in use (never "
                f"swapped out, or freed)"
            )
        return self.devices[type].read_page(offset)

    def swap_free(self, type: int, offset: int) -> None:
        """Free slot ``(type, offset)``: its zswap entry is invalidated and the device slot
        discarded. Freeing a free slot is a no-op."""
        smap = self._swap_maps.get(type)
        if smap is None or not 0 <= offset < len(smap):
            raise self._bad_slot(type, offset, "swap_free")
        self.zswap.invalidate_page(type, offset)
        smap[offset] = 0
        self.devices[type].discard(offset)

    def slot_in_use(self, type: int, offset: int) -> bool:
        smap = self._swap_maps.get(type)
        if smap is None or not 0 <= offset < len(smap):
            raise self._bad_slot(type, offset, "slot_in_use")
        return bool(smap[offset])

    # -- writeback target ----------------------------------------------------------------------

    def write_page(self, type: int, offset: int, page: bytes) -> None:
        """Writeback's way to the device of ``type`` (see :class:`WritebackTarget`)."""
        dev = self.devices.get(type)
        if dev is None:
            raise SwapDeviceError(f"writeback to swap type {type}, which is not on")
        dev.write_page(offset, page)

    def _write_device(self, type: int, offset: int, page: Any) -> None:
        try:
            self.devices[type].write_page(offset, page)
        except SwapDeviceError:
            self._swap_maps[type][offset] = 0  # nothing valid is stored for the slot now
            raise

    # -- stats and lifetime --------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """zswap's counters plus the swap devices' (summed over types): one flat dict."""
        out = self.zswap.stats()
        for key in _DEVICE_KEYS:
            out[key] = 0
        for dev in list(self.devices.values()):
            for key, value in dev.stats().items():
                out[key] += value
        return out

    def close(self) -> None:
        """Stop writeback, drop every entry, close and remove temporary swap files; close the
        backend if this system built it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.zswap.close()
        finally:
            for t in list(self.devices):
                self.devices.pop(t).close()
                self._swap_maps.pop(t, None)
                fin = self._temp_paths.pop(t, None)
                if fin is not None:
                    fin()
            if self._owns_backend:
                self.backend.close()

    def __enter__(self) -> SwapSystem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _bad_slot(self, type: Any, offset: Any, op: str) -> SwapDeviceError:
        if self._closed:
            return SwapDeviceError(f"{op} after the swap system was closed")
        smap = self._swap_maps.get(type)
        if smap is None:
            return SwapDeviceError(
                f"{op}: swap type {type!r} is not on (active: {sorted(self.devices) or 'none'})"
            )
        return SwapDeviceError(
            f"{op}: offset {offset!r} is outside swap type {type} (slots 0..{len(smap) - 1})"
        )

    def __repr__(self) -> str:
        return (
            f"<SwapSystem {self.backend.name} pool={self.pool.name} "
            f"types={sorted(self.devices)}{' closed' if self._closed else ''}>"
        )


def _build_pool(config: ZswapConfig) -> Pool:
    from hwzswap.pool import create_pool
    from hwzswap.pool.allocator import PageAllocator

    # zswap's limit is the soft check before each store (zswap_check_limits), as in the kernel;
    # the page allocator only stops the pool from outgrowing the configured RAM.
    allocator = PageAllocator(limit_pages=config.total_ram_pages)
    params: dict[str, Any] = {}
    if config.pool.type == "zsmalloc":
        params["max_pages_per_zspage"] = config.pool.max_pages_per_zspage
    try:
        return create_pool(config.pool.type, allocator, **params)
    except InvalidParameterError as exc:
        raise ConfigError(f"{config.source}: pool: {exc}") from exc


def open_zswap(
    config: str | Path | dict[str, Any] | ZswapConfig,
    *,
    backend: Backend | None = None,
    swap_path: str | os.PathLike[str] | None = None,
) -> SwapSystem:
    """Build a ready :class:`SwapSystem` from a YAML path, a dict or a :class:`ZswapConfig`.

    The compressor is built from the config (``backend=`` passes one already built instead; it
    is then not closed by ``close()``). Swap type 0 is switched on with ``config.swap``
    (``swap_path=`` overrides its path).
    """
    cfg = load_config(config)
    owns = backend is None
    if backend is None:
        from hwzswap.backends.registry import get_backend

        comp = cfg.zswap.compressor
        backend = get_backend(comp.name, **comp.params)
    system: SwapSystem | None = None
    try:
        pool = _build_pool(cfg)
        system = SwapSystem(cfg, backend, pool, owns_backend=owns)
        path = swap_path if swap_path is not None else cfg.swap.path
        system.swapon(0, cfg.swap.nr_pages, path=path)
    except BaseException:
        if system is not None:
            system.close()
        elif owns:
            backend.close()
        raise
    return system


__all__ = ["SwapSystem", "device_model_from_config", "open_zswap"]
