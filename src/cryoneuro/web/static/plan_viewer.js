// Planned iceball in Niivue: the CT-like image with the iceball labels (0/-20/-40 °C) on top,
// crosshair on the probe tip. Sets data-state on #plan-viewer: "loaded" (with data-volumes),
// "no-webgl" or "error", so tests and users can tell what happened.
(function () {
  "use strict";
  var box = document.getElementById("plan-viewer");
  if (!box) { return; }
  var fallback = document.getElementById("viewer-fallback");
  function fail(state, message) {
    box.dataset.state = state;
    if (message) { fallback.textContent = message; }
    fallback.hidden = false;
    box.querySelector(".viewer-box").hidden = true;
  }
  var probe = document.createElement("canvas");
  if (!probe.getContext || !probe.getContext("webgl2") || !window.niivue) {
    fail("no-webgl");
    return;
  }
  var nv = new window.niivue.Niivue({
    show3Dcrosshair: true, crosshairColor: [1, 0, 0, 1], crosshairWidth: 0.3, crosshairWidthUnit: "mm", isColorbar: false,
    backColor: [0, 0, 0, 1], logLevel: "error"
  });
  window.cryoneuroViewer = nv;
  // label 1 (≤0 °C), 2 (≤-20 °C), 3 (≤-40 °C) at cal_min 0.5, cal_max 3 → LUT 51, 153, 255
  nv.addColormap("cryoneuro_iceball", {
    R: [0, 135, 30, 110], G: [0, 206, 100, 0], B: [0, 250, 255, 170],
    A: [0, 255, 255, 255], I: [0, 51, 153, 255]
  });
  var volumes = [{ url: box.dataset.image, colormap: "gray" }];
  if (box.dataset.overlay) {
    volumes.push({ url: box.dataset.overlay, colormap: "cryoneuro_iceball", cal_min: 0.5,
                   cal_max: 3, opacity: 0.6 });
  }
  Promise.resolve(nv.attachTo("niivue-canvas"))
    .then(function () { return nv.loadVolumes(volumes); })
    .then(function () {
      nv.setSliceType(nv.sliceTypeMultiplanar);
      var target = (box.dataset.target || "").split(",").map(Number);
      if (target.length === 3 && target.every(isFinite)) {
        nv.scene.crosshairPos = nv.mm2frac(target);
        nv.updateGLVolume();
      }
      box.dataset.volumes = String(nv.volumes.length);
      box.dataset.state = "loaded";
    })
    .catch(function (err) {
      fail("error", "The viewer could not load the volumes: " + (err && err.message ? err.message : err));
    });
})();
