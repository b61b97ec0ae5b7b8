"""`headcode report`: the generated site (every head present, links and images resolve,
no address outside the directory, the data drawn is the head's real attention and its
program's on held-out text), its refusals, and the pieces it is made of. The browser
tests are in test_report_browser.py; the report here is conftest's `tiny_report`, one
slow test runs on the bundled library."""

from __future__ import annotations

import base64
import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from headcode.cli import main
from headcode.heads import Head
from headcode.library import Level, Library
from headcode.report.examples import Kind, choose
from headcode.report.highlight import highlight
from headcode.report.matrices import encode, pack, unpack


class Page(HTMLParser):
    """The links, sources, ids and embedded JSON of one HTML file."""

    def __init__(self, path: Path):
        super().__init__()
        self.path, self.refs, self.ids, self.json, self._script = path, [], set(), {}, None
        self.feed(path.read_text("utf-8"))

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for name in ("href", "src"):
            if attrs.get(name) is not None:
                self.refs.append((tag, attrs[name], attrs))
        if tag == "script" and attrs.get("type") == "application/json":
            self._script = attrs["id"]

    def handle_data(self, data):
        if self._script:
            self.json[self._script] = json.loads(data)
            self._script = None


def pages(root: Path) -> dict[Path, Page]:
    return {p: Page(p) for p in sorted(root.rglob("*.html"))}


def test_every_head_has_a_page_and_a_grid_cell(tiny_report, tiny_library):
    lib = Library.load(tiny_library)
    overview = Page(tiny_report / "index.html")
    cells = {a["data-head"]: href for tag, href, a in overview.refs if "cell" in a.get("class", "").split()}
    assert set(cells) == {str(Head(*k)) for k in lib}
    for name, href in cells.items():
        assert href == f"heads/{name}.html" and (tiny_report / href).is_file()
        page = Page(tiny_report / href)
        assert page.json["head-data"]["name"] == name
    assert len(overview.json["heads-data"]) == len(lib)
    assert sorted(p.name for p in (tiny_report / "heads").iterdir()) == sorted(f"{n}.html" for n in cells)


def test_every_link_and_image_resolves_inside_the_report(tiny_report):
    checked = 0
    for path, page in pages(tiny_report).items():
        for tag, ref, attrs in page.refs:
            assert not re.match(r"[a-z][a-z0-9+.-]*:|/", ref, re.I), f"{path}: {ref} is not a relative path"
            target_file, _, anchor = ref.partition("#")
            target = (path.parent / target_file).resolve() if target_file else path
            assert target.is_relative_to(tiny_report.resolve()) and target.is_file(), f"{path}: {ref} does not resolve"
            if anchor:
                assert anchor in Page(target).ids
            if tag == "img" or target.suffix in (".png", ".svg"):
                data = target.read_bytes()
                assert data.startswith(b"\x89PNG\r\n\x1a\n") if target.suffix == ".png" else b"<svg" in data[:400]
            checked += 1
    assert checked > 50


ADDRESS = re.compile(rb"(?i:\b(?:https?|ftp|wss?|file|data):|(?:src|href|action)\s*=\s*[\"']?//)|\burl\(\s*[\"']?(?!#)")
NAMESPACES = (b'xmlns="http://www.w3.org/2000/svg"', b'xmlns:xlink="http://www.w3.org/1999/xlink"')


def test_no_address_outside_the_report_anywhere(tiny_report):
    """No file of the report names a place outside it: no URL with a scheme (only the
    two XML namespaces an SVG file must declare), no protocol-relative link, no CSS
    url(). The script makes its PNG downloads as data: URLs at run time, which is not in
    any file."""
    files = [p for p in tiny_report.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".html", ".css", ".js", ".svg", ".png", ".json"}
    for path in files:
        data = path.read_bytes()
        for ns in NAMESPACES if path.suffix == ".svg" else ():
            data = data.replace(ns, b"")
        found = ADDRESS.search(data) if path.suffix != ".png" else re.search(rb"(?i)https?://", data)
        assert found is None, f"{path}: {data[max(0, found.start() - 60):found.end() + 60]!r}"


def test_report_json_says_what_was_written(tiny_report, tiny_library):
    record = json.loads((tiny_report / "report.json").read_text("utf-8"))
    lib = Library.load(tiny_library)
    assert record["format"] == "headcode-report" and record["kind"] == "html"
    assert record["library"] == {"model": lib.model.name, "version": lib.version, "content_hash": lib.content_hash}
    files = {p.relative_to(tiny_report).as_posix() for p in tiny_report.rglob("*") if p.is_file()}
    assert set(record["files"]) == files - {"report.json"}
    assert record["heads"] == record["heads_with_examples"] == [str(Head(*k)) for k in lib]
    assert record["text"].startswith("the library's own test split of stories")


