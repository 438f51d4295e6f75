"""stressx.results.hdr against the reference ``hdrhistogram`` package (import name ``hdrh``).

The reference histogram uses the same parameters (1, 3_600_000_000, 3 significant figures), so
indices, bucket values, percentiles and means are compared exactly. Known, intended differences:
our min/max are the exact tracked values (the package reports bucket-equivalent ones) and our
percentiles are capped at the exact max; the tests apply exactly those two rules to the
package's answers. Only stdev is compared with a tolerance (1e-12 relative: float summation order).
"""
import base64
import random
import struct
import zlib

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from stressx.engine import _core
from stressx.results import hdr

Histogram = hdr.Histogram
PERCENTILES = [0.0, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 99.999, 100.0]


def reference(values) -> HdrHistogram:
    ref = HdrHistogram(hdr.LOWEST, hdr.HIGHEST, hdr.SIGNIFICANT_FIGURES)
    for v in values:
        assert ref.record_value(int(v))
    return ref


def latency_sample(seed: int, n: int = 100_000) -> list[int]:
    """Lognormal latencies around 2 ms with a heavy tail, plus edge values, in us."""
    rng = np.random.default_rng(seed)
    body = rng.lognormal(mean=np.log(2000.0), sigma=1.2, size=n)
    tail = rng.pareto(1.5, size=n // 100) * 50_000 + 100_000
    values = np.concatenate([body, tail]).astype(np.int64)
    values = np.clip(values, 0, hdr.HIGHEST)
    return values.tolist() + [0, 1, 2047, 2048, hdr.HIGHEST]


@pytest.fixture(scope="module")
def sample():
    values = latency_sample(1)
    return values, Histogram.from_values(values), reference(values)


def expected_percentile(ref: HdrHistogram, h: Histogram, p: float) -> int:
    """The package's answer with our two documented rules applied."""
    if p == 0:
        return h.min
    return min(ref.get_value_at_percentile(p), h.max)


# ---- layout and index maths ----------------------------------------------------------------

def test_layout_constants_match_reference():
    ref = HdrHistogram(1, 3_600_000_000, 3)
    assert hdr.COUNTS_LEN == ref.counts_len == 23552
    assert hdr.BUCKET_COUNT == ref.bucket_count == 22
    assert hdr.SUB_BUCKET_COUNT == ref.sub_bucket_count == 2048
    assert hdr.SUB_BUCKET_HALF_COUNT == ref.sub_bucket_half_count == 1024
    assert hdr.SUB_BUCKET_HALF_COUNT_MAGNITUDE == ref.sub_bucket_half_count_magnitude == 10
    assert hdr.SUB_BUCKET_MASK == ref.sub_bucket_mask == 2047
    assert hdr.UNIT_MAGNITUDE == ref.unit_magnitude == 0
    assert hdr.SLOTS == hdr.HEADER_SLOTS + hdr.COUNTS_LEN == 23556


def index_probe_values() -> list[int]:
    values = {0, 1, 2, 1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096, 4097,
              hdr.HIGHEST - 1, hdr.HIGHEST}
    for k in range(1, 33):
        values.update({(1 << k) - 1, 1 << k, (1 << k) + 1})
    rng = random.Random(7)
    values.update(rng.randint(0, hdr.HIGHEST) for _ in range(20_000))
    values.update(int(10 ** rng.uniform(0, 9.55)) for _ in range(20_000))  # log-uniform
    return sorted(values)


def test_counts_index_matches_reference():
    ref = HdrHistogram(1, 3_600_000_000, 3)
    for v in index_probe_values():
        assert hdr.counts_index(v) == ref.get_counts_array_index(v), v
        if v <= hdr.HIGHEST:
            assert 0 <= hdr.counts_index(v) < hdr.COUNTS_LEN
    assert hdr.counts_index(hdr.HIGHEST) == ref.get_counts_array_index(hdr.HIGHEST)
    with pytest.raises(ValueError):
        hdr.counts_index(-1)


def test_vectorised_index_matches_scalar():
    values = [v for v in index_probe_values() if v <= hdr.HIGHEST]
    got = hdr._counts_index_array(np.array(values, dtype=np.int64))
    assert got.tolist() == [hdr.counts_index(v) for v in values]


def test_equivalent_value_tables_match_reference():
    ref = HdrHistogram(1, 3_600_000_000, 3)
    for i in range(hdr.COUNTS_LEN):
        v = ref.get_value_from_index(i)
        assert hdr.LOWEST_EQUIVALENT[i] == v == ref.get_lowest_equivalent_value(v)
        assert hdr.HIGHEST_EQUIVALENT[i] == ref.get_highest_equivalent_value(v)
        assert hdr.MEDIAN_EQUIVALENT[i] == ref._hdr_median_equiv_value(v)
        assert hdr.counts_index(v) == i
    # buckets tile the value range without gaps
    assert (hdr.LOWEST_EQUIVALENT[1:] == hdr.HIGHEST_EQUIVALENT[:-1] + 1).all()


# ---- statistics against the reference ------------------------------------------------------

def test_counts_and_header_match_reference(sample):
    values, h, ref = sample
    assert h.counts.tolist() == list(ref.counts)
    assert h.total == ref.get_total_count() == len(values)
    assert h.min == min(values) == ref.min_value
    assert h.max == max(values) == ref.max_value
    assert h.overflow == 0


def test_percentiles_match_reference(sample):
    values, h, ref = sample
    got = h.percentiles(PERCENTILES)
    for p in PERCENTILES:
        want = expected_percentile(ref, h, p)
        assert got[p] == want, p
        assert h.value_at_percentile(p) == want, p
    # the package's dict variant agrees too
    ref_dict = ref.get_percentile_to_value_dict(PERCENTILES[1:-1])
    assert {p: got[p] for p in PERCENTILES[1:-1]} == ref_dict
    # sanity against the raw data: within 0.1 % (3 significant figures) of numpy's order stat
    s = np.sort(np.array(values))
    for p in (50.0, 90.0, 99.0):
        exact = s[int(p / 100 * len(s) + 0.5) - 1]
        assert exact <= got[p] <= exact * 1.001


def test_mean_and_stdev_match_reference(sample):
    _, h, ref = sample
    assert h.mean() == ref.get_mean_value()
    assert h.stdev() == pytest.approx(ref.get_stddev(), rel=1e-12)
    assert h.stdev() > 0


def test_percentile_capped_at_exact_max_and_p0_is_exact_min():
    h = Histogram.from_values([1_234_567, 1_500_001])
    ref = reference([1_234_567, 1_500_001])
    assert ref.get_value_at_percentile(100) == 1_500_159           # bucket's highest value
    assert h.value_at_percentile(100) == h.max == 1_500_001
    assert h.value_at_percentile(50) == ref.get_value_at_percentile(50) == 1_234_943
    assert h.value_at_percentile(0) == h.min == 1_234_567
    assert ref.get_value_at_percentile(0) == 1_233_920              # bucket's lowest value
    assert h.value_at_percentile(250) == h.max                       # clamped to 100
    assert h.value_at_percentile(-5) == h.min                        # clamped to 0


def test_percentile_rounding_is_hdrhistogram_c_round_half_up():
    # 4 values: p37.5 -> 1.5 -> rounds up to the 2nd value; p37 -> 1.48 -> the 1st
    h = Histogram.from_values([10, 20, 30, 40])
    ref = reference([10, 20, 30, 40])
    assert h.value_at_percentile(37.5) == ref.get_value_at_percentile(37.5) == 20
    assert h.value_at_percentile(37.0) == ref.get_value_at_percentile(37.0) == 10
    assert h.value_at_percentile(12.4) == 10                          # at least the 1st value


def test_summary_ms():
    h = Histogram.from_values(range(1, 1000))          # 1 us .. 999 us, single-us buckets
    assert h.summary_ms() == {"min": 0.001, "mean": 0.5, "p50": 0.5, "p90": 0.899,
                              "p95": 0.949, "p99": 0.989, "p999": 0.998, "max": 0.999}
    big = Histogram.from_values([2_000_000, 3_000_000])
    s = big.summary_ms()
    assert s["min"] == 2000.0 and s["max"] == 3000.0
    assert big.value_at_percentile(50) == reference([2_000_000]).get_value_at_percentile(50)
    assert s["p50"] == round(big.value_at_percentile(50) / 1000, 3) == 2000.895
    assert s["mean"] == round(big.mean() / 1000, 3)


def test_out_of_range_values_are_clamped_and_counted_like_the_recorder():
    h = Histogram.from_values([5, hdr.HIGHEST + 10, -3, hdr.HIGHEST])
    assert h.total == 4
    assert h.overflow == 2
    assert h.min == 0
    assert h.max == hdr.HIGHEST
    assert h.counts[hdr.counts_index(hdr.HIGHEST)] == 2
    assert h.counts[0] == 1
    assert h.value_at_percentile(100) == hdr.HIGHEST


def test_matches_compiled_recorder():
    """from_values() mirrors the Cython recorder slot for slot."""
    values = latency_sample(5, 20_000) + [-7, hdr.HIGHEST + 1, 2 ** 40]
    arr = np.zeros(hdr.SLOTS, dtype=np.int64)
    _core.Recorder(arr).record_many(np.array(values, dtype=np.int64))
    assert arr[hdr.H_TOTAL] == len(values)
    assert Histogram.view(arr) == Histogram.from_values(values)
    for v in index_probe_values():
        if v <= hdr.HIGHEST:
            assert _core.counts_index(v) == hdr.counts_index(v)


# ---- merge and deltas ----------------------------------------------------------------------

def test_merge_equals_histogram_of_concatenation():
    a_vals, b_vals = latency_sample(2, 30_000), latency_sample(3, 50_000)
    a, b = Histogram.from_values(a_vals), Histogram.from_values(b_vals)
    both = Histogram.from_values(a_vals + b_vals)
    assert a + b == both
    assert a.total == len(a_vals)                       # __add__ leaves its operands alone
    a += b
    assert a == both
    assert a.total == len(a_vals) + len(b_vals)
    assert a.min == min(a_vals + b_vals) and a.max == max(a_vals + b_vals)
    # overflow counts add up too
    odd_a, odd_b = [-1, 5], [hdr.HIGHEST + 1, 7]
    merged = Histogram.from_values(odd_a) + Histogram.from_values(odd_b)
    assert merged == Histogram.from_values(odd_a + odd_b)
    assert merged.overflow == 2
    # merging into an empty histogram keeps the other's exact min/max
    e = Histogram.empty()
    e.add(b)
    assert e == b


def test_delta_of_cumulative_snapshots_equals_new_values():
    old, new = latency_sample(4, 40_000), latency_sample(5, 10_000)[:-5]  # no edge values
    earlier = Histogram.from_values(old)
    later = Histogram.from_values(old + new)
    d = later - earlier
    fresh = Histogram.from_values(new)
    assert d.counts.tolist() == fresh.counts.tolist()
    assert d.total == len(new)
    assert d.min == hdr.LOWEST_EQUIVALENT[hdr.counts_index(min(new))]
    assert d.max == hdr.HIGHEST_EQUIVALENT[hdr.counts_index(max(new))]
    # with bucket-derived min/max the cap is a no-op: percentiles equal the package's exactly
    ref = reference(new)
    for p in PERCENTILES[1:]:
        assert d.value_at_percentile(p) == ref.get_value_at_percentile(p), p
    assert d.mean() == fresh.mean() == ref.get_mean_value()
    with pytest.raises(ValueError):
        earlier - later
    # a delta's min/max are bucket bounds, not raw values (5_000_123 us: a 4 ms wide bucket),
    # the bounds the reference package gives that bucket
    d2 = Histogram.from_values(old + [5_000_123]) - earlier
    bounds = (ref.get_lowest_equivalent_value(5_000_123), ref.get_highest_equivalent_value(5_000_123))
    assert bounds == (4_997_120, 5_001_215)
    assert (d2.total, d2.min, d2.max) == (1, *bounds)
    nothing = later - later
    assert nothing.total == 0 and nothing.min == 0 and nothing.max == 0


def test_from_slots_copies_and_view_does_not():
    arr = Histogram.from_values([100, 200]).slots.copy()
    copied, viewed = Histogram.from_slots(arr), Histogram.view(arr)
    viewed += Histogram.from_values([300])
    assert arr[hdr.H_TOTAL] == 3 and arr[hdr.H_MAX] == 300
    assert copied.total == 2 and copied.max == 200
    with pytest.raises(ValueError):
        Histogram.from_slots(arr[:-1])
    with pytest.raises(ValueError):
        Histogram.view(arr.astype(np.float64))


# ---- standard encoding ---------------------------------------------------------------------

def test_encode_decodes_with_reference_package(sample):
    values, h, ref = sample
    text = h.encode()
    assert base64.b64decode(text, validate=True)[:4] == struct.pack(">I", 0x1C849304)  # V2 compressed
    decoded = HdrHistogram.decode(text)
    assert decoded.get_total_count() == h.total
    assert list(decoded.counts)[:hdr.COUNTS_LEN] == h.counts.tolist()
    for p in PERCENTILES[1:]:
        assert decoded.get_value_at_percentile(p) == ref.get_value_at_percentile(p), p
    assert decoded.get_mean_value() == ref.get_mean_value()


def test_encoded_payload_is_byte_identical_to_reference_package(sample):
    """Same header fields and the same ZigZag LEB128 bytes as the package's (C) encoder; only
    the cookies differ in the 0x10 flag nibble that every decoder masks off."""
    _, h, ref = sample
    ours = base64.b64decode(h.encode())
    theirs = base64.b64decode(ref.encode())
    assert struct.unpack(">I", ours[:4])[0] == 0x1C849304
    assert struct.unpack(">I", theirs[:4])[0] & ~0xF0 == 0x1C849304
    ours_inner, theirs_inner = zlib.decompress(ours[8:]), zlib.decompress(theirs[8:])
    assert struct.unpack(">I", ours_inner[:4])[0] == 0x1C849303
    assert ours_inner[4:] == theirs_inner[4:]
    assert len(ours_inner) > 40 + 1000


def test_decode_reads_reference_package_encoding(sample):
    _, h, ref = sample
    got = Histogram.decode(ref.encode())        # the package's cookies carry the 0x10 flag
    assert got.counts.tolist() == h.counts.tolist()
    assert got.total == h.total


def test_round_trip(sample):
    _, h, _ = sample
    back = Histogram.decode(h.encode())
    assert back.counts.tolist() == h.counts.tolist()
    assert back.total == h.total
    assert back.min == hdr.LOWEST_EQUIVALENT[hdr.counts_index(h.min)]
    assert back.max == hdr.HIGHEST_EQUIVALENT[hdr.counts_index(h.max)]
    assert back.overflow == 0
    for p in PERCENTILES[1:-1]:
        assert back.value_at_percentile(p) == min(h.value_at_percentile(p), back.max)


def huge_sparse(count3: int) -> Histogram:
    h = Histogram.empty()
    c = h.counts
    c[0] = 1
    c[2] = 2 ** 54 + 3                  # 8-byte varint, after a single empty bucket
    c[3] = count3
    c[hdr.COUNTS_LEN - 1] = 7           # after a long zero run, the very last bucket
    h.slots[hdr.H_TOTAL] = int(c.sum())
    h.slots[hdr.H_MIN], h.slots[hdr.H_MAX] = 0, int(hdr.HIGHEST_EQUIVALENT[-1])
    return h


def test_encoding_of_huge_counts_and_sparse_buckets():
    """Counts needing 8 and 9 LEB128 bytes, lone zeros and long zero runs."""
    h = huge_sparse(2 ** 62 - 5)        # 9-byte varint
    assert Histogram.decode(h.encode()) == h
    decoded = HdrHistogram.decode(h.encode())
    assert list(decoded.counts)[:hdr.COUNTS_LEN] == h.counts.tolist()
    # zigzag(2**62 + 5) needs bit 63: the 9th byte carries 8 bits (Java's ZigZagEncoding).
    # The package's encoder writes the same bytes as ours; its decoder drops that bit, so
    # only our own round trip is checked for it.
    h = huge_sparse(2 ** 62 + 5)
    assert Histogram.decode(h.encode()) == h
    ref = HdrHistogram(1, 3_600_000_000, 3)
    for i in np.flatnonzero(h.counts):
        ref.record_value(ref.get_value_from_index(int(i)), int(h.counts[i]))
    ours_inner = zlib.decompress(base64.b64decode(h.encode())[8:])
    assert ours_inner[4:] == zlib.decompress(base64.b64decode(ref.encode())[8:])[4:]
    assert ours_inner[40 + 1 + 1 + 8:][:9] == bytes([0x8A] + [0x80] * 8)


def test_vectorised_decode_agrees_with_the_byte_loop(monkeypatch):
    """The numpy decoder (taken for every ordinary histogram) and the byte-by-byte loop (kept
    for 9-byte counts) read the same counts from the same encodings."""
    rng = np.random.default_rng(7)
    encodings = []
    for _ in range(60):
        values = rng.lognormal(np.log(rng.uniform(5, 1e6)), rng.uniform(0.1, 3),
                               int(rng.integers(0, 5000)))
        h = Histogram.from_values(np.clip(values, 0, 2 * hdr.HIGHEST).astype(np.int64))
        h.counts[int(rng.integers(0, hdr.COUNTS_LEN))] += int(rng.integers(1, 2 ** 54))
        h.slots[hdr.H_TOTAL] = int(h.counts.sum())
        encodings.append((h, h.encode()))
    for h, text in encodings:
        inner = zlib.decompress(base64.b64decode(text)[8:])
        counts = np.zeros(hdr.COUNTS_LEN, dtype=np.int64)
        assert hdr._decode_counts_fast(inner, 40, len(inner), counts)
        assert counts.tolist() == h.counts.tolist()
    fast = [Histogram.decode(text) for _, text in encodings]
    monkeypatch.setattr(hdr, "_decode_counts_fast", lambda *a: False)
    for (h, text), f in zip(encodings, fast):
        assert Histogram.decode(text) == f
        assert f.counts.tolist() == h.counts.tolist()


def test_decode_rejects_foreign_layout_and_garbage():
    other = HdrHistogram(1, 3_600_000_000, 2)
    other.record_value(5)
    with pytest.raises(ValueError):
        Histogram.decode(other.encode())
    with pytest.raises(ValueError):
        Histogram.decode("AAAAAAAAAAA=")


# ---- empty ---------------------------------------------------------------------------------

def test_empty_histogram():
    e = Histogram.empty()
    assert e.slots[hdr.H_MIN] == hdr.INT64_MAX and e.slots[hdr.H_MAX] == 0
    assert (e.total, e.min, e.max, e.overflow) == (0, 0, 0, 0)
    assert e.mean() == 0.0 and e.stdev() == 0.0
    assert e.value_at_percentile(50) == 0 and e.value_at_percentile(0) == 0
    assert e.percentiles([50, 99.9]) == {50: 0, 99.9: 0}
    assert set(e.summary_ms().values()) == {0.0}
    assert Histogram.from_values([]) == e
    assert e + e == e                                  # min stays "nothing recorded"
    assert e - e == e
    assert Histogram.decode(e.encode()) == e
    assert HdrHistogram.decode(e.encode()).get_total_count() == 0
