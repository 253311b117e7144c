// elvmass station: one live channel (server-sent events) shared by every screen. No inline scripts (CSP).
"use strict";
(function () {
  const handlers = { state: [], samples: [] };
  const station = {
    on(kind, fn) { handlers[kind].push(fn); },
    csrf() { const m = document.querySelector('meta[name="csrf-token"]'); return m ? m.content : ""; },
    state: null,
  };
  window.elvStation = station;

  function page() { return document.body.dataset.page || ""; }

  function onState(state) {
    station.state = state;
    const pill = document.getElementById("link-state");
    if (pill) {
      pill.textContent = state.link;
      pill.className = "pill link-" + String(state.link).replace(/ /g, "-");
    }
    const banner = document.getElementById("banner");
    if (banner) banner.hidden = !(state.phase === "acquiring" && page() !== "acquire");
    if (page() === "acquire" && state.phase === "result" && state.result_id != null) {
      window.location.assign("/result");
    }
  }

  function connect() {
    const source = new EventSource("/events");
    source.addEventListener("state", (e) => {
      let state;
      try { state = JSON.parse(e.data); } catch (err) { return; }  // garbage on the channel is ignored
      onState(state);
      handlers.state.forEach((fn) => fn(state));
    });
    source.addEventListener("samples", (e) => {
      let block;
      try { block = JSON.parse(e.data); } catch (err) { return; }
      if (!block || !Array.isArray(block.d)) return;
      handlers.samples.forEach((fn) => fn(block));
    });
    // EventSource reconnects by itself after a server restart or a network blip; the server replays the state.
  }
  document.addEventListener("DOMContentLoaded", connect);
  // A barcode scanner types the ID and then Enter: go on to the next field instead of submitting half a form.
  document.addEventListener("DOMContentLoaded", () => {
    const id = document.getElementById("patient_id");
    const next = document.getElementById("age");
    if (id && next) {
      id.addEventListener("keydown", (e) => {
        if (e.key === "Enter") { e.preventDefault(); next.focus(); }
      });
    }
  });
})();
