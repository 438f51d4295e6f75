"""Result files: readable while written, after a kill, and by standard tools."""
import json

import pyarrow as pa
import pytest
from stressx.engine import _core
from stressx.results.files import ResultsWriter, interval_schema, load_results, read_intervals
from stressx.results.hdr import Histogram


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
    assert table.schema.metadata[b"stressx_format_version"] == b"5"


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


# -- format versions ---------------------------------------------------------------------------
_AS_IS = object()


def _v1_copy(tmp_path, version=_AS_IS):
    """A copy of the version 1 fixture; `version` rewrites its manifest's (None: removed)."""
    from report_fixtures import copy_run
    d = copy_run(tmp_path)
    if version is not _AS_IS:
        m = json.loads((d / "manifest.json").read_text())
        m.pop("format_version")
        if version is not None:
            m["format_version"] = version
        (d / "manifest.json").write_text(json.dumps(m))
    return d


def test_writer_and_schemas_say_the_current_version():
    from stressx.results.files import FORMAT_VERSION, READABLE_VERSIONS, scenario_interval_schema
    assert FORMAT_VERSION == 5 and READABLE_VERSIONS == (1, 2, 3, 4, 5)
    for schema in (interval_schema(False), interval_schema(True), scenario_interval_schema()):
        assert schema.metadata[b"stressx_format_version"] == b"5"


def test_a_version_1_directory_reads_with_defaults():
    from report_fixtures import RUN_V1
    r = load_results(RUN_V1)
    assert r.manifest["format_version"] == 1 and r.format_version == 1
    assert r.summary["requests"] == 800 and r.histograms["latency"].total == 798
    for table in (r.intervals, r.shard_intervals):
        assert table.schema.names == [f.name for f in interval_schema(table is r.shard_intervals)]
        assert set(table.column("users").to_pylist()) == {None}      # not recorded in version 1
        assert set(table.column("all_latency_ms_p99").to_pylist()) == {None}   # nor before 3
        assert set(table.column("errors_fd_limit").to_pylist()) == {None}      # a kind added since
        # nor the accounting of version 4: null, not recorded (never a made-up 0 or False)
        assert set(table.column("saturated").to_pylist()) == {None}
        assert set(table.column("saturation").to_pylist()) == {None}
        assert set(table.column("due").to_pylist()) == {None}
        assert set(table.column("dropped_run_ended").to_pylist()) == {None}
        assert set(table.column("cpu_pct").to_pylist()) == {None}     # nor the CPU of 5
        assert set(table.column("cpu_busy").to_pylist()) == {None}
        assert table.schema.metadata[b"stressx_format_version"] == b"1"
    assert r.intervals.num_rows == 5 and sum(r.intervals.column("sent").to_pylist()) == 800
    assert r.scenario_intervals is None


def test_report_and_compare_read_version_1(tmp_path):
    from conftest import run_cli
    d = _v1_copy(tmp_path)
    r = run_cli("report", d, "--format", "json,md")
    assert r.returncode == 0, r.stderr
    assert json.loads((d / "report.json").read_text())["summary"]["requests"] == 800
    r = run_cli("compare", d, d)
    assert r.returncode == 0, r.stderr


def test_a_newer_directory_is_refused(tmp_path):
    from stressx.results.files import FormatVersionError
    d = _v1_copy(tmp_path, version=99)
    with pytest.raises(FormatVersionError, match=r"results format version 99 is newer") as info:
        load_results(d)
    assert str(info.value).startswith(f"{d}: ")


@pytest.mark.parametrize("version", [99, "2.0", None])
def test_cli_refuses_a_newer_or_unknown_version_with_exit_2(tmp_path, version):
    from conftest import run_cli
    from report_fixtures import RUN_V1
    d = _v1_copy(tmp_path, version=version)
    for args in (("report", d, "--format", "md"), ("compare", RUN_V1, d), ("compare", d, RUN_V1)):
        r = run_cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("stressx: error: "), r.stderr
        assert str(d) in lines[0] and "format version" in lines[0] and str(version) in lines[0]
    assert not (d / "report.md").exists()


def test_baselines_refuse_a_newer_version(tmp_path, monkeypatch):
    from stressx.errors import ConfigError
    from stressx.judge.compare import resolve_baseline, save_baseline
    monkeypatch.setenv("STRESSX_BASELINES", str(tmp_path / "baselines"))
    d = _v1_copy(tmp_path, version=99)
    with pytest.raises(ConfigError, match="--baseline.*format version 99"):
        resolve_baseline(d)
    with pytest.raises(ConfigError, match="format version 99"):
        save_baseline("nightly", d)
    ok = _v1_copy(tmp_path / "v1")
    assert resolve_baseline(ok) == ok and save_baseline("nightly", ok).is_dir()


def test_a_newer_stream_is_refused(tmp_path):
    from stressx.hostload.hostmetrics import read_host
    from stressx.results.files import FORMAT_VERSION, FormatVersionError
    newer = str(FORMAT_VERSION + 1)
    schema = interval_schema(False).with_metadata({"stressx_format_version": newer})
    path = tmp_path / "host.arrows"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        writer.write_batch(pa.RecordBatch.from_pylist([_row(1, 5)], schema=schema))
    for read in (read_intervals, read_host):
        with pytest.raises(FormatVersionError, match=f"version {newer} is newer"):
            read(path)
