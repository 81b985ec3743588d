// Planning workspace (web/workspace_pages.py): the patient's image with its segments in Niivue,
// the nerve centreline drawn, the probe tip and entry placed by clicking or dragging on a
// slice (or typed, or the proposal accepted), and the live preview (POST .../plan/preview,
// debounced) with its round trip measured here (performance.now) and shown.
// Coordinates: the registry's are LPS mm; Niivue's world is RAS, so x and y change sign.
// State for users and tests: #workspace data-state (loaded | no-webgl | error), #readout
// data-count (previews shown) and data-ms (the last round trip).
(function () {
  "use strict";
  var box = document.getElementById("workspace");
  if (!box) { return; }
  var pid = box.dataset.procedure;
  var placement = document.getElementById("placement");
  var readout = document.getElementById("readout");
  var csrf = (document.querySelector("input[name=csrf_token]") || {}).value || "";
  var nv = null;
  var iceball = null;
  var tip = null;
  var entry = null;
  var timer = null;
  var inflight = false;
  var again = false;
  var DEBOUNCE_MS = 120;

  function lps2ras(p) { return [-p[0], -p[1], p[2]]; }
  function fmt(p) { return p.map(function (v) { return (Math.round(v * 100) / 100).toString(); }).join(", "); }
  function parse(text) {
    var v = String(text || "").split(",").map(function (s) { return Number(s.trim()); });
    return v.length === 3 && v.every(isFinite) ? v : null;
  }
  function sub(a, b) { return [a[0] - b[0], a[1] - b[1], a[2] - b[2]]; }
  function norm(a) { return Math.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2]); }
  function direction() {
    // tip → handle: towards the entry point
    if (tip && entry && norm(sub(entry, tip)) > 1e-6) { return sub(entry, tip); }
    return [0, 0, 1];
  }

  function showError(message) {
    var el = document.getElementById("readout-error");
    if (!el) { return; }
    el.textContent = message || "";
    el.hidden = !message;
  }

  function fillRun() {
    var set = function (id, value) { var el = document.getElementById(id); if (el) { el.value = value; } };
    if (tip) { set("run-tip", tip.join(",")); }
    set("run-direction", direction().join(","));
    set("run-gas", document.getElementById("gas").value);
    set("run-freeze", document.getElementById("freeze_s").value);
    set("run-protocol", document.getElementById("protocol").value);
  }

  function setTip(p, fromViewer) {
    tip = p;
    document.getElementById("tip").value = fmt(p);
    if (!fromViewer && nv) { nv.scene.crosshairPos = nv.mm2frac(lps2ras(p)); nv.updateGLVolume(); }
    fillRun();
    schedule();
  }
  function setEntry(p) {
    entry = p;
    document.getElementById("entry").value = fmt(p);
    fillRun();
    schedule();
  }

  function schedule() {
    if (!tip) { return; }
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(preview, DEBOUNCE_MS);
  }

  function b64ToBuffer(text) {
    var raw = atob(text);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out.buffer;
  }

  function checksum(text) {  // tells users and tests that a new iceball arrived
    var h = 0;
    for (var i = 0; i < text.length; i++) { h = (h * 31 + text.charCodeAt(i)) >>> 0; }
    return h.toString(16);
  }

  function drawIceball(b64) {
    if (!b64) { return Promise.resolve(); }
    readout.dataset.iceball = checksum(b64);
    if (!nv) { return Promise.resolve(); }
    var old = iceball;
    return nv.addVolumeFromUrl({
      url: "iceball.nii.gz", name: "iceball.nii.gz", buffer: b64ToBuffer(b64),
      colormap: "cryoneuro_iceball", cal_min: 0.5, cal_max: 3, opacity: 0.55
    }).then(function (vol) {
      iceball = vol;
      if (old) { nv.removeVolume(old); }
    });
  }

  function show(body, ms) {
    var set = function (id, text) { document.getElementById(id).textContent = text; };
    set("readout-block", (body.complete_block ? "complete" : "incomplete") + " (" +
        Number(body.blocked_length_mm).toFixed(1) + " mm of nerve at ≤ the block threshold)");
    set("readout-neurotmesis", body.neurotmesis_risk ? "yes" : "no");
    var skin = body.skin_min_c === null ? "no skin in the grid" :
      "minimum " + Number(body.skin_min_c).toFixed(1) + " °C, margin " +
      Number(body.skin_margin_c).toFixed(1) + " °C, 0 °C isotherm " +
      (body.skin_distance_mm === null ? "—" : Number(body.skin_distance_mm).toFixed(1)) + " mm from the skin";
    set("readout-skin", skin);
    var v = body.volumes_ml || {};
    set("readout-volumes", [v["0"], v["-20"], v["-40"]].map(function (x) {
      return Number(x).toFixed(2);
    }).join(" / ") + " ml");
    set("preview-ms", ms.toFixed(0) + " ms (server " + (1000 * body.elapsed_s).toFixed(0) + " ms)");
    var list = document.getElementById("readout-warnings");
    list.textContent = "";
    (body.warnings || []).forEach(function (w) {
      var li = document.createElement("li"); li.textContent = w; list.appendChild(li);
    });
    readout.dataset.ms = ms.toFixed(1);
    readout.dataset.count = String(Number(readout.dataset.count || "0") + 1);
  }

  function preview() {
    if (inflight) { again = true; return; }
    inflight = true;
    var body = {
      tip: tip, direction: direction(), iceball: !!nv,
      gas: document.getElementById("gas").value,
      freeze_s: Number(document.getElementById("freeze_s").value)
    };
    var t0 = performance.now();
    fetch("/procedures/" + pid + "/plan/preview", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().then(function (j) { return { ok: r.ok, body: j }; });
    }).then(function (res) {
      var ms = performance.now() - t0;  // request → readout parsed: the user's wait
      if (!res.ok) { showError(res.body.detail || "preview failed"); return; }
      showError("");
      show(res.body, ms);
      return drawIceball(res.body.iceball_nifti);
    }).catch(function (err) {
      showError("preview failed: " + (err && err.message ? err.message : err));
    }).then(function () {
      inflight = false;
      if (again) { again = false; preview(); }
    });
  }

  function drawCentreline(points) {
    if (!nv || !points || points.length < 2) { return; }
    nv.createEmptyDrawing();
    for (var i = 0; i + 1 < points.length; i++) {
      var a = points[i], b = points[i + 1];
      var steps = Math.max(1, Math.ceil(norm(sub(b, a)) / 0.25));
      for (var k = 0; k <= steps; k++) {
        var p = [a[0] + (b[0] - a[0]) * k / steps, a[1] + (b[1] - a[1]) * k / steps, a[2] + (b[2] - a[2]) * k / steps];
        var vox = nv.frac2vox(nv.mm2frac(lps2ras(p)));
        nv.drawPt(vox[0], vox[1], vox[2], 3);  // pen 3: yellow in the default drawing colours
      }
    }
    nv.refreshDrawing(true);
  }

  function onPlace(location) {
    var mode = (document.querySelector("input[name=place]:checked") || {}).value;
    var mm = location && location.mm;
    if (!mm || mode === "none") { return; }
    var p = [-mm[0], -mm[1], mm[2]];
    if (mode === "tip") { setTip(p, true); } else if (mode === "entry") { setEntry(p); }
  }

  function wire(caseInfo) {
    document.getElementById("proposal-rule").textContent = caseInfo.proposal.rule;
    document.getElementById("accept-proposal").addEventListener("click", function () {
      var t = caseInfo.proposal.tip_mm, d = caseInfo.proposal.direction;
      entry = null;
      setEntry([t[0] + 20 * d[0], t[1] + 20 * d[1], t[2] + 20 * d[2]]);
      setTip(t.slice(), false);
    });
    ["tip", "entry"].forEach(function (id) {
      document.getElementById(id).addEventListener("change", function (ev) {
        var p = parse(ev.target.value);
        if (!p) { showError(id + ": give three numbers x, y, z (mm)"); return; }
        if (id === "tip") { setTip(p, false); } else { setEntry(p); }
      });
    });
    ["gas", "freeze_s", "protocol"].forEach(function (id) {
      document.getElementById(id).addEventListener("change", function () { fillRun(); schedule(); });
    });
    drawCentreline(caseInfo.centreline_mm);
    var points = document.getElementById("centreline-points");
    if (points && !points.value.trim() && !points.closest(".has-error")) {  // the extracted line
      points.value = caseInfo.centreline_mm.map(function (p) {
        return p.map(function (v) { return v.toFixed(2); }).join(", ");
      }).join("\n");
    }
    placement.dataset.state = "ready";
  }

  function loadCase() {
    if (box.dataset.accepted !== "yes" || !placement) { return Promise.resolve(); }
    return fetch("/procedures/" + pid + "/plan/case.json", { credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, body: j }; }); })
      .then(function (res) {
        if (!res.ok) { placement.dataset.state = "error"; showError(res.body.detail); return; }
        wire(res.body);
      });
  }

  var fallback = document.getElementById("viewer-fallback");
  var probe = document.createElement("canvas");
  if (!probe.getContext || !probe.getContext("webgl2") || !window.niivue) {
    box.dataset.state = "no-webgl";
    fallback.hidden = false;
    box.querySelector(".viewer-box").hidden = true;
    loadCase();
    return;
  }
  nv = new window.niivue.Niivue({
    show3Dcrosshair: true, crosshairColor: [1, 0, 0, 1], crosshairWidth: 0.3, crosshairWidthUnit: "mm",
    isColorbar: false, backColor: [0, 0, 0, 1], logLevel: "error"
  });
  window.cryoneuroWorkspace = nv;
  nv.addColormap("cryoneuro_iceball", {
    R: [0, 135, 30, 110], G: [0, 206, 100, 0], B: [0, 250, 255, 170],
    A: [0, 255, 255, 255], I: [0, 51, 153, 255]
  });
  nv.onLocationChange = onPlace;
  Promise.resolve(nv.attachTo("niivue-canvas"))
    .then(function () {
      return nv.loadVolumes([
        { url: box.dataset.image, colormap: "gray" },
        { url: box.dataset.labels, colormap: "random", opacity: 0.35, cal_min: 0.5 }
      ]);
    })
    .then(function () {
      nv.setSliceType(nv.sliceTypeMultiplanar);
      box.dataset.state = "loaded";
      return loadCase();
    })
    .catch(function (err) {
      box.dataset.state = "error";
      fallback.textContent = "The viewer could not load the volumes: " + (err && err.message ? err.message : err);
      fallback.hidden = false;
      return loadCase();
    });
})();
