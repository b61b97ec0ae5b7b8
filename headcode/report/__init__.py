"""A visual report of a program library: a static site that opens from `file://`.

    from headcode.report import Settings, report
    report("my.lib", "my-report", Settings(examples=2))   # my-report/index.html

An overview (model, corpus, splits, headline figures, a layer x head grid coloured
by family and shaded by test IoU) and a page per head (both levels' programs and
their sketch, scores, the heads sharing them, and heatmaps of real attention, the
program's and their difference on held-out examples, drawn in the browser from data
embedded in the page). `docs/report.md` shows both and says what each mark means.

Modules, one job each: `text` (which held-out text), `examples` (recomputing
attention, choosing the typical and worst sequences), `matrices` (how a page
carries a matrix), `views` (what the pages say), `families` (colours),
`highlight` (program text as HTML), `figures` (matplotlib plots), `site` (templates
to files), `build` (the whole job). Imports library, dsl, compiler, synth and
loaders; only the CLI imports it.
"""

from __future__ import annotations

from headcode.report.build import Format, Settings, Written, report

__all__ = ["Format", "Settings", "Written", "report"]
