"""One pass over each (account, group) row's positions: the scenario P&L sums and everything
else the scenario models read from the positions, without the accounts × scenarios matrix.

A row's positions are the nonzeros of :attr:`Positions.group_matrix` (CSR, duplicates summed).
For row :math:`r` with quantities :math:`q_i` the scan returns

.. math::

    P_{r,s} = \\sum_i q_i A_{i,s}, \\qquad
    \\text{worst}_{r,k} = \\min_{s \\in S_k} P_{r,s}, \\qquad
    D_{r,b} = \\sum_{i \\in b} q_i \\delta_i,

reduced to the worst scenario (index and P&L) of each scenario range :math:`S_k`, the net
delta and mark value, :math:`\\sum_b w_b |D_{r,b}|` (the PM roll shock), the long and short
bucket deltas :math:`\\sum_b \\max(\\pm D_{r,b}, 0)` (the SPAN calendar spread) and the short call
and put units after netting (the SPAN short option minimum).
The last three are computed only for the models that read them (:class:`Extra`): each is a
share of the pass (on 100,000 accounts, PM's scan without the SPAN terms is 30 % faster).

Two implementations with one contract: :func:`scan_rows_compiled` (numba; each chunk of rows
keeps its 35 running sums in a small buffer) and :func:`scan_rows_reference` (scipy sparse
products and numpy reductions, the reference and the fallback). ``MWB_KERNEL=numpy`` selects
the reference (to cross-check, or where numba cannot compile).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numba
import numpy as np
from scipy import sparse

from margin_engine.book import Positions
from margin_engine.instruments import Kind

__all__ = [
    "ALL_EXTRAS",
    "Extra",
    "RowScan",
    "compiled_available",
    "scan_rows",
    "scan_rows_compiled",
    "scan_rows_reference",
]

NOT_OPTION, CALL, PUT = 0, 1, 2


class Extra(enum.Enum):
    """What a scan computes besides the scenario sums, net delta and value: a model asks for
    what it reads (each costs a share of the pass; what is not asked for is NaN).
    """

    ROLL = "roll"  # bucket_abs: Σ_b w_b |D_b| (PM's roll shock, OKX's MR4)
    SPREAD = "spread"  # bucket_long, bucket_short (SPAN's calendar spread)
    SHORT_OPTIONS = "short-options"  # short_calls, short_puts (SPAN's short option minimum)


ALL_EXTRAS = frozenset(Extra)
_FIELDS = {
    Extra.ROLL: ("bucket_abs",),
    Extra.SPREAD: ("bucket_long", "bucket_short"),
    Extra.SHORT_OPTIONS: ("short_calls", "short_puts"),
}


_NAN = np.full(1, np.nan)
_NAN.setflags(write=False)  # the views of it are read-only too


def _blank_unasked(scan: RowScan, extras: frozenset[Extra]) -> RowScan:
    # a read-only NaN view (no memory, no pass over the rows): never a value to mistake,
    # and never written by mistake
    blank = np.ndarray((len(scan.net_delta),), np.float64, _NAN, strides=(0,))
    unasked = {
        name: blank for extra, fields in _FIELDS.items() if extra not in extras for name in fields
    }
    return dataclasses.replace(scan, **unasked) if unasked else scan


@dataclass(frozen=True)
class RowScan:
    """The scan of every (account × groups + group) row.

    ``worst_index[:, k]`` is the first scenario (counted from the start of range ``k``) with
    the lowest P&L in range ``k`` and ``worst_pnl[:, k]`` that P&L (signed: a loss is
    negative). ``bucket_abs`` is :math:`\\sum_b w_b |D_b|`; ``bucket_long`` and
    ``bucket_short`` are the summed positive and negative bucket deltas (both ≥ 0);
    ``short_calls`` and ``short_puts`` are units of net-short options.
    """

    worst_index: np.ndarray
    worst_pnl: np.ndarray
    net_delta: np.ndarray
    value: np.ndarray
    bucket_abs: np.ndarray
    bucket_long: np.ndarray
    bucket_short: np.ndarray
    short_calls: np.ndarray
    short_puts: np.ndarray


def _option_kind(positions: Positions) -> np.ndarray:
    table = positions.book.table
    kind = np.full(len(table), NOT_OPTION, dtype=np.int8)
    options = table.kind == Kind.OPTION
    kind[options & table.is_call] = CALL
    kind[options & ~table.is_call] = PUT
    return kind


def _short_flags(positions: Positions) -> tuple[np.ndarray, np.ndarray]:
    flags = positions.book.derived(("short-flags",), lambda: _flags(positions))
    return flags[0].copy(), flags[1].copy()  # writable: the kernel's signature


def _flags(positions: Positions) -> np.ndarray:
    kind = _option_kind(positions)
    return np.stack([(kind == CALL).astype(np.float64), (kind == PUT).astype(np.float64)])


def scan_rows_reference(
    positions: Positions,
    arrays: np.ndarray,
    ranges: np.ndarray,
    bucket_weight: np.ndarray,
    extras: frozenset[Extra] = ALL_EXTRAS,
) -> RowScan:
    """The scan with scipy sparse products and numpy reductions (the reference).

    Parameters
    ----------
    positions
        The positions; rows are :attr:`Positions.group_matrix`'s.
    arrays
        P&L per unit of each instrument in each scenario, (instruments × scenarios).
    ranges
        Boundaries of the scenario ranges reduced separately, e.g. ``[0, 27, 35]``.
    bucket_weight
        :math:`w_b` per expiry bucket.
    extras
        What to compute besides the sums, net delta and value (:class:`Extra`); the fields
        of what is not asked for are NaN.
    """
    matrix = positions.group_matrix
    book, table = positions.book, positions.book.table
    n_rows = matrix.shape[0]
    pnl = np.asarray(matrix @ arrays)
    n_ranges = len(ranges) - 1
    worst_index = np.empty((n_rows, n_ranges), dtype=np.int64)
    worst_pnl = np.empty((n_rows, n_ranges))
    for k in range(n_ranges):
        part = pnl[:, ranges[k] : ranges[k + 1]]
        worst_index[:, k] = part.argmin(axis=1) if part.shape[1] else 0
        worst_pnl[:, k] = part.min(axis=1) if part.shape[1] else 0.0
    net_delta = matrix @ book.delta
    value = matrix @ book.value
    bucket_abs = np.zeros(n_rows)
    bucket_long = np.zeros(n_rows)
    bucket_short = np.zeros(n_rows)
    if table.buckets:
        n_buckets, n_groups = len(table.buckets), positions.n_groups
        bucket_group = np.array([g for g, _ in table.buckets], dtype=np.int64)
        d = positions.per_bucket(book.delta)
        member = np.zeros((n_buckets, n_groups))
        member[np.arange(n_buckets), bucket_group] = 1.0
        bucket_abs = (np.abs(d) @ (member * bucket_weight[:, None])).reshape(-1)
        bucket_long = (np.clip(d, 0, None) @ member).reshape(-1)
        bucket_short = (np.clip(-d, 0, None) @ member).reshape(-1)
    kind = _option_kind(positions)
    coo = matrix.tocoo()
    short = (coo.data < 0) & (kind[coo.col] != NOT_OPTION)
    units = np.where(short, -coo.data, 0.0)
    short_calls = np.bincount(
        coo.row, weights=np.where(kind[coo.col] == CALL, units, 0.0), minlength=n_rows
    )
    short_puts = np.bincount(
        coo.row, weights=np.where(kind[coo.col] == PUT, units, 0.0), minlength=n_rows
    )
    scan = RowScan(
        worst_index,
        worst_pnl,
        np.asarray(net_delta),
        np.asarray(value),
        bucket_abs,
        bucket_long,
        bucket_short,
        short_calls,
        short_puts,
    )
    return _blank_unasked(scan, frozenset(extras))


# The kernel's source is generated per shape (scenarios and their ranges). With the column
# count fixed, each running sum is a local variable that LLVM keeps in (vector) registers; an
# array of sums stays in memory, and its store → load chain from one position to the next made
# the loop three times slower. Minima are unrolled, branch-free selects. The instrument table
# is ordered by expiry bucket (see ``InstrumentTable``), so a row meets each bucket in one run
# and its delta exposure is one running sum, flushed when the bucket changes. Sums are added
# in CSR order, one product at a time (no fused multiply-add), as the reference's sparse
# product does.
_HEAD = """
import numba
import numpy as np