def _examples(report: Path, head: str) -> list[dict]:
    return Page(report / "heads" / f"{head}.html").json["examples-data"]


def _matrix(example: dict, which: str) -> np.ndarray:
    n = len(example["tokens"])
    return unpack(np.frombuffer(base64.b64decode(example[which]), dtype=np.uint8), n)


def test_the_pictures_are_the_heads_attention_on_its_test_split(tiny_report, tiny_library):
    """What a head page draws is the head's real attention and its program's on the
    library's own test sequences: recomputed here independently, they agree to within
    the page's rounding."""
    from headcode.compiler import compile_program
    from headcode.loaders.models import load_model
    from headcode.report.examples import token_labels
    from headcode.synth.capture import record_attention
    from headcode.synth.pipeline import recorded_splits

    lib = Library.load(tiny_library)
    loaded = load_model(lib.model.name)
    test = recorded_splits(loaded, lib.split, names=("test",))["test"]
    for key in lib:
        head = Head(*key)
        examples = _examples(tiny_report, str(head))
        assert [e["kind"] for e in examples] == ["typical", "worst"][:len(examples)] and len(examples) == 2
        for e in examples:
            table = test.tables[e["sequence"]]
            assert e["tokens"] == token_labels(table)
            real = record_attention(loaded.model, table.ids)[head.layer, head.head].astype(np.float64)
            program = compile_program(lib.program_of(*head, Level.SHORT)).evaluate(table)
            for shown, true in ((_matrix(e, "real"), real), (_matrix(e, "program"), program)):
                assert np.abs(shown - true).max() <= 2 / 255
                np.testing.assert_allclose(shown.sum(axis=1), 1.0, atol=0.05)
        assert examples[0]["iou"] >= examples[1]["iou"]  # typical, then the worst


def test_the_iou_recomputed_is_the_librarys_recorded_test_iou(tiny_report, tiny_library):
    """On the library's own test split the report measures what `explain` recorded (up
    to the float16 capture and the library's 4 decimals)."""
    heads = Page(tiny_report / "index.html").json["heads-data"]
    lib = Library.load(tiny_library)
    for h, key in zip(heads, lib):
        assert h["iou"] == lib[key][Level.SHORT].test["iou"]
        assert h["recomputed"] == pytest.approx(h["iou"], abs=2e-3)


