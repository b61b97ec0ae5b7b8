/* headcode report: the overview's hover, filters and sorting, and the head pages'
   heatmaps, drawn on canvases from the data embedded in each page (no fetch: browsers
   refuse it for pages opened from the disk). Text from the library or the corpus is
   only ever set with textContent or drawn with fillText, never parsed as HTML. */
(function () {
  "use strict";

  // 256-colour tables (matplotlib's viridis and RdBu_r), 6 hex digits a colour.
  var VIRIDIS = lut("44015444025645045745055946075a46085c460a5d460b5e470d60470e6147106347116447136548146748166848176948186a481a6c481b6d481c6e481d6f481f70482071482173482374482475482576482677482878482979472a7a472c7a472d7b472e7c472f7d46307e46327e46337f463480453581453781453882443983443a83443b84433d84433e85423f854240864241864142874144874045884046883f47883f48893e49893e4a893e4c8a3d4d8a3d4e8a3c4f8a3c508b3b518b3b528b3a538b3a548c39558c39568c38588c38598c375a8c375b8d365c8d365d8d355e8d355f8d34608d34618d33628d33638d32648e32658e31668e31678e31688e30698e306a8e2f6b8e2f6c8e2e6d8e2e6e8e2e6f8e2d708e2d718e2c718e2c728e2c738e2b748e2b758e2a768e2a778e2a788e29798e297a8e297b8e287c8e287d8e277e8e277f8e27808e26818e26828e26828e25838e25848e25858e24868e24878e23888e23898e238a8d228b8d228c8d228d8d218e8d218f8d21908d21918c20928c20928c20938c1f948c1f958b1f968b1f978b1f988b1f998a1f9a8a1e9b8a1e9c891e9d891f9e891f9f881fa0881fa1881fa1871fa28720a38620a48621a58521a68522a78522a88423a98324aa8325ab8225ac8226ad8127ad8128ae8029af7f2ab07f2cb17e2db27d2eb37c2fb47c31b57b32b67a34b67935b77937b87838b9773aba763bbb753dbc743fbc7340bd7242be7144bf7046c06f48c16e4ac16d4cc26c4ec36b50c46a52c56954c56856c66758c7655ac8645cc8635ec96260ca6063cb5f65cb5e67cc5c69cd5b6ccd5a6ece5870cf5773d05675d05477d1537ad1517cd2507fd34e81d34d84d44b86d54989d5488bd6468ed64590d74393d74195d84098d83e9bd93c9dd93ba0da39a2da37a5db36a8db34aadc32addc30b0dd2fb2dd2db5de2bb8de29bade28bddf26c0df25c2df23c5e021c8e020cae11fcde11dd0e11cd2e21bd5e21ad8e219dae319dde318dfe318e2e418e5e419e7e419eae51aece51befe51cf1e51df4e61ef6e620f8e621fbe723fde725");
  var RDBU = lut("05306106326407346708366a09386d0a3b700c3d730d3f760e41790f437b10457e114781124984134c87144e8a15508d1752901854931956961a58991b5a9c1c5c9f1d5fa21e61a51f63a82065ab2267ac2369ad246aae266caf276eb02870b12a71b22b73b32c75b42e77b52f79b5307ab6327cb7337eb83480b93681ba3783bb3885bc3a87bd3b88be3c8abe3e8cbf3f8ec0408fc14291c24393c34695c44997c54c99c64f9bc7529dc8569fc959a1ca5ca3cb5fa5cd62a7ce65a9cf68abd06bacd16eaed271b0d375b2d478b4d57bb6d67eb8d781bad884bcd987beda8ac0db8dc2dc90c4dd93c6de96c7df98c8e09bc9e09dcbe1a0cce2a2cde3a5cee3a7d0e4a9d1e5acd2e5aed3e6b1d5e7b3d6e8b6d7e8b8d8e9bbdaeabddbeac0dcebc2ddecc5dfecc7e0edcae1eecce2efcfe4efd1e5f0d2e6f0d4e6f1d5e7f1d7e8f1d8e9f1dae9f2dbeaf2ddebf2deebf2e0ecf3e1edf3e3edf3e4eef4e6eff4e7f0f4e9f0f4eaf1f5ecf2f5edf2f5eff3f5f0f4f6f2f5f6f3f5f6f5f6f7f6f7f7f7f6f6f7f5f4f8f4f2f8f3f0f8f2eff8f1edf9f0ebf9efe9f9eee7f9ede5f9ebe3faeae1fae9dffae8defae7dcfbe6dafbe5d8fbe4d6fbe3d4fce2d2fce0d0fcdfcffcdecdfdddcbfddcc9fddbc7fdd9c4fcd7c2fcd5bffcd3bcfbd0b9fbceb7fbccb4facab1fac8aff9c6acf9c4a9f9c2a7f8bfa4f8bda1f8bb9ef7b99cf7b799f7b596f6b394f6b191f6af8ef5ac8bf5aa89f5a886f4a683f3a481f2a17ff19e7df09c7bef9979ee9677ec9374eb9172ea8e70e98b6ee8896ce6866ae58368e48066e37e64e27b62e17860df765ede735cdd7059dc6e57db6b55da6853d86551d7634fd6604dd55d4cd35a4ad25849d05548cf5246ce4f45cc4c44cb4942c94741c84440c6413ec53e3dc43b3cc2383ac13639bf3338be3036bd2d35bb2a34ba2832b82531b72230b61f2eb41c2db3192cb1182bae172aab162aa81529a51429a213289f12289c1127991027960f27930e26900d268d0c258a0b25870a248409248108237f08237c07227906227605217304217003206d02206a011f67001f");
  function lut(hex) {
    var out = new Uint8Array(768);
    for (var k = 0; k < 768; k++) out[k] = parseInt(hex.substr(2 * k, 2), 16);
    return out;
  }
  function data(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }
  function fmt(x, digits) { return x === null || x === undefined ? "–" : Number(x).toFixed(digits === undefined ? 3 : digits); }

  /* ---------------- overview ---------------- */

  function overview() {
    var heads = data("heads-data") || [];
    var tip = document.getElementById("tip");
    var cells = Array.prototype.slice.call(document.querySelectorAll(".cell[data-i]"));
    var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-i]"));

    function show(cell) {
      var h = heads[Number(cell.getAttribute("data-i"))];
      tip.textContent = "";
      var title = document.createElement("div");
      var b = document.createElement("b");
      b.textContent = h.name;
      title.appendChild(b);
      title.appendChild(document.createTextNode("  " + h.family + " · test IoU " + fmt(h.iou) +
        (h.recomputed !== null ? " · on the text shown " + fmt(h.recomputed) : "")));
      tip.appendChild(title);
      var desc = document.createElement("div");
      desc.textContent = h.description;
      tip.appendChild(desc);
      var prog = document.createElement("div");
      prog.className = "prog";
      prog.textContent = h.program;
      tip.appendChild(prog);
      tip.hidden = false;
      var r = cell.getBoundingClientRect();
      var x = Math.min(r.right + 8, window.innerWidth - tip.offsetWidth - 8);
      var y = Math.min(r.top, window.innerHeight - tip.offsetHeight - 8);
      tip.style.left = Math.max(4, x) + "px";
      tip.style.top = Math.max(4, y) + "px";
    }
    function hide() { tip.hidden = true; }
    cells.forEach(function (cell) {
      cell.addEventListener("mouseenter", function () { show(cell); });
      cell.addEventListener("focus", function () { show(cell); });
      cell.addEventListener("mouseleave", hide);
      cell.addEventListener("blur", hide);
    });

    // Filters: families (the legend's chips), a least IoU, program text, one shared program.
    var off = {};
    var least = document.getElementById("min-iou");
    var leastShown = document.getElementById("min-iou-value");
    var query = document.getElementById("program-query");
    var shared = document.getElementById("shared-program");
    var count = document.getElementById("shown-count");
    function keep(h) {
      if (off[h.slug]) return false;
      var bar = least ? Number(least.value) : 0;
      if (bar > 0 && (h.iou === null || h.iou < bar)) return false;
      var q = query ? query.value.trim().toLowerCase() : "";
      if (q && h.program.toLowerCase().indexOf(q) < 0 && h.description.toLowerCase().indexOf(q) < 0 &&
          h.name.toLowerCase() !== q) return false;
      if (shared && shared.value && h.programId !== shared.value) return false;
      return true;
    }
    function apply() {
      var kept = heads.map(keep);
      cells.forEach(function (c) { c.classList.toggle("dim", !kept[Number(c.getAttribute("data-i"))]); });
      rows.forEach(function (r) { r.classList.toggle("dim", !kept[Number(r.getAttribute("data-i"))]); });
      if (leastShown) leastShown.textContent = fmt(least.value, 2);
      if (count) count.textContent = kept.filter(Boolean).length + " of " + heads.length + " heads shown";
    }
    Array.prototype.forEach.call(document.querySelectorAll(".chip[data-family]"), function (chip) {
      chip.addEventListener("click", function () {
        var slug = chip.getAttribute("data-family");
        off[slug] = !off[slug];
        chip.setAttribute("aria-pressed", off[slug] ? "false" : "true");
        apply();
      });
    });
    [least, query, shared].forEach(function (el) { if (el) el.addEventListener("input", apply); });
    apply();

    // Sorting the table of heads by any column.
    var table = document.querySelector("table.heads");
    if (table) {
      var body = table.tBodies[0];
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
        th.addEventListener("click", function () {
          var descending = th.getAttribute("aria-sort") === "ascending";
          Array.prototype.forEach.call(table.tHead.rows[0].cells, function (o) { o.removeAttribute("aria-sort"); });
          th.setAttribute("aria-sort", descending ? "descending" : "ascending");
          var numeric = th.classList.contains("num");
          var sorted = Array.prototype.slice.call(body.rows).sort(function (a, b) {
            var x = a.cells[column].getAttribute("data-v"), y = b.cells[column].getAttribute("data-v");
            var c = numeric ? (Number(x === "" ? -1 : x) - Number(y === "" ? -1 : y)) : x.localeCompare(y);
            if (c === 0) c = Number(a.getAttribute("data-i")) - Number(b.getAttribute("data-i"));
            return descending ? -c : c;
          });
          sorted.forEach(function (r) { body.appendChild(r); });
        });
      });
    }
  }

  /* ---------------- head pages: heatmaps ---------------- */

  var MAX_SIDE = 8192; // pixels of a canvas side at most (browsers refuse much larger ones)
  var TITLE = 20, BAR = 56, MIN_FIT = 3, FIT_ALL = 160;

  function decode(b64) {
    var s = atob(b64), out = new Uint8Array(s.length);
    for (var k = 0; k < s.length; k++) out[k] = s.charCodeAt(k);
    return out;
  }

  // One example: its tokens and three n x n matrices as Float32Array (0 above the diagonal).
  function matrices(example) {
    var n = example.tokens.length, real = decode(example.real), prog = decode(example.program);
    var m = { real: new Float32Array(n * n), program: new Float32Array(n * n), diff: new Float32Array(n * n), n: n, span: 1e-3 };
    var k = 0;
    for (var i = 0; i < n; i++) {
      for (var j = 0; j <= i; j++, k++) {
        var a = (real[k] / 255) * (real[k] / 255), p = (prog[k] / 255) * (prog[k] / 255);
        m.real[i * n + j] = a; m.program[i * n + j] = p; m.diff[i * n + j] = p - a;
        m.span = Math.max(m.span, Math.abs(p - a));
      }
    }
    return m;
  }

  // The n x n picture of one matrix, one pixel a cell, in an off-screen canvas.
  function picture(values, n, kind, span, sqrt) {
    var c = document.createElement("canvas");
    c.width = n; c.height = n;
    var ctx = c.getContext("2d"), img = ctx.createImageData(n, n), px = img.data;
    for (var i = 0; i < n; i++) {
      for (var j = 0; j < n; j++) {
        var o = 4 * (i * n + j), v = values[i * n + j], idx, table;
        if (j > i) { px[o] = px[o + 1] = px[o + 2] = 242; px[o + 3] = 255; continue; }
        if (kind === "diff") {
          var t = v / span;
          if (sqrt) t = (t < 0 ? -1 : 1) * Math.sqrt(Math.abs(t));
          idx = Math.max(0, Math.min(255, Math.round((t + 1) * 127.5))); table = RDBU;
        } else {
          idx = Math.max(0, Math.min(255, Math.round((sqrt ? Math.sqrt(v) : v) * 255))); table = VIRIDIS;
        }
        px[o] = table[3 * idx]; px[o + 1] = table[3 * idx + 1]; px[o + 2] = table[3 * idx + 2]; px[o + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    return c;
  }

  function Panel(root, example, m, kind, title) {
    this.root = root; this.example = example; this.m = m; this.kind = kind; this.title = title;
    this.canvas = root.querySelector("canvas");
    this.scroll = root.querySelector(".scroll");
    this.row = root.querySelector(".marker.row");
    this.box = root.querySelector(".marker.cell");
  }
  Panel.prototype.values = function () { return this.m[this.kind]; };
  Panel.prototype.draw = function (cell, sqrt) {
    var n = this.m.n, tokens = this.example.tokens, ctx = this.canvas.getContext("2d");
    cell = Math.max(1, Math.min(cell, Math.floor(MAX_SIDE / n)));
    var font = Math.max(8, Math.min(12, cell - 1));
    var step = Math.max(1, Math.ceil((font + 1) / cell));
    ctx.font = font + "px sans-serif";
    var widest = 0;
    for (var k = 0; k < n; k += step) widest = Math.max(widest, ctx.measureText(label(tokens, k, step)).width);
    var margin = Math.ceil(Math.min(widest, 120)) + 8;
    this.x0 = margin; this.y0 = TITLE + margin; this.cell = cell;
    var side = n * cell;
    this.canvas.width = margin + side + BAR;
    this.canvas.height = this.y0 + side + 6;
    ctx = this.canvas.getContext("2d");
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.fillStyle = "#1d232b"; ctx.font = "bold 12px sans-serif"; ctx.textBaseline = "middle";
    ctx.fillText(this.title, 4, TITLE / 2);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(picture(this.values(), n, this.kind, this.m.span, sqrt), this.x0, this.y0, side, side);
    ctx.font = font + "px sans-serif"; ctx.fillStyle = "#1d232b";
    ctx.textAlign = "right";
    for (k = 0; k < n; k += step) ctx.fillText(label(tokens, k, step), this.x0 - 3, this.y0 + (k + 0.5) * cell, margin - 6);
    ctx.save(); ctx.translate(this.x0, this.y0 - 3); ctx.rotate(-Math.PI / 2); ctx.textAlign = "left";
    for (k = 0; k < n; k += step) ctx.fillText(label(tokens, k, step), 0, (k + 0.5) * cell, margin - 6);
    ctx.restore();
    this.colourbar(ctx, side, sqrt);
    // Where the matrix is, for a test (or a reader's script) to find it.
    this.canvas.setAttribute("data-matrix", [this.x0, this.y0, side].join(","));
    this.canvas.setAttribute("data-drawn", String(cell));
    this.mark(null);
  };
  Panel.prototype.colourbar = function (ctx, side, sqrt) {
    var x = this.x0 + side + 8, h = Math.max(60, Math.min(side, 240)), y = this.y0, diff = this.kind === "diff";
    var table = diff ? RDBU : VIRIDIS;
    for (var r = 0; r < h; r++) {
      var idx = Math.round(255 * (1 - r / (h - 1)));
      ctx.fillStyle = "rgb(" + table[3 * idx] + "," + table[3 * idx + 1] + "," + table[3 * idx + 2] + ")";
      ctx.fillRect(x, y + r, 10, 1);
    }
    ctx.fillStyle = "#1d232b"; ctx.font = "10px sans-serif"; ctx.textAlign = "left";
    var top = diff ? "+" + fmt(this.m.span, 2) : "1", bottom = diff ? "-" + fmt(this.m.span, 2) : "0";
    ctx.fillText(top, x + 13, y + 4);
    ctx.fillText(bottom, x + 13, y + h - 4);
    if (diff) ctx.fillText("0", x + 13, y + h / 2);
    ctx.fillText(sqrt ? "sqrt" : "linear", x, y + h + 10);
  };
  // Mark query row i and cell (i, j) on the canvas (null: clear).
  Panel.prototype.mark = function (at) {
    if (!at) { this.row.hidden = true; this.box.hidden = true; return; }
    var n = this.m.n, c = this.cell;
    this.row.hidden = false; this.box.hidden = false;
    place(this.row, this.x0, this.y0 + at.i * c, n * c, c);
    place(this.box, this.x0 + at.j * c - 1, this.y0 + at.i * c - 1, c + 2, c + 2);
  };
  Panel.prototype.at = function (event) {
    var r = this.canvas.getBoundingClientRect();
    var sx = this.canvas.width / r.width, sy = this.canvas.height / r.height;
    var j = Math.floor(((event.clientX - r.left) * sx - this.x0) / this.cell);
    var i = Math.floor(((event.clientY - r.top) * sy - this.y0) / this.cell);
    return i >= 0 && i < this.m.n && j >= 0 && j <= i ? { i: i, j: j } : null;
  };
  function place(el, x, y, w, h) { el.style.left = x + "px"; el.style.top = y + "px"; el.style.width = w + "px"; el.style.height = h + "px"; }
  function label(tokens, k, step) { return step > 1 ? k + " " + tokens[k] : tokens[k]; }
  function quote(t) { return "\u00ab" + t + "\u00bb"; }

  function top(values, n, i, count) {
    var keys = [];
    for (var j = 0; j <= i; j++) keys.push(j);
    keys.sort(function (a, b) { return values[i * n + b] - values[i * n + a]; });
    return keys.slice(0, count);
  }

  function head() {
    var examples = data("examples-data");
    var meta = data("head-data");
    if (!examples || !examples.length) return;
    var zoom = document.getElementById("zoom"), zoomShown = document.getElementById("zoom-value");
    var scale = document.getElementById("scale"), fit = document.getElementById("fit");
    var all = [];
    examples.forEach(function (example, e) {
      var root = document.getElementById("example-" + e), m = matrices(example);
      var panels = ["real", "program", "diff"].map(function (kind) {
        var el = root.querySelector('.panel[data-kind="' + kind + '"]');
        return new Panel(el, example, m, kind, el.getAttribute("data-title"));
      });
      var readout = root.querySelector(".readout");
      panels.forEach(function (panel) {
        panel.canvas.addEventListener("mousemove", function (event) {
          var at = panel.at(event);
          panels.forEach(function (p) { p.mark(at); });
          readout.textContent = at ? describe(example, m, at) : "";
        });
        panel.canvas.addEventListener("mouseleave", function () { panels.forEach(function (p) { p.mark(null); }); });
        // Scrolling one panel scrolls the other two, so a zoomed-in region stays aligned.
        panel.scroll.addEventListener("scroll", function () {
          panels.forEach(function (p) {
            if (p !== panel && (p.scroll.scrollLeft !== panel.scroll.scrollLeft || p.scroll.scrollTop !== panel.scroll.scrollTop)) {
              p.scroll.scrollLeft = panel.scroll.scrollLeft; p.scroll.scrollTop = panel.scroll.scrollTop;
            }
          });
        });
        var button = panel.root.querySelector("button.png");
        button.addEventListener("click", function () {
          download(panel.canvas, meta.name + "-" + example.kind + "-" + panel.kind + ".png");
        });
      });
      root.querySelector("button.png-all").addEventListener("click", function () {
        download(joined(panels.map(function (p) { return p.canvas; })), meta.name + "-" + example.kind + ".png");
      });
      all.push({ panels: panels, m: m });
    });
    // The zoom that fits a panel's width. Up to FIT_ALL tokens never under MIN_FIT pixels
    // a token (below that a 128-token heatmap cannot be read, so the panel scrolls);
    // longer examples are shown whole first, to be zoomed into.
    function fitted() {
      var width = all[0].panels[0].scroll.clientWidth || 300, n = all[0].m.n;
      return Math.max(n <= FIT_ALL ? MIN_FIT : 1, Math.min(24, Math.floor((width - 90 - BAR) / n)));
    }
    function redraw() {
      var cell = Number(zoom.value), sqrt = scale.value === "sqrt";
      zoomShown.textContent = cell + " px per token";
      all.forEach(function (x) { x.panels.forEach(function (p) { p.draw(cell, sqrt); }); });
    }
    zoom.value = String(fitted());
    zoom.addEventListener("input", redraw);
    scale.addEventListener("change", redraw);
    fit.addEventListener("click", function () { zoom.value = String(fitted()); redraw(); });
    redraw();
  }

  function describe(example, m, at) {
    var n = m.n, t = example.tokens, k = at.i * n + at.j;
    var lines = ["query " + at.i + " " + quote(t[at.i]) + " -> key " + at.j + " " + quote(t[at.j]) + ":  real " +
      fmt(m.real[k]) + "  program " + fmt(m.program[k]) + "  difference " + (m.diff[k] >= 0 ? "+" : "") + fmt(m.diff[k])];
    [["real", m.real], ["program", m.program]].forEach(function (pair) {
      lines.push(("top keys, " + pair[0] + ":       ").slice(0, 20) + top(pair[1], n, at.i, 5).map(function (j) {
        return j + " " + quote(t[j]) + " " + fmt(pair[1][at.i * n + j], 2);
      }).join("   "));
    });
    return lines.join("\n");
  }

  function joined(canvases) {
    var gap = 12, width = gap, height = 0;
    canvases.forEach(function (c) { width += c.width + gap; height = Math.max(height, c.height); });
    var out = document.createElement("canvas");
    out.width = width; out.height = height + 2 * gap;
    var ctx = out.getContext("2d");
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, out.width, out.height);
    var x = gap;
    canvases.forEach(function (c) { ctx.drawImage(c, x, gap); x += c.width + gap; });
    return out;
  }

  function download(canvas, name) {
    var a = document.createElement("a");
    a.href = canvas.toDataURL("image/png");
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
  }

  if (document.body.classList.contains("overview")) overview();
  if (document.body.classList.contains("head")) head();
})();
