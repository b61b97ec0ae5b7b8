"""Writing a report: the pages (jinja2 templates, `templates/`), the script and style
(`static/`), the figures, and `report.json`, into a new directory swapped into place
at the end (`fileio.NewDirectory`), so a reader never sees half a report.

    DIR/index.html            the overview
    DIR/heads/L3.H6.html      one page per head of the library
    DIR/assets/report.css|js  the only style and script, loaded by relative path
    DIR/figures/*.svg|png     the overview's plots (and, with --format png,
    DIR/heads/L3.H6.png       one figure per head instead of pages)
    DIR/report.json           what was written from what: marks DIR as a report

A target that exists and is not a report (no report.json) is refused, so a typo
cannot replace someone's directory.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from headcode.errors import UserError
from headcode.fileio import NewDirectory, check_writable
from headcode.report import figures
from headcode.report.examples import Kind, token_labels
from headcode.report.families import COLOURS, HIGH, LOW, is_light, slug
from headcode.report.highlight import highlight
from headcode.report.matrices import encode
from headcode.report.views import Overview, page_of

MARKER = "report.json"
FORMAT = "headcode-report"
STATIC = ("report.css", "report.js")
KIND_WORDS = {Kind.TYPICAL.value: "Typical example (median IoU of the sequences)", Kind.WORST.value: "Worst fitted",
              Kind.BEST.value: "Best fitted", Kind.OTHER.value: "Another example"}


def check_target(out: str | Path) -> None:
    """Refuse, before any work, an output that is not a directory a report may replace."""
    path = Path(out)
    if path.exists() and path.is_dir() and any(path.iterdir()) and not (path / MARKER).is_file():
        raise UserError(f"{out}: exists and is not a headcode report (no {MARKER}); refusing to replace it")
    check_writable(path, directory=True, what="report")


def _fmt(x, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _pct(x) -> str:
    return "–" if x is None else f"{x:+.2%}"


def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=PackageLoader("headcode.report", "templates"), autoescape=select_autoescape(("html",)),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(fmt=_fmt, pct=_pct, slug=slug, colours=COLOURS, highlight=highlight, page_of=page_of,
                       baseline_names=figures.BASELINE_NAMES, kind_words=KIND_WORDS, low=LOW, high=HIGH,
                       light={f.value for f, c in COLOURS.items() if is_light(c)})
    return env


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("headcode")
    except PackageNotFoundError:
        return "(not installed)"


def _record(ov: Overview, kind: str, files: list[str]) -> dict:
    lib = ov.library
    return {"format": FORMAT, "version": 1, "kind": kind, "headcode": _version(),
            "library": {"model": lib.model.name, "version": lib.version, "content_hash": ov.content_hash},
            "level": ov.shown.value, "text": ov.text, "examples": ov.examples,
            "heads": [v.name for v in ov.views], "heads_with_examples": [v.name for v in ov.views if v.evidence],
            "files": sorted(files)}


def _finish(root: Path, ov: Overview, kind: str) -> None:
    files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    (root / MARKER).write_text(json.dumps(_record(ov, kind, files), indent=1) + "\n", encoding="utf-8")


def _examples(view, split) -> list[dict]:
    out = []
    for ex in view.evidence.examples if view.evidence else ():
        table = split.tables[ex.sequence]
        out.append({"kind": ex.kind.value, "sequence": ex.sequence, "iou": round(ex.iou, 4),
                    "tokens": token_labels(table), "text": split.texts[ex.sequence][:5000],
                    "real": encode(ex.real), "program": encode(ex.program)})
    return out


def _heads_data(ov: Overview) -> list[dict]:
    """What the overview's script shows on hover and filters by, one entry a head."""
    return [{"name": v.name, "family": v.main.family.value, "slug": slug(v.main.family), "iou": v.test_iou,
             "recomputed": round(v.evidence.mean_iou, 4) if v.evidence else None,
             "program": v.main.program.text if v.main.program.chars <= 600 else v.main.program.text[:600] + " …",
             "programId": v.main.program.id, "description": v.main.description} for v in ov.views]


def write_html(ov: Overview, split, out: str | Path) -> Path:
    """The site: overview, a page per head, assets, figures and report.json."""
    env = _environment()
    lib = ov.library
    # lib.content_hash encodes the whole library (seconds on a large one): read it once.
    common = {"lib": lib, "content_hash": ov.content_hash, "headcode_version": _version(), "text": ov.text,
              "with_examples": sum(v.evidence is not None for v in ov.views)}
    shown = next((s for s in ov.levels if s.level is ov.shown), ov.levels[0])
    with NewDirectory(out) as new:
        root = new.path
        (root / "assets").mkdir()
        static = resources.files("headcode.report").joinpath("static")
        for name in STATIC:
            (root / "assets" / name).write_bytes(static.joinpath(name).read_bytes())
        made = figures.overview_figures(ov, root / "figures")
        index = {v.head: k for k, v in enumerate(ov.views)}
        page = env.get_template("overview.html").render(
            root="", ov=ov, figures=made, index=index, heads_data=_heads_data(ov), shown_summary=shown, **common)
        (root / "index.html").write_text(page, encoding="utf-8")
        (root / "heads").mkdir()
        template = env.get_template("head.html")
        panels = (("real", "real attention"), ("program", f"{ov.shown.value} program"), ("diff", "program − real"))
        for v in ov.views:
            page = template.render(root="../", v=v, examples=_examples(v, split), panels=panels, **common)
            (root / "heads" / v.page).write_text(page, encoding="utf-8")
        _finish(root, ov, "html")
    return Path(out)


def write_png(ov: Overview, split, out: str | Path) -> Path:
    """Figures only: the overview's plots, and one PNG per head that has examples."""
    with NewDirectory(out) as new:
        root = new.path
        figures.overview_figures(ov, root / "figures")
        (root / "heads").mkdir()
        for v in ov.views:
            if v.evidence and v.evidence.examples:
                title = (f"{ov.library.model.name} {v.name}: {ov.shown.value} program "
                         f"{v.main.program.text if v.main.program.chars <= 90 else v.main.program.text[:87] + '...'}")
                figures.head_png(title, [(ex, token_labels(split.tables[ex.sequence])) for ex in v.evidence.examples],
                                 root / "heads" / f"{v.name}.png")
        _finish(root, ov, "png")
    return Path(out)