@given(st.lists(st.floats(0, 1), min_size=1, max_size=40), st.integers(1, 6))
def test_choose_typical_worst_best_then_spread(ious, k):
    picked = choose(ious, k)
    assert len(picked) == min(k, len(ious))
    assert len({s for _, s in picked}) == len(picked)
    order = sorted(range(len(ious)), key=lambda s: (ious[s], s))
    kinds = [kind for kind, _ in picked]
    assert picked[0] == (Kind.TYPICAL, order[(len(ious) - 1) // 2])
    if Kind.WORST in kinds:
        assert ious[picked[kinds.index(Kind.WORST)][1]] == min(ious)
    if Kind.BEST in kinds:
        assert ious[picked[kinds.index(Kind.BEST)][1]] == max(ious)


@given(arrays(np.float64, st.integers(1, 24).map(lambda n: (n, n)), elements=st.floats(0, 1)))
def test_pack_keeps_the_lower_triangle_to_a_byte(matrix):
    n = matrix.shape[0]
    lower = np.tril(matrix)
    packed = pack(lower)
    assert packed.dtype == np.uint8 and packed.shape == (n * (n + 1) // 2,)
    back = unpack(packed, n)
    assert np.all(np.triu(back, 1) == 0)
    assert np.all(np.abs(back - lower) <= np.sqrt(lower) / 255 + 1 / 65025 + 1e-12)
    assert base64.b64decode(encode(packed)) == packed.tobytes()


@given(st.text(max_size=200))
def test_highlight_is_the_text_escaped(text):
    out = str(highlight(text))
    assert re.sub(r'<span class="[a-z]">|</span>', "", out).count("<") == 0
    assert html.unescape(re.sub(r'<span class="[a-z]">|</span>', "", out)) == text


def test_highlight_marks_the_parts_of_a_program():
    out = str(highlight('softmax(3.6*bos + key.word{the: 2.9, "<b>": -1} - 0.2*log_dist) else prev(?)'))
    assert '<span class="c">softmax</span>' in out and '<span class="n">3.6</span>' in out
    assert '<span class="s">key</span>' in out and '<span class="k">else</span>' in out
    assert '<span class="q">"&lt;b&gt;"</span>' in out and '<span class="h">?</span>' in out


def _run(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", ["not a report", "a file", "no library", "head not in the library",
                                  "examples 0 with heads", "training text"])
def test_refusals_are_one_line_before_any_work(case, tiny_library, tmp_path, capsys, monkeypatch):
    import headcode.loaders.models as models

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the refusal")

    monkeypatch.setattr(models, "load_model", no_model)
    out, args, expect = tmp_path / "out", [], ""
    if case == "not a report":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        expect = "exists and is not a headcode report"
    elif case == "a file":
        out.write_text("mine")
        expect = "exists and is not a directory"
    elif case == "no library":
        args, expect = ["--examples", "0"], "no such library"
    elif case == "head not in the library":
        args, expect = ["--heads", "L7.H0"], "has no short program for L7.H0"
    elif case == "examples 0 with heads":
        args, expect = ["--examples", "0", "--heads", "L0.H0"], "--examples 0 recomputes no attention"
    else:
        args, expect = ["--seed", "5"], "could put its training text in the test split"
    lib = tmp_path / "missing.lib" if case == "no library" else tiny_library
    code, err = _run(capsys, "report", lib, "--out", out, *args)
    assert code == 2 and expect in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    if case == "not a report":
        assert (out / "notes.txt").read_text() == "mine"


def test_examples_0_loads_no_model_and_still_writes_every_page(tiny_library, tmp_path, monkeypatch, capsys):
    import headcode.loaders.models as models

    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("no model is needed"))
    out = tmp_path / "r"
    assert main(["report", str(tiny_library), "--out", str(out), "--examples", "0", "--quiet"]) == 0
    assert "no attention recomputed" in capsys.readouterr().out
    lib = Library.load(tiny_library)
    assert len(list((out / "heads").glob("*.html"))) == len(lib)
    assert all("examples-data" not in p.json for p in pages(out).values())
    assert "none recomputed" in (out / "index.html").read_text("utf-8")


def test_some_heads_as_png_figures_and_replaced_in_place(tiny_library, tmp_path):
    out = tmp_path / "figs"
    for _ in range(2):  # the second run replaces the first, atomically
        assert main(["report", str(tiny_library), "--out", str(out), "--heads", "L1.H2,L0.H1", "--examples", "3",
                     "--format", "png", "--quiet"]) == 0
    record = json.loads((out / "report.json").read_text("utf-8"))
    assert record["kind"] == "png" and record["heads_with_examples"] == ["L0.H1", "L1.H2"]
    assert sorted(p.name for p in (out / "heads").iterdir()) == ["L0.H1.png", "L1.H2.png"]
    assert (out / "heads" / "L0.H1.png").read_bytes().startswith(b"\x89PNG")
    assert not list(out.glob("*.html")) and (out / "figures" / "scores.svg").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".figs")) == [".figs.lock"]


def test_a_corpus_of_long_lines_gives_512_token_examples(tiny_library, tmp_path):
    """Another corpus, one sequence a line, cut at 512 tokens: the test split of that
    cut, said on the page."""
    words = "Tom saw a big dog and the dog ran to Tom . Lily had a red ball , she liked to play with it".split()
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(words, size=400)) for _ in range(40)]
    corpus = tmp_path / "long.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "long"
    assert main(["report", str(tiny_library), "--out", str(out), "--corpus", str(corpus), "--one-per-line",
                 "--max-len", "512", "--heads", "L1.H3", "--examples", "1", "--quiet"]) == 0
    (example,) = _examples(out, "L1.H3")
    assert len(example["tokens"]) == 512
    text = (out / "heads" / "L1.H3.html").read_text("utf-8")
    assert f"the test split of {corpus} (one sequence a line" in text


@pytest.mark.slow
def test_bundled_library_report_measures_what_it_recorded(tmp_path):
    """The bundled library: a page for each of its 270 heads, and for the heads drawn,
    the IoU recomputed on its own test split is the recorded test IoU, at both levels."""
    from headcode.library import bundled
    from headcode.library.bundled import path

    lib = bundled("smollm2-135m")
    for level in Level:
        out = tmp_path / level.value
        assert main(["report", str(path("smollm2-135m")), "--out", str(out), "--heads", "L0.H6,L3.H6",
                     "--level", level.value, "--quiet"]) == 0
        heads = {h["name"]: h for h in Page(out / "index.html").json["heads-data"]}
        assert len(heads) == len(list((out / "heads").glob("*.html"))) == 270
        for name in ("L0.H6", "L3.H6"):
            head = Head(*map(int, name[1:].split(".H")))
            assert heads[name]["iou"] == lib[head][level].test["iou"]
            assert heads[name]["recomputed"] == pytest.approx(heads[name]["iou"], abs=2e-3)
        assert sum(h["recomputed"] is not None for h in heads.values()) == 2
