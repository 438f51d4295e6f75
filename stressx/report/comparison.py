"""A comparison (judge.compare's dict: baseline vs current) as text, Markdown and HTML.

`FORMATTERS` serve `stressx compare --format`; the Markdown and HTML reports embed a run's
comparison.json with format_markdown() and html_section().
"""
from __future__ import annotations

from html import escape

from .page import page, table


def _title(c: dict) -> str:
    base = c["baseline"]["name"] or c["baseline"]["path"]
    return f"Compared with baseline {base}"


def _marker(r: dict) -> str:
    return "REGRESSION" if r["regression"] else ("improved" if r["improvement"] else "")


def format_text(c: dict) -> str:
    lines = [f"{_title(c)} (regression threshold {c['threshold_pct']:g}%)"]
    lines += [f"  note: {d}" for d in c["differences"]]
    lines.append(f"  {'metric':<28}{'baseline':>12}{'current':>12}{'change':>14}")
    for r in c["rows"]:
        name = (f"{r['scenario']}: " if r["scenario"] else "") + r["label"]
        unit = "" if r["unit"] == "%" else f" {r['unit']}"
        lines.append(f"  {name + unit:<28}{r['baseline_text']:>12}{r['current_text']:>12}"
                     f"{r['change_text']:>14}  {_marker(r)}".rstrip())
    verdict = (f"  {len(c['regressions'])} regression(s): {', '.join(c['regressions'])}"
               if c["regressions"] else "  no regression")
    lines.append(verdict)
    return "\n".join(lines)


def format_markdown(c: dict, heading: str = "##") -> str:
    head = "❌" if c["regressions"] else "✅"
    out = [f"{heading} {head} {_title(c)}", "",
           f"Regression threshold {c['threshold_pct']:g}%: "
           + (f"**{len(c['regressions'])} regression(s)**: {', '.join(c['regressions'])}"
              if c["regressions"] else "no regression."), ""]
    if c["differences"]:
        out += [f"> - {d}" for d in c["differences"]] + [""]
    out += ["| metric | baseline | current | change | |", "| :--- | ---: | ---: | ---: | :--- |"]
    for r in c["rows"]:
        name = (f"`{r['scenario']}` " if r["scenario"] else "") + r["label"]
        unit = "" if r["unit"] == "%" else f" ({r['unit']})"
        mark = "❌ regression" if r["regression"] else ("improved" if r["improvement"] else "")
        out.append(f"| {name}{unit} | {r['baseline_text']} | {r['current_text']} | "
                   f"{r['change_text']} | {mark} |")
    return "\n".join(out) + "\n"


def html_section(c: dict) -> str:
    rows, classes = [], []
    for r in c["rows"]:
        name = (f"{r['scenario']}: " if r["scenario"] else "") + r["label"]
        unit = "" if r["unit"] == "%" else f" ({r['unit']})"
        rows.append([name + unit, r["baseline_text"], r["current_text"], r["change_text"], _marker(r)])
        classes.append("fail" if r["regression"] else "pass")
    notes = "".join(f"<li>{escape(d)}</li>" for d in c["differences"])
    verdict = (f"{len(c['regressions'])} regression(s): {', '.join(c['regressions'])}"
               if c["regressions"] else "no regression")
    return (f'<h2 id="comparison">{escape(_title(c))}</h2>'
            f'<p>Regression threshold {c["threshold_pct"]:g}%: <strong>{escape(verdict)}</strong></p>'
            + (f'<ul class="alerts">{notes}</ul>' if notes else "")
            + table(["metric", "baseline", "current", "change", ""], rows, classes, "comparison"))


def format_html(c: dict) -> str:
    return page(_title(c), "<h1>stressx comparison</h1>" + html_section(c))


FORMATTERS = {"text": format_text, "md": format_markdown, "html": format_html}


