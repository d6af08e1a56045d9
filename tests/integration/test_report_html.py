"""report.html in a real browser: headless Chromium loads the golden results' report and
says whether every table and image is there and visible (no VMs: not marked `vm`)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rig.report.report import write_report
from tests import FIXTURES

GOLDEN = FIXTURES / "results" / "quick-golden"
CHROMIUM = shutil.which("chromium")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (Debian package `chromium`; `rig bootstrap` installs it)")

# Run after load: the box and natural size of every table and image, into a <pre>.
PROBE = """<script>
window.addEventListener("load", () => {
  const items = [];
  for (const el of document.querySelectorAll("table, img")) {
    const r = el.getBoundingClientRect();
    const cs = getComputedStyle(el);
    const img = el.tagName === "IMG";
    items.push({
      tag: el.tagName.toLowerCase(),
      width: r.width, height: r.height, left: r.left, right: r.right,
      visible: cs.display !== "none" && cs.visibility !== "hidden" &&
               parseFloat(cs.opacity) > 0,
      natural_width: img ? el.naturalWidth : null,
      natural_height: img ? el.naturalHeight : null,
      complete: img ? el.complete : null,
      rows: img ? null : el.rows.length,
      label: img ? el.alt : (el.tHead ? el.tHead.innerText : ""),
    });
  }
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify({viewport: window.innerWidth, items: items});
  document.body.appendChild(pre);
});
</script>
"""


def dump_dom(page: Path, profile: Path) -> str:
    assert CHROMIUM is not None
    proc = subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
         "--virtual-time-budget=5000", "--window-size=1200,900", "--hide-scrollbars",
         f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_tables_and_images_are_visible(tmp_path):
    results = tmp_path / "quick" / "golden"
    shutil.copytree(GOLDEN, results)
    md = write_report(results)
    page = (md.parent / "report.html").read_text()
    assert "<script" not in page  # the report itself has none: the probe is ours
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"))

    dom = dump_dom(probed, tmp_path / "profile")
    m = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.DOTALL)
    assert m, f"the probe did not run; DOM starts {dom[:300]!r}"
    found = json.loads(html.unescape(m.group(1)))
    items = found["items"]

    tables = [i for i in items if i["tag"] == "table"]
    images = [i for i in items if i["tag"] == "img"]
    md_tables = sum(1 for a, b in zip(md.read_text().splitlines(),
                                      md.read_text().splitlines()[1:], strict=False)
                    if a.startswith("| ") and b.startswith(("|:", "|-")))
    assert len(tables) == md_tables >= 8
    assert len(images) == 4
    for item in items:
        assert item["visible"], item
        assert item["width"] > 0 and item["height"] > 0, item
        assert item["left"] >= 0, item
    for t in tables:
        assert t["rows"] >= 2, t
    for img in images:
        assert img["complete"] and img["natural_width"] == 900, img
        assert img["natural_height"] == 400, img
        assert img["right"] <= found["viewport"], img  # scaled to the page, not cut off
    labels = " ".join(t["label"] for t in tables)
    assert "published ratio" in labels and "host swap out" in labels
    # the comparison table, with its CI, p and significance columns, fits the page
    comparison = [t for t in tables if "95 % CI of the difference" in t["label"]]
    assert len(comparison) == 1
    assert comparison[0]["right"] <= found["viewport"], comparison[0]
