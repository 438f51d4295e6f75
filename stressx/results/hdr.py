"""Read side of stressx's latency histograms: HdrHistogram's bucket layout over numpy arrays.

The compiled recorder (``_histogram.pxi``) counts latencies, in integer **microseconds**, into
int64 arrays in shared memory. Each histogram is ``SLOTS`` int64 slots::

    [total_count, min_value, max_value, overflow_count, counts[0] .. counts[COUNTS_LEN - 1]]

``min_value`` starts at INT64_MAX and ``max_value`` at 0 while empty. The counts use exactly
HdrHistogram's layout for lowest_discernible_value=1, highest_trackable_value=3_600_000_000
(1 hour in us) and 3 significant figures, so the numbers here agree with every HdrHistogram
implementation and ``encode()`` produces the standard V2 compressed encoding that HdrHistogram's
tools (HistogramLogAnalyzer, the ``hdrhistogram`` Python package, ...) read.

Everything here runs per run or per reporting interval, never per request: it is plain Python
plus numpy, vectorised where it walks the ~23.5k buckets.
"""
from __future__ import annotations

import base64
import operator
import struct
import zlib
from typing import Iterable

import numpy as np

__all__ = [
    "LOWEST", "HIGHEST", "SIGNIFICANT_FIGURES", "UNIT_MAGNITUDE",
    "SUB_BUCKET_COUNT_MAGNITUDE", "SUB_BUCKET_HALF_COUNT_MAGNITUDE", "SUB_BUCKET_COUNT",
    "SUB_BUCKET_HALF_COUNT", "SUB_BUCKET_MASK", "LEADING_ZERO_COUNT_BASE", "BUCKET_COUNT",
    "COUNTS_LEN",
    "HEADER_SLOTS", "SLOTS", "H_TOTAL", "H_MIN", "H_MAX", "H_OVERFLOW", "INT64_MAX",
    "LOWEST_EQUIVALENT", "HIGHEST_EQUIVALENT", "MEDIAN_EQUIVALENT",
    "counts_index", "Histogram",
]

# --------------------------------------------------------------------------------------------
# Layout constants (HdrHistogram_c's hdr_calculate_bucket_config for 1 .. 3_600_000_000, 3 sf)
# --------------------------------------------------------------------------------------------

#: Lowest discernible value, in microseconds.
LOWEST = 1
#: Highest trackable value, in microseconds (1 hour). The recorder clamps larger values to it.
HIGHEST = 3_600_000_000
#: Decimal significant figures kept: every value is resolved to within 0.1 %.
SIGNIFICANT_FIGURES = 3

#: floor(log2(LOWEST)) = 0: buckets are in units of 1 us.
UNIT_MAGNITUDE = LOWEST.bit_length() - 1
_LARGEST_SINGLE_UNIT_RESOLUTION = 2 * 10 ** SIGNIFICANT_FIGURES            # 2000
#: ceil(log2(2 * 10**sf)) = 11 (computed with integers, no float log).
SUB_BUCKET_COUNT_MAGNITUDE = (_LARGEST_SINGLE_UNIT_RESOLUTION - 1).bit_length()
#: 10
SUB_BUCKET_HALF_COUNT_MAGNITUDE = max(SUB_BUCKET_COUNT_MAGNITUDE, 1) - 1
#: 2048 sub-buckets per bucket ...
SUB_BUCKET_COUNT = 1 << (SUB_BUCKET_HALF_COUNT_MAGNITUDE + 1)
#: ... of which each bucket after the first stores only the upper 1024.
SUB_BUCKET_HALF_COUNT = SUB_BUCKET_COUNT // 2
#: 2047
SUB_BUCKET_MASK = (SUB_BUCKET_COUNT - 1) << UNIT_MAGNITUDE
#: 53 - clz64(v | SUB_BUCKET_MASK) is the bucket index of v (this is 64 - 0 - 10 - 1).
LEADING_ZERO_COUNT_BASE = 64 - UNIT_MAGNITUDE - SUB_BUCKET_HALF_COUNT_MAGNITUDE - 1


