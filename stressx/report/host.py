"""The host part of a summary: burners' achieved vs requested levels, host metrics, safety
events. Shared by the load-run summary and `stressx burn`."""
from __future__ import annotations

from ..hostload.burners import describe
from ..units import format_bytes


def _level(kind: str, value) -> str:
    if value is None:
        return "-"
    if kind == "cpu":
        return f"{value:.2f}%"
    return describe(kind, value)


def format_host_section(s: dict) -> list[str]:
    """Lines for the host part of a summary (run or burn): burners, host, safety."""
    lines = []
    host = s.get("host") or {}
    reports = host.get("burners") or {}
    burners = (s.get("burners") or {}).get("burners") or []
    if burners:
        lines.append("  burners (achieved vs requested, steady 1 s windows):")
        for b in burners:
            r = reports.get(b["name"], {})
            text = f"    {b['name']:<6} {b['token']:<22}"
            if "achieved_mean" in r:
                unit = " pts" if r["kind"] == "cpu" else "%"
                text += (f" requested {_level(r['kind'], r['requested_mean'])}, achieved "
                         f"{_level(r['kind'], r['achieved_mean'])} (mean error "
                         f"{r['error_mean']:+.2f}{unit}, worst second {r['error_max_abs']:.2f}{unit}")
                if r.get("reached_99pct_s") is not None:
                    text += f", reached in {r['reached_99pct_s']:.1f} s"
                text += ")"
            elif "achieved_pct" in b:            # too short for 1 s windows: the whole run
                text += f" achieved {b['achieved_pct']:.2f}% over the run"
            elif "resident_bytes_last" in b:
                text += f" held {format_bytes(b['resident_bytes_last'])} at the end"
            elif "achieved_bytes_per_s" in b:
                text += f" achieved {b['achieved_bytes_per_s'] / 1e6:.1f} MB/s over the run"
            if b.get("kind") == "io" and "written_bytes" in b:
                text += f"; wrote {format_bytes(b['written_bytes'])}"
                if b.get("read_bytes"):
                    text += f", read {format_bytes(b['read_bytes'])}"
            if b.get("limited"):
                text += f"  LIMITED: {', '.join(b['limited'])}"
            if b.get("lost"):
                text += f"  LOST: {b['lost']}"
            lines.append(text)
    if host.get("samples"):
        cpu, mem = host.get("cpu_pct") or {}, host.get("mem_used_pct") or {}
        text = (f"  host: cpu mean {cpu.get('mean', 0):.1f}% max {cpu.get('max', 0):.1f}%, "
                f"memory used max {mem.get('max', 0):.1f}%, disk written "
                f"{format_bytes(host.get('disk_write_bytes') or 0)}, load1 max {host.get('load1_max') or 0:.2f}")
        if host.get("swap_out_bytes"):
            text += f", SWAPPED OUT {format_bytes(host['swap_out_bytes'])}"
        if host.get("temp_c_max") is not None:
            text += f", hottest {host['temp_c_max']:.0f} C"
        lines.append(text + f" ({host['samples']} samples in {host.get('file') or 'memory'})")
    safety = s.get("safety") or {}
    for ev in safety.get("events", [])[:10]:
        lines.append(f"  safety {ev['action']}: {ev['limit']} at {ev['t_s']:.1f}s (value {ev['value']:g})")
    for note in safety.get("notes", []):
        lines.append(f"  note: {note}")
    return lines
