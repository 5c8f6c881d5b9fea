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

Two implementations with one contract: :func:`scan_rows_compiled` (numba; each chunk of rows
keeps its 35 running sums in a small buffer) and :func:`scan_rows_reference` (scipy sparse
products and numpy reductions, the reference and the fallback). ``MWB_KERNEL=numpy`` selects
the reference (to cross-check, or where numba cannot compile).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numba
import numpy as np
from scipy import sparse

from margin_engine.book import Positions
from margin_engine.instruments import Kind

__all__ = [
    "RowScan",
    "compiled_available",
    "scan_rows",
    "scan_rows_compiled",
    "scan_rows_reference",
]

NOT_OPTION, CALL, PUT = 0, 1, 2


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
    kind = _option_kind(positions)
    return (kind == CALL).astype(np.float64), (kind == PUT).astype(np.float64)


def scan_rows_reference(
    positions: Positions, arrays: np.ndarray, ranges: np.ndarray, bucket_weight: np.ndarray
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
    return RowScan(
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


def _scan_kernel(
    indptr, indices, data, columns, n_scenarios, ranges, bucket, bucket_weight, dated, is_call, is_put, n_buckets,
    n_chunks, worst_index, worst_pnl, net_delta, row_value, bucket_abs, bucket_long,
    bucket_short, short_calls, short_puts,
):  # fmt: skip
    # ``columns`` holds the scenario P&L then the delta and the mark value of each instrument,
    # so one vectorised inner loop accumulates all of them
    n_rows = len(indptr) - 1
    n_columns = columns.shape[1]
    n_ranges = len(ranges) - 1
    for chunk in numba.prange(n_chunks):
        start = chunk * n_rows // n_chunks
        stop = (chunk + 1) * n_rows // n_chunks
        sums = np.empty(n_columns)
        exposure = np.zeros(n_buckets + 1)
        seen = np.zeros(n_buckets + 1, dtype=np.int64)
        touched = np.empty(n_buckets + 2, dtype=np.int64)
        for r in range(start, stop):
            for s in range(n_columns):
                sums[s] = 0.0
            calls = 0.0
            puts = 0.0
            n_touched = 0
            for k in range(indptr[r], indptr[r + 1]):
                i = indices[k]
                q = data[k]
                for s in range(n_columns):
                    sums[s] += q * columns[i, s]
            # a second pass, branch-free: every position lands in a bucket (instruments without
            # an expiry in the extra last one, of weight 0); a bucket joins the touched list
            # the first time the row meets it
            for k in range(indptr[r], indptr[r + 1]):
                i = indices[k]
                q = data[k]
                b = bucket[i]
                touched[n_touched] = b
                n_touched += 1 - seen[b]
                seen[b] = 1
                exposure[b] += q * columns[i, n_scenarios]
                short = max(-q, 0.0)  # the sign of q is a coin toss
                calls += short * is_call[i]
                puts += short * is_put[i]
            for m in range(n_ranges):
                # the first lowest, as numpy's argmin: a vectorisable minimum, then its place
                lowest = sums[ranges[m]]
                for s in range(ranges[m] + 1, ranges[m + 1]):
                    lowest = min(lowest, sums[s])
                best = ranges[m]
                while sums[best] != lowest:
                    best += 1
                worst_index[r, m] = best - ranges[m]
                worst_pnl[r, m] = lowest
            absolute = 0.0
            longs = 0.0
            shorts = 0.0
            for t in range(n_touched):
                b = touched[t]
                e = exposure[b]
                absolute += bucket_weight[b] * abs(e)
                longs += max(e, 0.0) * dated[b]
                shorts += max(-e, 0.0) * dated[b]
                exposure[b] = 0.0
                seen[b] = 0
            net_delta[r] = sums[n_scenarios]
            row_value[r] = sums[n_scenarios + 1]
            bucket_abs[r] = absolute
            bucket_long[r] = longs
            bucket_short[r] = shorts
            short_calls[r] = calls
            short_puts[r] = puts


_compiled: dict[bool, Callable[..., None]] = {}


def compiled_available() -> bool:
    """Whether the compiled kernel is selected (``MWB_KERNEL=numpy`` selects the reference)."""
    return os.environ.get("MWB_KERNEL", "compiled") != "numpy"


def _kernel(parallel: bool) -> Callable[..., None]:
    # one chunk runs serially: waking the thread pool costs more than a small book's scan
    # (a backtest margins a few books a day, thousands of days); the chunks and so the
    # results are the same either way
    if parallel not in _compiled:
        _compiled[parallel] = numba.njit(parallel=parallel, cache=True, nogil=True)(_scan_kernel)
    return _compiled[parallel]


CHUNK_ROWS = 4_096  # rows per work item: buffers allocated once per chunk, not per row


def scan_rows_compiled(
    positions: Positions, arrays: np.ndarray, ranges: np.ndarray, bucket_weight: np.ndarray
) -> RowScan:
    """The scan in one compiled pass per row (see :func:`scan_rows_reference` for the
    parameters). Rows are split into fixed chunks, so results do not depend on the number of
    threads; ``numba.set_num_threads`` sets how many run.
    """
    matrix: sparse.csr_matrix = positions.group_matrix
    book, table = positions.book, positions.book.table
    n_rows = matrix.shape[0]
    ranges = np.asarray(ranges, dtype=np.int64)
    n_ranges = len(ranges) - 1
    out = RowScan(
        np.zeros((n_rows, n_ranges), dtype=np.int64),
        np.zeros((n_rows, n_ranges)),
        *(np.zeros(n_rows) for _ in range(7)),
    )
    n_buckets = len(table.buckets)
    n_chunks = max(1, -(-n_rows // CHUNK_ROWS))
    _kernel(n_chunks > 1)(
        matrix.indptr,
        matrix.indices,
        matrix.data,
        np.column_stack([arrays, book.delta, book.value]).astype(np.float64, order="C"),
        arrays.shape[1],
        ranges,
        np.where(table.bucket >= 0, table.bucket, n_buckets).astype(np.int64),
        np.append(np.asarray(bucket_weight, dtype=np.float64), 0.0),
        np.append(np.ones(n_buckets), 0.0),
        *_short_flags(positions),
        n_buckets,
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
    return out


def scan_rows(
    positions: Positions,
    arrays: np.ndarray,
    ranges: Sequence[int] | np.ndarray,
    bucket_weight: np.ndarray | None = None,
) -> RowScan:
    """The scan by the compiled kernel where available, else by the reference."""
    weight = np.zeros(len(positions.book.table.buckets)) if bucket_weight is None else bucket_weight
    ranges = np.asarray(ranges, dtype=np.int64)
    if compiled_available():
        return scan_rows_compiled(positions, arrays, ranges, weight)
    return scan_rows_reference(positions, arrays, ranges, weight)
