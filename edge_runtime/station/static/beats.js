// The synchronized beats the model used: every beat in light blue, the median in black, per lead.
"use strict";
(function () {
  const canvas = document.getElementById("beats");
  if (!canvas) return;
  fetch(canvas.dataset.src, { credentials: "same-origin" }).then((r) => r.ok ? r.json() : null).then((data) => {
    if (!data || !data.beats || !data.beats.length) {
      canvas.hidden = true;
      return;
    }
    const w = canvas.clientWidth, h = canvas.clientHeight, dpr = devicePixelRatio;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    const ctx = canvas.getContext("2d");
    ctx.scale(dpr, dpr);
    const cols = 6, rows = 2, cw = w / cols, rh = h / rows;
    const beats = data.beats, length = beats[0][0].length;
    let lo = Infinity, hi = -Infinity;
    beats.forEach((b) => b.forEach((lead) => lead.forEach((v) => { lo = Math.min(lo, v); hi = Math.max(hi, v); })));
    data.leads.forEach((name, index) => {
      const x0 = (index % cols) * cw, y0 = Math.floor(index / cols) * rh;
      const x = (k) => x0 + 4 + (k / (length - 1)) * (cw - 8);
      const span = Math.max(hi - lo, 1);
      const y = (v) => y0 + rh - 4 - ((v - lo) / span) * (rh - 18);
      ctx.strokeStyle = "rgba(30,110,200,0.35)"; ctx.lineWidth = 1;
      beats.forEach((b) => {
        ctx.beginPath(); b[index].forEach((v, k) => (k ? ctx.lineTo(x(k), y(v)) : ctx.moveTo(x(k), y(v)))); ctx.stroke();
      });
      ctx.strokeStyle = "#111"; ctx.lineWidth = 1.6; ctx.beginPath();
      for (let k = 0; k < length; k++) {
        const column = beats.map((b) => b[index][k]).sort((a, b) => a - b);
        const v = column[Math.floor(column.length / 2)];
        if (k) ctx.lineTo(x(k), y(v)); else ctx.moveTo(x(k), y(v));
      }
      ctx.stroke();
      ctx.fillStyle = "#1d3557"; ctx.font = "12px sans-serif"; ctx.fillText(name, x0 + 4, y0 + 12);
    });
  }).catch(() => { canvas.hidden = true; });
})();
