"""The document model and its Markdown and HTML renderers."""

from rig.report.document import (
    Code,
    Figure,
    Heading,
    Para,
    markdown_table,
    table,
    to_html,
    to_markdown,
)


def test_markdown_and_html_renderers():
    blocks = [Heading(1, "T <1>"), Para("a `b<c>` d"), Code("x | y"),
              table(["metric", "value"], [["a|b", "1,234"], ["c", "n/a"]], "cap"),
              Figure("f.png", "a plot")]
    md = to_markdown(blocks)
    assert md.startswith("# T <1>\n\na `b<c>` d\n\n```\nx | y\n```\n\ncap\n\n")
    assert "| a\\|b   | 1,234 |" in md
    assert "|:-------|------:|" in md
    assert md.endswith("![a plot](f.png)\n")
    page = to_html(blocks, "T", {"f.png": b"\x89PNG"})
    assert "<h1>T &lt;1&gt;</h1>" in page
    assert "<p>a <code>b&lt;c&gt;</code> d</p>" in page
    assert '<td class="n">1,234</td>' in page and "<td>a|b</td>" in page
    assert 'src="data:image/png;base64,iVBORw=="' in page
    assert "<script" not in page and "http" not in page.replace('lang="en"', "")
    linked = to_html(blocks, "T", None)  # an export's page: the PNG beside it
    assert '<img src="f.png" alt="a plot">' in linked and "base64" not in linked


def test_markdown_table_alignment():
    """Columns of numbers right-aligned, headers included; no rows: left-aligned."""
    t = markdown_table(["a", "bb"], [["1", "22222"]]).splitlines()
    assert t == ["| a |    bb |", "|--:|------:|", "| 1 | 22222 |"]
    assert markdown_table(["a", "bb"], []).splitlines() == ["| a | bb |", "|:--|:---|"]