def _buckets_needed(value: int) -> int:
    """HdrHistogram's buckets_needed_to_cover_value()."""
    smallest_untrackable = SUB_BUCKET_COUNT << UNIT_MAGNITUDE
    needed = 1
    while smallest_untrackable <= value:
        if smallest_untrackable > (2 ** 63 - 1) // 2:
            return needed + 1
        smallest_untrackable <<= 1
        needed += 1
    return needed


#: 22 buckets cover 1 us .. 1 hour.
BUCKET_COUNT = _buckets_needed(HIGHEST)
#: 23552 int64 counts per histogram.
COUNTS_LEN = (BUCKET_COUNT + 1) * SUB_BUCKET_HALF_COUNT

#: Header slots ahead of the counts in shared memory, and their positions.
HEADER_SLOTS = 4
H_TOTAL, H_MIN, H_MAX, H_OVERFLOW = 0, 1, 2, 3
#: int64 slots per histogram in shared memory (header + counts).
SLOTS = HEADER_SLOTS + COUNTS_LEN
#: The "nothing recorded yet" value of the min slot.
INT64_MAX = 2 ** 63 - 1

# Encoding constants (HdrHistogram V2). Decoders mask the cookies with ~0xf0 (the nibble Java
# uses for a word-size flag), so the plain base values are what we write, as HdrHistogram_c does.
_V2_ENCODING_COOKIE = 0x1C849303
_V2_COMPRESSED_COOKIE = 0x1C849304
_COOKIE_MASK = ~0xF0 & 0xFFFFFFFF
# cookie, payload length, normalizing index offset, significant figures, lowest, highest,
# integer-to-double conversion ratio
_V2_HEADER = struct.Struct(">iiiiqqd")
_COMPRESSED_HEADER = struct.Struct(">ii")  # cookie, compressed length


def counts_index(value: int) -> int:
    """Index into the counts array for `value` (integer microseconds, >= 0).

    A pure-Python twin of the compiled recorder's hdr_counts_index(), kept as the test oracle.
    It does no clamping: the recorder clamps to [0, HIGHEST] first, and every value up to
    HIGHEST maps below COUNTS_LEN.
    """
    value = operator.index(value)
    if value < 0:
        raise ValueError(f"histogram values cannot be negative: {value}")
    bucket_index = (value | SUB_BUCKET_MASK).bit_length() - (
        UNIT_MAGNITUDE + SUB_BUCKET_HALF_COUNT_MAGNITUDE + 1)    # == 53 - clz64(v | mask)
    sub_bucket_index = value >> (bucket_index + UNIT_MAGNITUDE)
    return ((bucket_index + 1) << SUB_BUCKET_HALF_COUNT_MAGNITUDE) + (
        sub_bucket_index - SUB_BUCKET_HALF_COUNT)


def _counts_index_array(values: np.ndarray) -> np.ndarray:
    """counts_index() over an int64 array of values already clamped to [0, HIGHEST]."""
    # bit_length via frexp is exact here: every value is < 2**53
    bit_length = np.frexp((values | SUB_BUCKET_MASK).astype(np.float64))[1].astype(np.int64)
    bucket_index = bit_length - (UNIT_MAGNITUDE + SUB_BUCKET_HALF_COUNT_MAGNITUDE + 1)
    sub_bucket_index = values >> (bucket_index + UNIT_MAGNITUDE)
    return ((bucket_index + 1) << SUB_BUCKET_HALF_COUNT_MAGNITUDE) + (
        sub_bucket_index - SUB_BUCKET_HALF_COUNT)


