"""The live page at GET /: one self-contained HTML file (page.html beside this module, with
plotly.js embedded from the installed `plotly` package: no CDN, no external fonts), whose own
script follows the run through /v1/ws and draws with Plotly.react / Plotly.extendTraces."""
from __future__ import annotations

import functools
from pathlib import Path

PLACEHOLDER = "/*PLOTLY_JS*/"


@functools.lru_cache(maxsize=1)
def page_html() -> str:
    from plotly.offline import get_plotlyjs
    template = (Path(__file__).with_name("page.html")).read_text(encoding="utf-8")
    # a literal "</script" inside the library would end the inline script early
    return template.replace(PLACEHOLDER, get_plotlyjs().replace("</script", "<\\/script"), 1)
