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

import operator
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwzswap.backends.contract import Backend, check_page, check_pages
from hwzswap.config import ZswapConfig, load_config, parameter_error
from hwzswap.errors import (
    BackendError,
    ConfigError,
    DriverError,
    HwzswapError,
    InvalidInputError,
    InvalidParameterError,
    SwapBatchError,
    SwapDeviceError,
)
from hwzswap.frontswap.kernels import claim_slots
from hwzswap.frontswap.policy import ZswapPolicy
from hwzswap.frontswap.swapdev import DeviceModel, SwapDevice
from hwzswap.frontswap.slots import batch_offsets, slot_error
from hwzswap.frontswap.zswap import ZswapCache
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
        # the counters of devices swapped off or closed: stats() stay cumulative, as the
        # kernel's vm events do across swapoff
        self._retired: dict[str, Any] = dict.fromkeys(_DEVICE_KEYS, 0)
        self._swap_maps: dict[int, bytearray] = {}
        self._owns_backend = owns_backend
        self._closed = False
        self.zswap = ZswapCache(
            backend, pool, policy if policy is not None else ZswapPolicy.from_config(config),
            writeback_target=self,
        )
        self._exclusive = self.zswap.policy.exclusive_loads
        self._zstore = self.zswap.store
        self._zload = self.zswap.load

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
        # zswap's index first: it checks nr_pages, and a refusal then leaves no file behind
        # (building the device first created a sparse file of the refused size and kept it).
        self.zswap.init(type, nr_pages)
        try:
            if path is None:
                dev = SwapDevice.temporary(nr_pages, model)
            else:
                dev = SwapDevice(path, nr_pages, model, reuse=self.config.swap.reuse)
        except BaseException:
            self.zswap.invalidate_area(type)
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
        self._retire(dev)

    # -- the swap layer ------------------------------------------------------------------------

    def swap_out(self, type: int, offset: int, page: Any) -> bool:
        """Swap a page out to slot ``(type, offset)``: into zswap (``True``) or, if zswap
        rejects it, onto the swap device (``False``). A device failure raises
        :class:`SwapDeviceError` and leaves the slot free (the caller still has the page)."""
        smap, offset = self._slot(type, offset, "swap_out")
        if page.__class__ is not bytes or len(page) != PAGE_SIZE:
            page = check_page(page).tobytes()  # a bad page raises before anything changes
        stored = self._zstore(type, offset, page)
        smap[offset] = 1
        if stored:
            return True
        self._write_device(type, offset, page)
        return False

    def swap_out_batch(self, type: int, offsets: Sequence[int], pages: np.ndarray,
                       folios: Sequence[int] | None = None) -> list[bool]:
        """Swap out a reclaim pass: one ``store_batch`` into zswap (``folios``: the folio
        sizes, consecutive pages; ``None``: all order-0), then device writes for the rejected
        pages. Returns one bool per page, as :meth:`swap_out`.

        A device write that fails leaves that slot free and raises :class:`SwapBatchError`
        once the whole batch has been handled; its ``stored``, ``written`` and ``failed`` say
        which offsets went where (the caller still has the failed pages)."""
        smap = self._map(type, "swap_out_batch")
        pages = check_pages(pages)
        # One C call checks the usual batch (ints in range, distinct), claims its slots and
        # returns their states before the claim; anything else takes the checked path, which
        # names the problem. A store that raises puts the states back (a slot that held a page
        # still holds it; one that was free is free again).
        claimed = claim_slots(smap, offsets, len(pages))
        if claimed is None:
            offs = batch_offsets("swap_out_batch", type, offsets, len(smap), "a reclaim batch")
            if len(offs) != len(pages):
                raise InvalidInputError(
                    f"swap_out_batch: {len(offs)} offsets for {len(pages)} pages; one distinct "
                    f"offset per page")
            before = bytes(smap[off] for off in offs)
            for off in offs:
                smap[off] = 1
        else:
            offs, before = claimed
        try:
            results = self.zswap.store_batch(type, offs, pages, folios)
        except BaseException:
            # An error raises before anything is stored, but an interrupt can come after a
            # part of the batch went in (its same-filled pages first): a slot that was free
            # is made free in zswap too, or it would hold a page its swap map says is gone.
            for off, was in zip(offs, before):
                if not was:
                    self.zswap.invalidate_page(type, off)
                smap[off] = was
            raise
        if all(results):
            return results
        failed: list[int] = []
        errors: list[str] = []
        for i, ok in enumerate(results):
            if not ok:
                try:
                    self._write_device(type, offs[i], pages[i])
                except SwapDeviceError as exc:
                    failed.append(offs[i])
                    errors.append(str(exc))
        if failed:
            stored = [o for o, ok in zip(offs, results) if ok]
            written = [o for o, ok in zip(offs, results) if not ok and o not in set(failed)]
            raise SwapBatchError(
                f"swap_out_batch of swap type {type}: {len(failed)} of {len(offs)} pages could "
                f"not be written to the swap device (first: {errors[0]}); {len(stored)} are in "
                f"zswap and {len(written)} on the device; the failed slots are free again and "
                f"their pages are still the caller's", stored=stored, written=written,
                failed=failed)
        return results

    def swap_in(self, type: int, offset: int) -> bytes:
        """The page in slot ``(type, offset)``: from zswap, else from the swap device.

        Raises :class:`SwapDeviceError` for a slot that is not in use (never swapped out, or
        freed), or when the device fails; :class:`~hwzswap.errors.CorruptDataError` when the
        zswap object is corrupt.
        """
        smap, offset = self._slot(type, offset, "swap_in")
        # zswap holds entries only for slots in use (swap_free invalidates before it clears
        # the map), so a hit needs no swap map check.
        page = self._zload(type, offset)
        if page is None:
            if not smap[offset]:
                raise SwapDeviceError(
                    f"swap_in of swap type {type} offset {offset}: the slot is not in use "
                    f"(never swapped out, or freed)"
                )
            page = self.devices[type].read_page(offset)
        if self._exclusive:
            smap[offset] = 0
            self.devices[type].discard(offset)
        return page

    def swap_in_batch(self, type: int, offsets: Sequence[int], *, partial: bool = False
                      ) -> list[Any]:
        """The pages of a readahead cluster (the kernel's ``vm.page-cluster``): zswap first,
        in one :meth:`ZswapCache.load_batch` (one ``decompress_batch`` for a batch backend),
        then the misses from the swap device.

        Returns what :meth:`swap_in` on each offset in order returns, with the same counters
        and, with ``exclusive_loads``, every slot freed. The offsets must be distinct and in
        range, and every slot in use (checked before anything is read; else nothing is read).

        A page that cannot be read (a corrupt zswap object, a device failure) keeps its slot
        and its data. By default the call is all or nothing: it raises that page's error and
        frees nothing, so every page of the batch can still be swapped in. With ``partial``
        the result is per page instead, as each folio of a kernel readahead completes alone:
        a failed page's place holds its :class:`~hwzswap.errors.HwzswapError`, and every
        other page is returned (and, with exclusive loads, its slot freed) as usual.
        """
        smap = self._map(type, "swap_in_batch")
        offs = batch_offsets("swap_in_batch", type, offsets, len(smap), "a readahead batch")
        if not all(map(smap.__getitem__, offs)):
            off = next(o for o in offs if not smap[o])
            raise SwapDeviceError(
                f"swap_in_batch of swap type {type} offset {off}: the slot is not in use "
                f"(never swapped out, or freed); nothing in the batch was read"
            )
        # Exclusive loads free the zswap entries only once the device reads succeeded too,
        # so a failing read loses none of the pages zswap held.
        pages = self.zswap.load_batch(type, offs, keep=self._exclusive, partial=partial)
        dev = self.devices[type]
        for i, page in enumerate(pages):
            if page is None:
                try:
                    pages[i] = dev.read_page(offs[i])
                except HwzswapError as exc:
                    if not partial:
                        raise
                    pages[i] = exc
        if self._exclusive:
            done = [off for off, page in zip(offs, pages) if not isinstance(page, HwzswapError)]
            self.zswap.drop_loaded(type, done)
            for off in done:
                smap[off] = 0
                dev.discard(off)
        return pages

    def swap_free(self, type: int, offset: int) -> None:
        """Free slot ``(type, offset)``: its zswap entry is invalidated and the device slot
        discarded. Freeing a free slot is a no-op."""
        smap, offset = self._slot(type, offset, "swap_free")
        self.zswap.invalidate_page(type, offset)
        smap[offset] = 0
        self.devices[type].discard(offset)

    def slot_in_use(self, type: int, offset: int) -> bool:
        smap, offset = self._slot(type, offset, "slot_in_use")
        return bool(smap[offset])

    def drain(self) -> None:
        """Wait until no compression is in flight (zswap's ``async`` mode): every page swapped
        out so far is then in the pool or on the device."""
        self.zswap.drain()

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
        out.update(self._retired)
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
                self._swap_maps.pop(t, None)
                self._retire(self.devices.pop(t))
            if self._owns_backend:
                _close_backend(self.backend)

    def _retire(self, dev: SwapDevice) -> None:
        """Close a device taken off, keeping its counters in :meth:`stats`."""
        try:
            for key, value in dev.stats().items():
                self._retired[key] += value
        finally:
            dev.close()

    def __enter__(self) -> SwapSystem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _map(self, type: Any, op: str) -> bytearray:
        """The swap map of ``type``, or the slot error."""
        try:
            smap = self._swap_maps.get(type)
        except TypeError:  # unhashable
            smap = None
        if smap is None:
            raise self._bad_slot(type, 0, op)
        return smap

    def _slot(self, type: Any, offset: Any, op: str) -> tuple[bytearray, int]:
        """The swap map of ``type`` and ``offset`` as an int in range: the one check of a slot
        at the public ops, with one message style (:func:`slot_error`)."""
        smap = self._map(type, op)
        if offset.__class__ is not int:
            if offset.__class__ is bool or not hasattr(offset, "__index__"):
                raise self._bad_slot(type, offset, op)
            offset = operator.index(offset)
        if not 0 <= offset < len(smap):
            raise self._bad_slot(type, offset, op)
        return smap, offset

    def _bad_slot(self, type: Any, offset: Any, op: str) -> SwapDeviceError:
        if self._closed:
            return SwapDeviceError(f"{op} after the swap system was closed")
        try:
            smap = self._swap_maps.get(type)
        except TypeError:
            smap = None
        return slot_error(op, type, offset, None if smap is None else len(smap),
                          list(self.devices))

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
        try:
            backend = get_backend(comp.name, **comp.params)
        except InvalidParameterError as exc:
            raise parameter_error(exc, comp.name, cfg) from exc
        except BackendError as exc:  # unavailable here (no such device), failed to start
            raise type(exc)(f"{cfg.source}: zswap.compressor: {exc}") from exc
    system: SwapSystem | None = None
    try:
        pool = _build_pool(cfg)
        try:
            system = SwapSystem(cfg, backend, pool, owns_backend=owns)
        except ConfigError as exc:  # a knob this device cannot take (zswap.async_submit)
            raise ConfigError(f"{cfg.source}: {exc}") from exc
        path = swap_path if swap_path is not None else cfg.swap.path
        try:
            system.swapon(0, cfg.swap.nr_pages, path=path)
        except SwapDeviceError as exc:  # the file named by the config (or the override)
            if swap_path is not None:
                where = f"swap_path={os.fspath(swap_path)!r} (in place of {cfg.source}'s swap.path)"
            elif path is None:
                where = f"{cfg.source}: swap.path (null: a temporary swap file)"
            else:
                where = f"{cfg.source}: swap.path"
            raise SwapDeviceError(f"{where}: {exc}") from exc
    except BaseException as exc:
        try:
            if system is not None:
                system.close()
            elif owns:
                _close_backend(backend)
        except HwzswapError as cleanup:  # the error that stopped the open is the one to see
            exc.add_note(f"and closing what was opened failed too: {cleanup}")
        raise
    return system


def _close_backend(backend: Backend) -> None:
    """Close a backend this system built. A driver whose ``close`` raises something other than
    a :class:`HwzswapError` (an ``OSError`` from a device node gone, say) gets a
    :class:`DriverError` naming it, raised once everything else is closed; one from outside
    the package whose ``close`` hangs, one at the registry's deadline (``close_backend``)."""
    from hwzswap.backends.registry import close_backend

    try:
        close_backend(backend)
    except HwzswapError:
        raise
    except Exception as exc:
        raise DriverError(
            f"driver {getattr(backend, 'name', type(backend).__name__)!r}: close() raised "
            f"{type(exc).__name__}: {exc}; the swap system is closed, but the driver may not "
            "have released its device or memory") from exc


__all__ = ["SwapSystem", "device_model_from_config", "open_zswap"]
