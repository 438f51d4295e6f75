"""Result files: readable while written, after a kill, and by standard tools."""
import json

import pyarrow as pa
import pytest
from stressx import _core
from stressx.hdr import Histogram
from stressx.results import ResultsWriter, interval_schema, load_results, read_intervals


def _row(t, sent):
    row = {f.name: None for f in interval_schema(False)}
    row.update({name: 0 for name in ("sent", "completed", "ok", "errors", "late", "dropped",
                                      "bytes_in", "bytes_out", "conn_open", "inflight", "users")})
    row.update({f"errors_{k}": 0 for k in _core.ERROR_KINDS})
    row.update(t_s=float(t), interval_s=1.0, sent=sent, status={200: sent}, rps=float(sent),
               sent_rps=float(sent))
    return row


def test_stream_cut_mid_batch_keeps_complete_batches(tmp_path):
    w = ResultsWriter(tmp_path)
    for t in range(1, 4):
        w.intervals([_row(t, 10 * t)], [])
    # no close(): a killed writer never writes the end-of-stream marker
    path = tmp_path / "intervals.arrows"
    data = path.read_bytes()
    path.write_bytes(data[:-7])      # and its last batch is cut short
    table = read_intervals(path)
    assert table.column("sent").to_pylist() == [10, 20]
    assert table.schema.metadata[b"stressx_format_version"] == b"1"


def test_stream_written_to_the_end_reads_in_plain_pyarrow(tmp_path):
    w = ResultsWriter(tmp_path)
    w.intervals([_row(1, 5), _row(2, 6)], [])
    w.close()
    with pa.ipc.open_stream(str(tmp_path / "intervals.arrows")) as reader:
        table = reader.read_all()
    assert table.column("sent").to_pylist() == [5, 6]
    assert table.column("status").to_pylist()[0] == [(200, 5)]


def test_unknown_format_version_is_refused(tmp_path):
    w = ResultsWriter(tmp_path)
    w.manifest({"url": "x"})
    w.summary({"format_version": 1})
    w.close()
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["format_version"] = 99
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="format version 99"):
        load_results(tmp_path)


def test_histograms_file_round_trip(tmp_path):
    h = Histogram.from_values([100, 200, 300, 5000])
    w = ResultsWriter(tmp_path)
    w.histograms({"latency": h}, [{"latency": h}])
    w.manifest({})
    w.close()
    back = load_results(tmp_path).histograms["latency"]
    assert back.total == 4 and (back.counts == h.counts).all()
    # the standard encoding keeps buckets, not the exact extremes: max is its bucket's top, as
    # the reference package places it (5000 us sits in a 4 us wide bucket: 5000..5003)
    from hdrh.histogram import HdrHistogram
    assert back.max == HdrHistogram(1, 3_600_000_000, 3).get_highest_equivalent_value(5000) == 5003
    assert back.min == 100
