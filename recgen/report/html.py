"""Render a :class:`~recgen.report.document.Document` as one self-contained HTML page: inline
CSS, figures embedded as base64 ``data:`` URIs, no scripts, nothing fetched."""

from __future__ import annotations

import base64
import re
from html import escape

from recgen.report.document import Cell, Document, Figure, Heading, Para, Table

CSS = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #212529;
       margin: 0; background: #f8f9fa; }
main { max-width: 1280px; margin: 0 auto; padding: 20px 24px 48px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 8px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid #dee2e6; }
h3 { font-size: 16px; margin: 24px 0 8px; }
p.note { background: #fff9db; border-left: 4px solid #fab005; padding: 6px 10px; margin: 8px 0; }
nav { font-size: 13px; margin: 8px 0 16px; }
nav a { margin-right: 14px; color: #1c7ed6; text-decoration: none; }
.scroll { overflow-x: auto; margin: 8px 0 4px; }
table { border-collapse: collapse; font-size: 12.5px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #dee2e6; padding: 3px 6px; text-align: right; vertical-align: top; }
th { background: #f1f3f5; font-weight: 600; text-align: center; }
td:first-child, th:first-child { text-align: left; white-space: nowrap; }
tr:nth-child(even) td { background: #fcfcfd; }
td.best { background: #d3f9d8 !important; font-weight: 700; }
td small { display: block; color: #868e96; font-weight: 400; white-space: nowrap; font-size: 11px; }
.caption { color: #495057; font-size: 12.5px; margin: 4px 0 16px; max-width: 1000px; }
figure { margin: 12px 0 20px; }
figure img { max-width: 100%; height: auto; border: 1px solid #e9ecef; }
figcaption { color: #495057; font-size: 12.5px; }
"""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def _cell(c: Cell) -> str:
    cls = ' class="best"' if c.bold else ""
    detail = "".join(f"<small>{escape(line)}</small>" for line in c.detail.split("\n") if line)
    return f"<td{cls}>{escape(c.text)}{detail}</td>"


def _table(t: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in t.header)
    body = "\n".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in t.rows)
    caption = f'<p class="caption">{escape(t.caption)}</p>' if t.caption else ""
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>{caption}'


def _figure(f: Figure) -> str:
    data = base64.b64encode(f.path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{escape(f.caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{escape(f.caption)}</figcaption></figure>")


def render(doc: Document) -> str:
    body, toc, used = [], [], set()
    for b in doc.blocks:
        if isinstance(b, Heading):
            anchor, n = _slug(b.text), 2
            while anchor in used:
                anchor, n = f"{_slug(b.text)}-{n}", n + 1
            used.add(anchor)
            if b.level == 2:
                toc.append(f'<a href="#{anchor}">{escape(b.text)}</a>')
            body.append(f'<h{b.level} id="{anchor}">{escape(b.text)}</h{b.level}>')
        elif isinstance(b, Para):
            cls = ' class="note"' if b.kind == "note" else ""
            body.append(f"<p{cls}>{escape(b.text)}</p>")
        elif isinstance(b, Table):
            body.append(_table(b))
        elif isinstance(b, Figure):
            body.append(_figure(b))
        else:  # pragma: no cover - programming error
            raise TypeError(f"unknown block {b!r}")
    nav = f"<nav>{''.join(toc)}</nav>" if toc else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(doc.title)}</title><style>{CSS}</style></head>\n"
            f"<body><main><h1>{escape(doc.title)}</h1>{nav}\n" + "\n".join(body) + "\n</main></body></html>\n")