@numba.njit(parallel={parallel}, nogil=True, cache=True)
def scan(indptr, indices, data, columns, bucket, weight, dated, is_call, is_put, n_chunks,
         worst_index, worst_pnl, net_delta, row_value, bucket_abs, bucket_long, bucket_short,
         short_calls, short_puts):
    n_rows = len(indptr) - 1
    for chunk in numba.prange(n_chunks):
        start = chunk * n_rows // n_chunks
        stop = (chunk + 1) * n_rows // n_chunks
        for r in range(start, stop):
            calls = 0.0
            puts = 0.0
            absolute = 0.0
            longs = 0.0
            shorts = 0.0
            run = len(weight) - 1  # the bucket of the current run (the last: none, weight 0)
            exposure = 0.0
"""
_LOOP = """            for k in range(indptr[r], indptr[r + 1]):
                i = indices[k]
                q = data[k]
                row = columns[i]
"""
_LOOP_SHORTS = """                short = (abs(q) - q) * 0.5  # max(-q, 0) exactly, without a branch
                calls += short * is_call[i]
                puts += short * is_put[i]
"""
_LOOP_RUNS = """                b = bucket[i]
                # a new bucket closes the previous run (adding zeros otherwise: no branch)
                closed = exposure if b != run else 0.0
"""
_LOOP_ROLL = """                absolute += weight[run] * abs(closed)
"""
_LOOP_SPREAD = """                longs += (abs(closed) + closed) * 0.5 * dated[run]
                shorts += (abs(closed) - closed) * 0.5 * dated[run]
