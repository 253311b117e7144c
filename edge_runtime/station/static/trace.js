// Live 12-lead ECG on paper: 25 mm/s, 10 mm/mV, scrolling. 1 mm = 96/25.4 CSS px (CSS millimetres).
"use strict";
(function () {
  const MM = 96 / 25.4, MM_PER_S = 25, MM_PER_MV = 10, KEEP_S = 14;
  const LAYOUT = [["I", "II", "III", "aVR", "aVL", "aVF"], ["V1", "V2", "V3", "V4", "V5", "V6"]];
  const canvas = document.getElementById("ecg");
  if (!canvas) return;
  const ctx = canvas.getContext("2d");
  let fs = 250, capacity = fs * KEEP_S, buffers = {}, count = 0, expected = -1, acquisition = null;
  let dirty = true, grid = null, gridKey = "";
  const pendingStamps = [], latencies = [];

  function reset(newFs) {
    fs = newFs; capacity = Math.round(fs * KEEP_S); count = 0; expected = -1; buffers = {};
    LAYOUT.flat().forEach((name) => { buffers[name] = new Float32Array(capacity).fill(NaN); });
  }
  reset(250);

  function push(name, value) { buffers[name][count % capacity] = value; }

  window.elvStation.on("samples", (block) => {
    if (block.acq !== acquisition || block.fs !== fs) { acquisition = block.acq; reset(block.fs); }
    const n = block.d.length ? block.d[0].length : 0;
    if (expected >= 0 && block.i + n <= expected) return;  // already drawn (replay after a reconnect)
    let skip = 0;
    if (expected >= 0 && block.i < expected) skip = expected - block.i;
    if (expected >= 0 && block.i > expected) {  // samples dropped for this browser: leave a break in the trace
      for (let k = 0; k < Math.min(block.i - expected, capacity); k++) {
        LAYOUT.flat().forEach((name) => push(name, NaN)); count++;
      }
    }
    const rows = {};
    block.leads.forEach((name, row) => { rows[name] = block.d[row]; });
    for (let k = skip; k < n; k++) {
      LAYOUT.flat().forEach((name) => { const r = rows[name]; push(name, r && r[k] !== null ? r[k] * block.unit_mv : NaN); });
      count++;
    }
    expected = block.i + n;
    pendingStamps.push(block.t);
    dirty = true;
  });

  function drawGrid(w, h) {
    const key = w + "x" + h + "@" + devicePixelRatio;
    if (key === gridKey) return;
    gridKey = key;
    grid = document.createElement("canvas");
    grid.width = Math.round(w * devicePixelRatio); grid.height = Math.round(h * devicePixelRatio);
    const g = grid.getContext("2d");
    g.scale(devicePixelRatio, devicePixelRatio);
    g.fillStyle = "#fff"; g.fillRect(0, 0, w, h);
    for (let major = 0; major < 2; major++) {
      g.strokeStyle = major ? "#f1a1a1" : "#fbdede"; g.lineWidth = major ? 0.8 : 0.5;
      const step = major ? 5 * MM : MM;
      g.beginPath();
      for (let x = w; x >= 0; x -= step) { g.moveTo(Math.round(x) + 0.5, 0); g.lineTo(Math.round(x) + 0.5, h); }
      for (let y = 0; y <= h; y += step) { g.moveTo(0, Math.round(y) + 0.5); g.lineTo(w, Math.round(y) + 0.5); }
      g.stroke();
    }
  }

  function draw() {
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * devicePixelRatio) || canvas.height !== Math.round(h * devicePixelRatio)) {
      canvas.width = Math.round(w * devicePixelRatio); canvas.height = Math.round(h * devicePixelRatio); dirty = true;
    }
    if (!dirty || w === 0 || h === 0) return;
    dirty = false;
    drawGrid(w, h);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.drawImage(grid, 0, 0);
    ctx.setTransform(devicePixelRatio, 0, 0, devicePixelRatio, 0, 0);
    const colW = w / LAYOUT.length, rowH = h / LAYOUT[0].length;
    const pxPerSample = MM_PER_S * MM / fs, pxPerMv = MM_PER_MV * MM;
    const visible = Math.min(count, capacity, Math.floor((colW - 8) / pxPerSample));
    ctx.lineWidth = 1.2; ctx.strokeStyle = "#111"; ctx.fillStyle = "#1d3557"; ctx.font = "12px sans-serif";
    LAYOUT.forEach((column, c) => {
      column.forEach((name, r) => {
        const x0 = c * colW + 4, mid = r * rowH + rowH / 2, buf = buffers[name];
        ctx.fillText(name, x0 + 2, r * rowH + 13);
        ctx.save();
        ctx.beginPath(); ctx.rect(c * colW, r * rowH, colW, rowH); ctx.clip();
        // baseline: the mean of the last 2 s keeps a wandering lead on its row
        let sum = 0, m = 0;
        for (let k = count - Math.min(visible, 2 * fs); k < count; k++) { const v = buf[k % capacity]; if (!isNaN(v)) { sum += v; m++; } }
        const base = m ? sum / m : 0;
        ctx.beginPath();
        let pen = false;
        for (let k = count - visible, j = 0; k < count; k++, j++) {
          const v = buf[k % capacity];
          if (isNaN(v)) { pen = false; continue; }
          const x = x0 + (colW - 8) - (visible - j) * pxPerSample, y = mid - (v - base) * pxPerMv;
          if (pen) ctx.lineTo(x, y); else { ctx.moveTo(x, y); pen = true; }
        }
        ctx.stroke();
        ctx.restore();
      });
    });
    const now = Date.now();
    while (pendingStamps.length) {
      latencies.push(now - pendingStamps.shift());
      if (latencies.length > 400) latencies.shift();
    }
  }

  function frame() { draw(); requestAnimationFrame(frame); }
  requestAnimationFrame(frame);
  window.addEventListener("resize", () => { dirty = true; });

  // The latency budget (sample reached the runtime -> drawn), read by `elvmass bench-station`.
  window.elvLatency = function () {
    const sorted = latencies.slice().sort((a, b) => a - b);
    return { n: sorted.length, median_ms: sorted.length ? sorted[Math.floor(sorted.length / 2)] : null };
  };

  // Electrodes, heart rate, indicators, progress, refusal: from the shared state.
  window.elvStation.on("state", (s) => {
    const hr = document.getElementById("hr");
    if (hr) hr.textContent = s.heart_rate_bpm == null ? "--" : String(s.heart_rate_bpm);
    Object.entries(s.electrodes || {}).forEach(([name, st]) => {
      const el = document.getElementById("el-" + name);
      if (el) el.className = "el el-" + st;
    });
    Object.entries(s.indicators || {}).forEach(([name, on]) => {
      const el = document.getElementById("ind-" + name);
      if (el) el.classList.toggle("on", !!on);
    });
    const progress = document.getElementById("progress");
    if (progress) progress.value = s.progress || 0;
    const refusal = document.getElementById("refusal");
    if (refusal) {
      refusal.replaceChildren();
      const texts = s.refusal ? s.refusal.texts : [];
      texts.forEach((t) => { const p = document.createElement("p"); p.textContent = t; refusal.appendChild(p); });
      refusal.hidden = texts.length === 0 || s.phase !== "acquiring";
    }
    const idle = document.getElementById("idle-note");
    if (idle) idle.hidden = s.phase === "acquiring";
    const cancel = document.getElementById("cancel");
    if (cancel) cancel.disabled = s.phase !== "acquiring";
    const line = document.getElementById("patient-line");
    if (line) line.textContent = s.patient && s.patient.patient_id ? "ID " + s.patient.patient_id : "";
    const message = document.getElementById("message");
    if (message) message.textContent = s.message || "";
    document.getElementById("acquire").dataset.phase = s.phase;
  });
})();
