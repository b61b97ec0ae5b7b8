"""The report in a real browser: Debian's Chromium, headless, driven by Playwright
(which uses the system binary; it never downloads a browser). The pages are opened
from file://; every request the browser makes must stay there, and no page may log
an error. Skipped, with the reason, where Chromium is not installed (.ci/run installs
it, so CI runs these)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from headcode.cli import main

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium; "
                                                                 ".ci/run installs it)")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make install)")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


class Watched:
    """A page that records console errors, page errors and every request."""

    def __init__(self, browser, **options):
        self.context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000}, **options)
        self.page = self.context.new_page()
        self.errors, self.requests = [], []
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def check(self) -> None:
        assert self.errors == []
        assert self.requests and all(url.startswith("file://") for url in self.requests), self.requests

    def close(self) -> None:
        self.context.close()


def colours(png: bytes) -> int:
    """How many distinct colours a screenshot has (a blank one has one or two)."""
    import matplotlib.pyplot as plt

    image = (plt.imread(io.BytesIO(png), format="png")[..., :3] * 255).astype(np.uint8)
    return len(np.unique(image.reshape(-1, 3), axis=0))


def drawn(page, selector: str) -> dict:
    """What one heatmap canvas holds: its size, zoom, and the share of the cells on or
    below the diagonal that are painted (neither white nor the grey of the future)."""
    return page.eval_on_selector(selector, """c => {
        const [x0, y0, side] = c.dataset.matrix.split(',').map(Number);
        const d = c.getContext('2d').getImageData(x0, y0, side, side).data;
        let cells = 0, painted = 0;
        for (let y = 0; y < side; y++) for (let x = 0; x <= y; x++) {
            const k = 4 * (y * side + x);
            cells++;
            if (!(d[k] === d[k + 1] && d[k + 1] === d[k + 2] && (d[k] === 255 || d[k] === 242))) painted++;
        }
        return {width: c.width, height: c.height, painted: painted / cells, zoom: Number(c.dataset.drawn)};
    }""")


def test_overview_hover_click_heatmaps_and_back(browser, tiny_report):
    w = Watched(browser)
    page = w.page
    page.goto((tiny_report / "index.html").as_uri())
    assert page.title().endswith("headcode report")
    assert colours(page.screenshot()) > 20
    record = json.loads((tiny_report / "report.json").read_text("utf-8"))
    head = record["heads"][1]
    cell = page.locator(f'.cell[data-head="{head}"]')
    cell.hover()
    tip = page.locator("#tip")
    assert tip.is_visible()
    text = tip.inner_text()
    data = {h["name"]: h for h in json.loads(page.locator("#heads-data").text_content())}
    assert head in text and data[head]["program"] in text and f"test IoU {data[head]['iou']:.3f}" in text

    cell.click()
    page.wait_for_url(f"**/heads/{head}.html")
    page.wait_for_selector("#example-1 .panel[data-kind=diff] canvas[data-drawn]")
    for e in (0, 1):
        for kind in ("real", "program", "diff"):
            got = drawn(page, f'#example-{e} .panel[data-kind="{kind}"] canvas')
            assert got["width"] > 100 and got["height"] > 100 and got["painted"] > 0.9
    shot = page.screenshot(full_page=True)
    assert colours(shot) > 50

    # Hovering a cell of the real-attention panel reads out both values and the top keys.
    canvas = page.locator('#example-0 .panel[data-kind="real"] canvas')
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.9)
    readout = page.locator("#example-0 .readout").inner_text()
    assert "query" in readout and "real" in readout and "top keys, program" in readout

    # Zooming redraws every panel larger; each figure downloads as a PNG.
    before = drawn(page, '#example-0 .panel[data-kind="real"] canvas')
    page.locator("#zoom").fill("12")
    after = drawn(page, '#example-0 .panel[data-kind="real"] canvas')
    assert after["zoom"] == 12 and after["width"] > before["width"]
    with page.expect_download() as download:
        page.locator('#example-0 .panel[data-kind="diff"] button.png').click()
    assert download.value.suggested_filename == f"{head}-typical-diff.png"
    assert Path(download.value.path()).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    page.go_back()
    page.wait_for_url("**/index.html")
    assert page.locator(f'.cell[data-head="{head}"]').is_visible()
    w.check()
    w.close()


def test_overview_filters_and_sorting(browser, tiny_report):
    w = Watched(browser)
    page = w.page
    page.goto((tiny_report / "index.html").as_uri())
    total = page.locator("a.cell").count()
    assert page.locator("a.cell.dim").count() == 0
    chip = page.locator(".chip[data-family]").first
    family = chip.get_attribute("data-family")
    chip.click()
    data = json.loads(page.locator("#heads-data").text_content())
    hidden = sum(h["slug"] == family for h in data)
    assert hidden > 0 and page.locator("a.cell.dim").count() == hidden
    assert page.locator("#shown-count").inner_text() == f"{total - hidden} of {total} heads shown"
    chip.click()
    page.locator("#program-query").fill("no program says this")
    assert page.locator("a.cell.dim").count() == total
    page.locator("#program-query").fill("")
    page.locator("#min-iou").fill("1")
    assert page.locator("a.cell.dim").count() == sum(h["iou"] < 1 for h in data)
    page.locator("#min-iou").fill("0")
    column = page.locator("table.heads th", has_text="short IoU")
    column.click()
    ious = [float(v) for v in page.locator("table.heads tbody tr td:nth-child(3)").evaluate_all(
        "cells => cells.map(c => c.dataset.v)")]
    assert ious == sorted(ious)
    column.click()
    ious = [float(v) for v in page.locator("table.heads tbody tr td:nth-child(3)").evaluate_all(
        "cells => cells.map(c => c.dataset.v)")]
    assert ious == sorted(ious, reverse=True)
    w.check()
    w.close()


def test_a_512_token_example_stays_usable(browser, tiny_library, tmp_path):
    """At 512 tokens the page fits the heatmap to the width, labels every few tokens,
    scrolls the three panels together when zoomed in, and stays within what a canvas
    may be."""
    words = "Tom saw a big dog and the dog ran to Tom . Lily had a red ball , she liked to play with it".split()
    rng = np.random.default_rng(1)
    corpus = tmp_path / "long.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words, size=400)) for _ in range(40)) + "\n", encoding="utf-8")
    out = tmp_path / "long"
    assert main(["report", str(tiny_library), "--out", str(out), "--corpus", str(corpus), "--one-per-line",
                 "--max-len", "512", "--heads", "L0.H2", "--examples", "1", "--quiet"]) == 0
    w = Watched(browser)
    page = w.page
    page.goto((out / "heads" / "L0.H2.html").as_uri())
    page.wait_for_selector('#example-0 .panel[data-kind="diff"] canvas[data-drawn]')
    fitted = drawn(page, '#example-0 .panel[data-kind="real"] canvas')
    width = page.eval_on_selector('#example-0 .panel[data-kind="real"] .scroll', "s => s.clientWidth")
    assert fitted["zoom"] >= 1 and fitted["width"] <= width and fitted["painted"] > 0.9  # whole, no scrolling
    page.locator("#zoom").fill("24")
    big = drawn(page, '#example-0 .panel[data-kind="real"] canvas')
    assert 512 * 12 <= big["width"] <= 8192 + 400  # capped so the canvas still draws
    page.eval_on_selector('#example-0 .panel[data-kind="real"] .scroll', "s => { s.scrollLeft = 900; s.scrollTop = 700; }")
    page.wait_for_function("""() => {
        const s = document.querySelector('#example-0 .panel[data-kind="diff"] .scroll');
        return s.scrollLeft === 900 && s.scrollTop === 700; }""")
    w.check()
    w.close()
