"""The report's document model and its two renderers (pure): blocks (Heading, Para, Code,
Table, Figure; ``table()`` builds a Table), rendered as Markdown (``to_markdown``, the
alignment-aware ``markdown_table`` that the RFC-layout tables of ``rig bench`` use too)
and as one self-contained HTML page (``to_html``, its CSS inline, PNGs as data: URIs).
Inline markup: `code` spans and [text](relative link) in paragraphs; a whole table cell
in ``**bold**`` (``bold()``).
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    """Plain text; `code` spans in backticks."""

    text: str


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    file: str  # a PNG beside the report
    alt: str


Block = Heading | Para | Code | Table | Figure


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], caption: str = "") -> Table:
    return Table(tuple(headers), tuple(tuple(r) for r in rows), caption)


def to_markdown(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {b.text}")
        elif isinstance(b, Para):
            out.append(b.text)
        elif isinstance(b, Code):
            out.append(f"```\n{b.text}\n```")
        elif isinstance(b, Table):
            text = markdown_table(b.headers, b.rows)
            out.append(f"{b.caption}\n\n{text}" if b.caption else text)
        else:
            out.append(f"![{b.alt}]({b.file})")
    return "\n\n".join(out) + "\n"


_BOLD = re.compile(r"^\*\*(.+)\*\*$")


def bold(cell: str) -> str:
    """A table cell shown in bold (Markdown's **x**; <strong> in HTML)."""
    return f"**{cell}**"


def unbold(cell: str) -> str:
    m = _BOLD.match(cell)
    return m.group(1) if m else cell


_NUMERIC = re.compile(r"^[-+]?[\d,]*\.?\d+(e[-+]?\d+)?(%| ± [\d,]*\.?\d+)?$")
_PAD_MAX = 40  # wider cells are not padded (a plain-text reader gives up on them anyway)


def is_numeric(cell: str) -> bool:
    return bool(_NUMERIC.match(unbold(cell)))


def numeric_columns(rows: Sequence[Sequence[str]], ncols: int) -> list[bool]:
    """Columns to right-align: every cell a number or a blank ("-", "n/a"), one at least
    a number."""
    blank = ("-", "n/a")
    return [any(is_numeric(r[i]) for r in rows)
            and all(is_numeric(r[i]) or r[i] in blank for r in rows) for i in range(ncols)]


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub table: columns of numbers right-aligned, the rest left-aligned; padded
    so it reads as plain text too."""
    cells = [[c.replace("|", "\\|") for c in r] for r in rows]
    right = numeric_columns(rows, len(headers))
    widths = [min(_PAD_MAX, max([len(h), *(len(r[i]) for r in cells)]))
              for i, h in enumerate(headers)]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if r else c.ljust(w)
                                 for c, w, r in zip(row, widths, right, strict=True)) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if r else (":" + "-" * (w + 1))
                         for w, r in zip(widths, right, strict=True)) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in cells)])


_CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; font-size: 15px;
       line-height: 1.45; color: #1d1d1f; background: #fff; margin: 0 auto;
       max-width: 1100px; padding: 1.5em 2em 4em; }
h1 { font-size: 1.7em; border-bottom: 2px solid #333; padding-bottom: .2em; }
h2 { font-size: 1.35em; margin-top: 2em; border-bottom: 1px solid #bbb; }
h3 { font-size: 1.1em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: .2em 0 1.2em; font-size: 13px; }
p.caption { font-style: italic; margin: 1em 0 .2em; font-size: 13px; }
th, td { border: 1px solid #c8c8c8; padding: .25em .6em; vertical-align: top; }
th { background: #eef1f5; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #f8f9fb; }
pre { background: #f3f3f3; padding: .7em 1em; overflow-x: auto; font-size: 13px; }
code { background: #f3f3f3; padding: 0 .2em; }
figure { margin: 1em 0; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 13px; color: #555; }
"""


_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def _links(text: str) -> str:
    out, at = [], 0
    for m in _LINK.finditer(text):
        out.append(html.escape(text[at:m.start()]))
        out.append(f'<a href="{html.escape(m.group(2))}">{html.escape(m.group(1))}</a>')
        at = m.end()
    out.append(html.escape(text[at:]))
    return "".join(out)


def _inline(text: str) -> str:
    parts = text.split("`")
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else _links(p)
                   for i, p in enumerate(parts))


def _cell(c: str) -> str:
    inner = unbold(c)
    return f"<strong>{html.escape(inner)}</strong>" if inner != c else html.escape(c)


def to_html(blocks: Sequence[Block], title: str, images: Mapping[str, bytes] | None) -> str:
    """One page: inline CSS, no script, no network. With `images` (file name -> PNG
    bytes) self-contained, the PNGs as data: URIs; with None the page links each image
    by its file name, next to the page (an export, where the page stays small)."""
    body: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            body.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Code):
            body.append(f"<pre>{html.escape(b.text)}</pre>")
        elif isinstance(b, Table):
            rows = [f'<p class="caption">{_inline(b.caption)}</p>'] if b.caption else []
            rows.append("<table>")
            rows.append("<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>"
                                                 for h in b.headers) + "</tr></thead>")
            rows.append("<tbody>")
            right = numeric_columns(b.rows, len(b.headers))
            for r in b.rows:
                cells = "".join(
                    f'<td class="n">{_cell(c)}</td>' if n
                    else f"<td>{_cell(c)}</td>" for c, n in zip(r, right, strict=True))
                rows.append(f"<tr>{cells}</tr>")
            rows.append("</tbody></table>")
            body.append("\n".join(rows))
        else:
            src = (html.escape(b.file) if images is None else "data:image/png;base64,"
                   + base64.b64encode(images[b.file]).decode("ascii"))
            body.append(f'<figure><img src="{src}" '
                        f'alt="{html.escape(b.alt)}"><figcaption>{html.escape(b.alt)}'
                        "</figcaption></figure>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
