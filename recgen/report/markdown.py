"""Render a :class:`~recgen.report.document.Document` as GitHub-flavoured markdown (figures
referenced by file name, next to the markdown file)."""

from __future__ import annotations

from recgen.report.document import Cell, Document, Figure, Heading, Para, Table


def _escape(text: str) -> str:
    """Escape what would break a table cell or start markup (intra-word ``_`` and brackets
    without a following ``(`` are left alone: GitHub renders them literally)."""
    out = text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("](", "]\\(")
    for ch in "*`<>":
        out = out.replace(ch, "\\" + ch)
    return out


def _cell(c: Cell) -> str:
    text = _escape(c.text)
    if c.bold and text:
        text = f"**{text}**"
    detail = "; ".join(c.detail.splitlines())
    return f"{text} {_escape(detail)}" if detail else text


def _table(t: Table) -> str:
    lines = ["| " + " | ".join(_escape(h) for h in t.header) + " |", "|" + "---|" * len(t.header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in t.rows]
    if t.caption:
        lines += ["", f"*{_escape(t.caption)}*"]
    return "\n".join(lines)


def render(doc: Document) -> str:
    parts = [f"# {_escape(doc.title)}"]
    for b in doc.blocks:
        if isinstance(b, Heading):
            parts.append(f"{'#' * b.level} {_escape(b.text)}")
        elif isinstance(b, Para):
            parts.append(f"> **Note:** {_escape(b.text)}" if b.kind == "note" else _escape(b.text))
        elif isinstance(b, Table):
            parts.append(_table(b))
        elif isinstance(b, Figure):
            parts.append(f"![{_escape(b.caption)}]({b.path.name})\n\n*{_escape(b.caption)}*")
        else:  # pragma: no cover - programming error
            raise TypeError(f"unknown block {b!r}")
    return "\n\n".join(parts) + "\n"