def _equivalent_value_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    index = np.arange(COUNTS_LEN, dtype=np.int64)
    bucket = (index >> SUB_BUCKET_HALF_COUNT_MAGNITUDE) - 1
    sub_bucket = (index & (SUB_BUCKET_HALF_COUNT - 1)) + SUB_BUCKET_HALF_COUNT
    first = bucket < 0            # bucket 0 also owns its lower half (indices 0 .. 1023)
    sub_bucket[first] -= SUB_BUCKET_HALF_COUNT
    bucket[first] = 0
    lowest = sub_bucket << (bucket + UNIT_MAGNITUDE)
    # sub_bucket < SUB_BUCKET_COUNT always holds for an index, so the range is 2**bucket units
    size = np.left_shift(np.int64(1), bucket + UNIT_MAGNITUDE)
    tables = (lowest, lowest + size - 1, lowest + (size >> 1))
    for t in tables:
        t.flags.writeable = False
    return tables


#: Per index: the lowest value (us) that lands in the bucket, the highest, and the median
#: HdrHistogram reports for it (lowest + half the bucket width; used for the mean and stdev).
LOWEST_EQUIVALENT, HIGHEST_EQUIVALENT, MEDIAN_EQUIVALENT = _equivalent_value_tables()


# --------------------------------------------------------------------------------------------
# ZigZag LEB128, HdrHistogram flavour: at most 9 bytes, the 9th carrying 8 full bits.
# --------------------------------------------------------------------------------------------

def _put_zigzag(out: bytearray, value: int) -> None:
    z = (value << 1) if value >= 0 else ((-value << 1) - 1)     # zigzag, 64-bit
    for _ in range(8):
        if z < 0x80:
            out.append(z)
            return
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z & 0xFF)