"""
_LOOP_RUN_END = """                exposure = (exposure if b == run else 0.0) + q * row[{delta}]
                run = b
"""
_TAIL = """            net_delta[r] = s{delta}
            row_value[r] = s{value}
"""
_TAIL_SHORTS = """            short_calls[r] = calls
            short_puts[r] = puts
"""
_TAIL_ROLL = """            absolute += weight[run] * abs(exposure)
            bucket_abs[r] = absolute
"""
_TAIL_SPREAD = """            longs += (abs(exposure) + exposure) * 0.5 * dated[run]
            shorts += (abs(exposure) - exposure) * 0.5 * dated[run]
            bucket_long[r] = longs
            bucket_short[r] = shorts
"""


def _argmin(first: int, last: int, m: int, pad: str) -> list[str]:
    # the first lowest, as numpy's argmin. The lowest value by a tree of pairwise minima (a
    # chain of 27 compare-and-selects was a third of the scan's time), then the first
    # scenario equal to it, searched from the last to the first (selects only, no chain of
    # comparisons). The scan never meets a NaN: arrays that hold one go to the reference.
    lines = []
    level = [f"s{j}" for j in range(first, last)]
    count = 0
    while len(level) > 1:
        paired = []
        for a in range(0, len(level) - 1, 2):
            count += 1
            name = f"m{m}_{count}"
            lines.append(
                f"{pad}{name} = {level[a]} if {level[a]} < {level[a + 1]} else {level[a + 1]}"
            )
            paired.append(name)
        level = paired + level[len(level) - len(level) % 2 :]
    lines += [f"{pad}lowest = {level[0]}", f"{pad}best = {last - 1 - first}"]
    for j in range(last - 2, first - 1, -1):
        lines.append(f"{pad}best = {j - first} if s{j} == lowest else best")
    return lines + [f"{pad}worst_index[r, {m}] = best", f"{pad}worst_pnl[r, {m}] = lowest"]


def kernel_source(
    n_scenarios: int,
    ranges: tuple[int, ...],
    parallel: bool,
    extras: frozenset[Extra] = ALL_EXTRAS,
) -> str:
    """The scan's numba source for ``n_scenarios`` scenario columns (then the delta and the
    mark value) reduced over ``ranges``, computing ``extras`` besides.
    """
    pad = " " * 12
    n_columns = n_scenarios + 2
    runs = bool(extras & {Extra.ROLL, Extra.SPREAD})
    lines = [_HEAD.format(parallel=parallel).rstrip("\n")]
    lines += [f"{pad}s{j} = 0.0" for j in range(n_columns)]
    body = _LOOP
    if Extra.SHORT_OPTIONS in extras:
        body += _LOOP_SHORTS
    if runs:
        body += _LOOP_RUNS
        body += _LOOP_ROLL if Extra.ROLL in extras else ""
        body += _LOOP_SPREAD if Extra.SPREAD in extras else ""
        body += _LOOP_RUN_END.format(delta=n_scenarios)
    lines.append(body.rstrip("\n"))
    lines += [f"{pad}    s{j} += q * row[{j}]" for j in range(n_columns)]
    for m in range(len(ranges) - 1):
        lines += _argmin(ranges[m], ranges[m + 1], m, pad)
    tail = _TAIL.format(delta=n_scenarios, value=n_scenarios + 1)
    tail += _TAIL_ROLL if Extra.ROLL in extras else ""
    tail += _TAIL_SPREAD if Extra.SPREAD in extras else ""
    tail += _TAIL_SHORTS if Extra.SHORT_OPTIONS in extras else ""
    lines.append(tail.rstrip("\n"))
    return "\n".join(lines) + "\n"


_compiled: dict[tuple[int, tuple[int, ...], bool, str, frozenset[Extra]], Callable[..., None]] = {}


def compiled_available() -> bool:
    """Whether the compiled kernel is selected (``MWB_KERNEL=numpy`` selects the reference)."""
    return os.environ.get("MWB_KERNEL", "compiled") != "numpy"


def _kernel_home() -> Path:
    # numba caches a compiled function beside its source file, so the generated sources live
    # in the user's cache folder (never a shared temporary one: the cache holds pickles)
    home = os.environ.get("MWB_KERNEL_CACHE")
    if home:
        return Path(home)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "margin-workbench" / "kernels"


def _module(source: str) -> ModuleType:
    digest = hashlib.sha256(f"{numba.__version__}\n{source}".encode()).hexdigest()[:16]
    name = f"_mwb_scan_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    try:
        folder = _kernel_home()
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # no writable home: compile in a private folder, nothing kept
        folder = Path(tempfile.mkdtemp(prefix="mwb-kernels-"))
    path = folder / f"scan_{digest}.py"
    if not path.exists() or path.read_text() != source:
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(source)
        os.replace(partial, path)  # atomic: parallel processes never read half a file
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # numba's cache finds the module again by its name
    spec.loader.exec_module(module)
    return module


def _kernel(
    n_scenarios: int,
    ranges: tuple[int, ...],
    parallel: bool,
    index: str,
    extras: frozenset[Extra] = ALL_EXTRAS,
) -> Callable[..., None]:
    # one chunk runs serially: waking the thread pool costs more than a small book's scan
    # (a backtest margins a few books a day, thousands of days); the chunks and so the
    # results are the same either way
    key = (n_scenarios, ranges, parallel, index, extras)
    if key not in _compiled:
        scan = _module(kernel_source(n_scenarios, ranges, parallel, extras)).scan
        config = numba.config  # its settings are set from the environment at import
        slp = config.SLP_VECTORIZE  # type: ignore[attr-defined]
        # numba leaves LLVM's straight-line (SLP) vectoriser off by default; it is what packs
        # the register sums into vector instructions (IEEE semantics kept: nothing reordered)
        config.SLP_VECTORIZE = 1  # type: ignore[attr-defined]
        try:
            scan.compile(_signature(index))
        finally:
            config.SLP_VECTORIZE = slp  # type: ignore[attr-defined]
        _compiled[key] = scan
    return _compiled[key]


def _signature(index: str) -> str:
    return (
        f"void({index}[::1], {index}[::1], float64[::1], float64[:, ::1], int64[::1], "
        "float64[::1], float64[::1], float64[::1], float64[::1], int64, "
        "int64[:, ::1], float64[:, ::1], " + ", ".join(["float64[::1]"] * 7) + ")"
    )


CHUNK_ROWS = 4_096  # rows per work item: the thread pool's unit
CACHE_LINE = 64  # bytes


def _columns(arrays: np.ndarray, delta: np.ndarray, value: np.ndarray) -> np.ndarray:
    """The scan's table: each instrument's scenario P&L, delta and value on a row of its own
    cache lines. Rows are padded (with zeros the scan never reads) to a whole number of
    lines and the table starts on a line, so that a row's vector loads never straddle two
    lines: with 37 columns (296 bytes) a row spanned 5 or 6 lines and the scan took 20 %
    longer.
    """
    n, width = arrays.shape[0], arrays.shape[1] + 2
    per_line = CACHE_LINE // 8
    padded = -(-width // per_line) * per_line
    raw = np.zeros(n * padded + per_line)
    start = (-raw.ctypes.data % CACHE_LINE) // 8
    table = raw[start : start + n * padded].reshape(n, padded)
    table[:, : width - 2] = arrays
    table[:, width - 2] = delta
    table[:, width - 1] = value
    return table


def scan_rows_compiled(
    positions: Positions,
    arrays: np.ndarray,
    ranges: np.ndarray,
    bucket_weight: np.ndarray,
    extras: frozenset[Extra] = ALL_EXTRAS,
) -> RowScan:
    """The scan in one compiled pass per row (see :func:`scan_rows_reference` for the
    parameters). Rows are split into fixed chunks, so results do not depend on the number of
    threads; ``numba.set_num_threads`` sets how many run. The kernel is generated for
    ``extras``: what is not asked for is not computed (NaN).
    """
    extras = frozenset(extras)
    matrix: sparse.csr_matrix = positions.group_matrix
    book, table = positions.book, positions.book.table
    dated = table.bucket[table.bucket >= 0]
    if np.any(np.diff(dated) < 0):
        raise ValueError("the instrument table is not in expiry-bucket order (see by_bucket)")
    n_rows = matrix.shape[0]
    n_scenarios = arrays.shape[1]
    ranges = np.asarray(ranges, dtype=np.int64)
    n_ranges = len(ranges) - 1
    out = RowScan(  # every row of what is asked for is written
        np.empty((n_rows, n_ranges), dtype=np.int64),
        np.empty((n_rows, n_ranges)),
        *(np.empty(n_rows) for _ in range(7)),
    )
    n_buckets = len(table.buckets)
    n_chunks = max(1, -(-n_rows // CHUNK_ROWS))
    # CSR indices are never negative: read as unsigned, numba drops its wrap-around test on
    # every access (12 % of the scan)
    unsigned = np.dtype(f"uint{matrix.indices.dtype.itemsize * 8}")
    index = str(unsigned)
    _kernel(n_scenarios, tuple(int(x) for x in ranges), n_chunks > 1, index, extras)(
        matrix.indptr.astype(matrix.indices.dtype, copy=False).view(unsigned),
        matrix.indices.view(unsigned),
        matrix.data,
        _columns(arrays, book.delta, book.value),
        np.where(table.bucket >= 0, table.bucket, n_buckets).astype(np.int64),
        np.append(np.asarray(bucket_weight, dtype=np.float64), 0.0),
        np.append(np.ones(n_buckets), 0.0),
        *_short_flags(positions),
        n_chunks,
        out.worst_index,
        out.worst_pnl,
        out.net_delta,
        out.value,
        out.bucket_abs,
        out.bucket_long,
        out.bucket_short,
        out.short_calls,
        out.short_puts,
    )
    return _blank_unasked(out, extras)


def scan_rows(
    positions: Positions,
    arrays: np.ndarray,
    ranges: Sequence[int] | np.ndarray,
    bucket_weight: np.ndarray | None = None,
    extras: frozenset[Extra] = ALL_EXTRAS,
) -> RowScan:
    """The scan by the compiled kernel where available, else by the reference."""
    weight = np.zeros(len(positions.book.table.buckets)) if bucket_weight is None else bucket_weight
    ranges = np.asarray(ranges, dtype=np.int64)
    # a NaN or infinite P&L (an instrument that cannot be priced) takes numpy's rules, which
    # the reference follows: the compiled minimum is written for numbers
    if compiled_available() and np.isfinite(arrays).all():
        return scan_rows_compiled(positions, arrays, ranges, weight, extras)
    return scan_rows_reference(positions, arrays, ranges, weight, extras)