def _read_zigzag(buf: bytes, pos: int) -> tuple[int, int]:
    z = shift = 0
    for _ in range(8):
        b = buf[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            break
    else:
        z |= buf[pos] << 56
        pos += 1
    return (z >> 1) ^ -(z & 1), pos


def _decode_counts_fast(buf: bytes, start: int, end: int, counts: np.ndarray) -> bool:
    """The V2 payload's counts (ZigZag LEB128, negatives = runs of empty buckets) decoded with
    numpy into `counts` (zeroed), for the driver of a cluster run that decodes every host's
    histograms each second. False (counts untouched) when a value takes more than 8 bytes
    (the 9-byte form, counts over 2**55) or an index runs past the layout: the caller's
    byte-by-byte loop decides those."""
    b = np.frombuffer(buf, dtype=np.uint8, count=end - start, offset=start)
    if b.size == 0:
        return True
    last = np.flatnonzero(b < 0x80)                    # the final byte of each value
    if last.size == 0 or last[-1] != b.size - 1:
        return False
    first = np.concatenate(([0], last[:-1] + 1))
    lengths = last - first + 1
    if lengths.max() > 8:
        return False
    shift = (np.arange(b.size) - np.repeat(first, lengths)).astype(np.uint64) * np.uint64(7)
    z = np.add.reduceat((b & 0x7F).astype(np.uint64) << shift, first)
    v = (z >> np.uint64(1)).astype(np.int64) ^ -(z & np.uint64(1)).astype(np.int64)
    step = np.where(v < 0, -v, 1)
    index = np.cumsum(step) - step                     # where each value lands
    filled = v > 0
    if filled.any() and index[filled][-1] >= COUNTS_LEN:
        return False
    counts[index[filled]] = v[filled]
    return True


# --------------------------------------------------------------------------------------------

class Histogram:
    """One histogram: a 1-D int64 numpy array of SLOTS slots (header + counts), values in us.

    Constructors: ``empty()``, ``from_slots(arr)`` (copies, e.g. a snapshot of shared memory),
    ``view(arr)`` (no copy: reads and in-place merges go to `arr`), ``from_values(values)``
    (records like the compiled recorder; for tests), ``decode(text)``.

    Percentile and mean maths follow HdrHistogram (same results as the ``hdrhistogram``
    package), except that ``min``/``max`` are the exact tracked values and percentiles never
    exceed ``max``. They use the sum of the counts as the total, which equals the ``total``
    header slot whenever the snapshot is consistent.
    """

    __slots__ = ("slots",)

    def __init__(self, slots: np.ndarray):
        """Wrap `slots` as is; use the named constructors."""
        self.slots = slots

    # ---- constructors ---------------------------------------------------------------------

    @classmethod
    def empty(cls) -> "Histogram":
        slots = np.zeros(SLOTS, dtype=np.int64)
        slots[H_MIN] = INT64_MAX
        return cls(slots)

    @classmethod
    def from_slots(cls, arr) -> "Histogram":
        """A private copy of `arr` (SLOTS int64 values), e.g. a shared-memory snapshot."""
        slots = np.array(arr, dtype=np.int64, copy=True)
        if slots.shape != (SLOTS,):
            raise ValueError(f"a histogram is {SLOTS} int64 slots, got shape {slots.shape}")
        return cls(slots)

    @classmethod
    def view(cls, arr: np.ndarray) -> "Histogram":
        """Wrap `arr` without copying (it must already be a 1-D int64 array of SLOTS)."""
        if not isinstance(arr, np.ndarray) or arr.dtype != np.int64 or arr.shape != (SLOTS,):
            raise ValueError(f"Histogram.view needs a 1-D int64 numpy array of {SLOTS} slots")
        return cls(arr)

    @classmethod
    def from_values(cls, values: Iterable[int]) -> "Histogram":
        """Record integer microsecond values the way the compiled recorder does: negatives are
        clamped to 0 and values above HIGHEST to HIGHEST, both counted in ``overflow``."""
        v = np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
        if v.size and not np.issubdtype(v.dtype, np.integer):
            raise TypeError("histogram values are integer microseconds")
        v = v.astype(np.int64, copy=False).ravel()
        h = cls.empty()
        if v.size == 0:
            return h
        out_of_range = int(np.count_nonzero((v < 0) | (v > HIGHEST)))
        v = np.clip(v, 0, HIGHEST)
        h.counts[:] = np.bincount(_counts_index_array(v), minlength=COUNTS_LEN)
        s = h.slots
        s[H_TOTAL] = v.size
        s[H_MIN] = v.min()
        s[H_MAX] = v.max()
        s[H_OVERFLOW] = out_of_range
        return h

    # ---- header ---------------------------------------------------------------------------

    @property
    def counts(self) -> np.ndarray:
        """The COUNTS_LEN bucket counts (a view into ``slots``)."""
        return self.slots[HEADER_SLOTS:]

    @property
    def total(self) -> int:
        """Number of values recorded (the header slot)."""
        return int(self.slots[H_TOTAL])

    @property
    def min(self) -> int:
        """Smallest value recorded, exact, in us; 0 when empty."""
        m = int(self.slots[H_MIN])
        return 0 if m == INT64_MAX else m

    @property
    def max(self) -> int:
        """Largest value recorded, exact, in us (HIGHEST at most, after clamping); 0 when empty."""
        return int(self.slots[H_MAX])

    @property
    def overflow(self) -> int:
        """Values that were out of [0, HIGHEST] and were recorded clamped."""
        return int(self.slots[H_OVERFLOW])

    def __repr__(self) -> str:
        return (f"Histogram(total={self.total}, min={self.min}, max={self.max}, "
                f"overflow={self.overflow})")

    def __eq__(self, other) -> bool:
        return isinstance(other, Histogram) and np.array_equal(self.slots, other.slots)

    __hash__ = None  # mutable

    # ---- statistics -----------------------------------------------------------------------

    def mean(self) -> float:
        """Mean in us, HdrHistogram style: each bucket counts at its median-equivalent value."""
        c = self.counts
        n = int(c.sum())
        if n == 0:
            return 0.0
        # exact integer sum while it fits in int64 (any realistic run), float64 beyond
        if n < INT64_MAX // int(MEDIAN_EQUIVALENT[-1]):
            s = int(np.dot(c, MEDIAN_EQUIVALENT))
        else:
            s = float(np.dot(c.astype(np.float64), MEDIAN_EQUIVALENT.astype(np.float64)))
        return float(s) / n

    def stdev(self) -> float:
        """Population standard deviation in us, over bucket median-equivalent values."""
        c = self.counts
        n = int(c.sum())
        if n == 0:
            return 0.0
        nz = np.flatnonzero(c)
        dev = MEDIAN_EQUIVALENT[nz].astype(np.float64) - self.mean()
        return float(np.sqrt(np.dot(dev * dev, c[nz].astype(np.float64)) / n))

    def _percentile_values(self, ps: np.ndarray) -> np.ndarray:
        c = self.counts
        cum = np.cumsum(c)
        n = int(cum[-1])
        if n == 0:
            return np.zeros(ps.shape, dtype=np.int64)
        requested = np.clip(ps, 0.0, 100.0)
        # HdrHistogram_c / hdrhistogram package: round half up (not ceil), at least the 1st value;
        # `p * n / 100` in this order, as the package computes it, so results match it exactly
        target = np.clip((requested * float(n) / 100.0 + 0.5).astype(np.int64), 1, n)
        idx = np.searchsorted(cum, target, side="left")
        values = np.minimum(HIGHEST_EQUIVALENT[idx], self.max)
        values[requested == 0.0] = self.min
        return values

    def value_at_percentile(self, p: float) -> int:
        """Value in us at percentile `p` (0..100, clamped): the highest value equivalent to the
        bucket where the cumulative count reaches round(p% of total), capped at the exact
        ``max``; ``p == 0`` gives ``min``; 0 when empty."""
        return int(self._percentile_values(np.array([float(p)]))[0])

    def percentiles(self, ps: Iterable[float]) -> dict[float, int]:
        """{p: value_at_percentile(p)} for several percentiles in one pass over the counts."""
        ps = list(ps)
        values = self._percentile_values(np.array(ps, dtype=np.float64))
        return {p: int(v) for p, v in zip(ps, values)}

    def summary_ms(self) -> dict[str, float]:
        """min, mean, p50, p90, p95, p99, p999, max in milliseconds (us / 1000, 3 decimals,
        i.e. microsecond resolution); all 0.0 when empty."""
        pv = self._percentile_values(np.array([50.0, 90.0, 95.0, 99.0, 99.9]))
        us = {"min": self.min, "mean": self.mean(), "p50": pv[0], "p90": pv[1], "p95": pv[2],
              "p99": pv[3], "p999": pv[4], "max": self.max}
        return {k: round(float(v) / 1000.0, 3) for k, v in us.items()}

    # ---- merging and interval deltas ------------------------------------------------------

    def add(self, other: "Histogram") -> "Histogram":
        """Merge `other` into this histogram in place (bucket-wise exact); returns self.
        If this histogram is a ``view``, the merge writes into the viewed array."""
        s, o = self.slots, other.slots
        s[HEADER_SLOTS:] += o[HEADER_SLOTS:]
        s[H_TOTAL] += o[H_TOTAL]
        s[H_MIN] = min(s[H_MIN], o[H_MIN])
        s[H_MAX] = max(s[H_MAX], o[H_MAX])
        s[H_OVERFLOW] += o[H_OVERFLOW]
        return self

    __iadd__ = add

    def __add__(self, other: "Histogram") -> "Histogram":
        return self.copy().add(other)

    def copy(self) -> "Histogram":
        return Histogram(self.slots.copy())

    def __sub__(self, earlier: "Histogram") -> "Histogram":
        """The values recorded between two cumulative snapshots of one histogram
        (``later - earlier``). The recorder tracks no per-interval min/max, so the delta's
        min/max are the lowest/highest equivalent values of its lowest/highest non-empty
        bucket, and its total is the sum of its counts."""
        d = self.slots - earlier.slots
        counts = d[HEADER_SLOTS:]
        if (counts < 0).any() or d[H_OVERFLOW] < 0:
            raise ValueError("histogram delta has negative counts: the subtrahend must be an "
                             "earlier snapshot of the same histogram")
        nz = np.flatnonzero(counts)
        d[H_TOTAL] = counts.sum()
        if nz.size:
            d[H_MIN] = LOWEST_EQUIVALENT[nz[0]]
            d[H_MAX] = HIGHEST_EQUIVALENT[nz[-1]]
        else:
            d[H_MIN], d[H_MAX] = INT64_MAX, 0
        return Histogram(d)

    # ---- standard encoding ----------------------------------------------------------------

    def encode(self) -> str:
        """HdrHistogram V2 compressed encoding as base64 text (what HdrHistogram's log files
        and tools use). Carries the counts only: min/max/overflow are not part of the format."""
        c = self.counts
        nz = np.flatnonzero(c)
        payload = bytearray()
        prev = -1
        for i, count in zip(nz.tolist(), c[nz].tolist()):
            gap = i - prev - 1
            if gap:                                 # a run of `gap` empty buckets, as a
                _put_zigzag(payload, -gap)          # negative count (HdrHistogram_c style)
            _put_zigzag(payload, count)
            prev = i
        inner = _V2_HEADER.pack(_V2_ENCODING_COOKIE, len(payload), 0, SIGNIFICANT_FIGURES,
                                LOWEST, HIGHEST, 1.0) + bytes(payload)
        compressed = zlib.compress(inner)
        blob = _COMPRESSED_HEADER.pack(_V2_COMPRESSED_COOKIE, len(compressed)) + compressed
        return base64.b64encode(blob).decode("ascii")

    @classmethod
    def decode(cls, text: str | bytes) -> "Histogram":
        """Inverse of ``encode()`` (also reads other producers' encodings of the same layout).
        The encoding has no min/max/overflow: min/max come from the lowest/highest non-empty
        bucket as for a delta, overflow is 0."""
        blob = base64.b64decode(text, validate=True)
        cookie, length = _COMPRESSED_HEADER.unpack_from(blob)
        if cookie & _COOKIE_MASK != _V2_COMPRESSED_COOKIE:
            raise ValueError(f"not an HdrHistogram V2 compressed encoding (cookie {cookie:#x})")
        if length != len(blob) - _COMPRESSED_HEADER.size:
            raise ValueError("truncated HdrHistogram encoding")
        inner = zlib.decompress(blob[_COMPRESSED_HEADER.size:])
        cookie, payload_len, offset, sf, lowest, highest, _ratio = _V2_HEADER.unpack_from(inner)
        if cookie & _COOKIE_MASK != _V2_ENCODING_COOKIE:
            raise ValueError(f"not an HdrHistogram V2 payload (cookie {cookie:#x})")
        if (lowest, sf, offset) != (LOWEST, SIGNIFICANT_FIGURES, 0):
            raise ValueError(f"histogram layout (lowest={lowest}, significant figures={sf}, "
                             f"index offset={offset}) differs from stressx's")
        end = _V2_HEADER.size + payload_len
        if end > len(inner):
            raise ValueError("truncated HdrHistogram payload")
        h = cls.empty()
        counts = h.counts
        pos, i = _V2_HEADER.size, 0
        if _decode_counts_fast(inner, pos, end, counts):
            pos = end                     # vectorised; the loop below is the general case
        while pos < end:
            v, pos = _read_zigzag(inner, pos)
            if v < 0:
                i += -v
                continue
            if v:
                if i >= COUNTS_LEN:
                    raise ValueError(f"encoded histogram has values beyond {HIGHEST} us")
                counts[i] = v
            i += 1
        nz = np.flatnonzero(counts)
        if nz.size:
            h.slots[H_TOTAL] = counts.sum()
            h.slots[H_MIN] = LOWEST_EQUIVALENT[nz[0]]
            h.slots[H_MAX] = HIGHEST_EQUIVALENT[nz[-1]]
        return h
