// The DAW editor: lanes of stems with waveforms, a mixer, range edits on the bar grid, transport, undo/redo
// through the server's saved remix, A/B against the original, export. The sound is the audio engine's
// (engine.js); this module draws, listens to the mouse and keyboard, and keeps the manifest in step with the
// server (POST /api/daw/{track}/changes, one history step per gesture).
import { DawEngine, envelopeBlock } from "/daw-static/engine.js";

const LEVELS = [256, 512, 1024, 2048, 4096, 8192];
const PCM_BLOCK = 1 << 16;  // frames per PCM block fetched for deep zoom
const SNAPS = [["0.25", "1/4 beat"], ["0.5", "1/2 beat"], ["1", "beat"], ["b1", "bar"], ["b2", "2 bars"],
  ["b4", "4 bars"], ["b8", "8 bars"]];
const CURVES = ["linear", "equal_power", "s_curve", "exponential", "logarithmic"];
const CAMELOT = {
  "C major": "8B", "A minor": "8A", "G major": "9B", "E minor": "9A", "D major": "10B", "B minor": "10A",
  "A major": "11B", "F# minor": "11A", "E major": "12B", "C# minor": "12A", "B major": "1B", "G# minor": "1A",
  "F# major": "2B", "D# minor": "2A", "C# major": "3B", "A# minor": "3A", "G# major": "4B", "F minor": "4A",
  "D# major": "5B", "C minor": "5A", "A# major": "6B", "G minor": "6A", "F major": "7B", "D minor": "7A",
};
const SECTION_COLOURS = ["#7c3aed", "#0f766e", "#b45309", "#be123c", "#1d4ed8", "#4d7c0f", "#9d174d", "#0e7490"];
const SHORTCUTS = [
  ["Space", "play / pause"], ["Enter", "stop and return to the start (or the loop start)"],
  ["L", "loop on / off (drag on the ruler to set the loop)"], ["A", "A/B: the remix or the original track"],
  ["Ctrl+Z", "undo"], ["Ctrl+Shift+Z, Ctrl+Y", "redo"], ["Delete", "cut the selection (silence it)"],
  ["K", "keep only the selection (crop)"], ["I / O", "fade in / fade out over the selection"],
  ["G", "gain over the selection"], ["M / S", "mute / solo the selected lanes"],
  ["+ / −, Ctrl+wheel", "zoom in / out"], ["0", "zoom to the whole track"], ["Wheel, Shift+wheel", "scroll"],
  ["Click an edit's label", "select that edit (Delete removes it)"], ["Esc", "clear the selection"], ["Shift while dragging", "select without snapping"], ["?", "this help"],
];

const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
const dbOf = (gain) => (gain <= 0 ? "-inf" : (20 * Math.log10(gain)).toFixed(1));
// Fader position 0..1000 <-> gain 0..2 (+6 dB): -60 dB at the bottom is silence.
const faderToGain = (pos) => (pos <= 0 ? 0 : Math.pow(10, (-60 + 66 * pos / 1000) / 20));
const gainToFader = (gain) => (gain <= 0.001 ? 0 : clamp(Math.round((20 * Math.log10(gain) + 60) / 66 * 1000), 0, 1000));
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
};

class Editor {
  constructor(root, config) {
    this.root = root;
    this.cfg = config;
    this.trackId = config.track.id;
    this.stems = config.stems;
    this.sr = this.stems[0].sampleRate;
    this.frames = Math.max(...this.stems.map((s) => s.frames));
    this.duration = this.frames / this.sr;
    this.manifest = structuredClone(config.remix.manifest);
    this.base = structuredClone(config.remix.manifest);  // the server's manifest as this tab last saw it
    this.history = config.remix.history || [];
    this.version = config.remix.version;
    this.canUndo = config.remix.canUndo;
    this.canRedo = config.remix.canRedo;
    this.analysis = config.analysis;
    this.beats = this.analysis?.beats || [];
    this.downbeats = this.analysis?.downbeats || [];
    this.sections = this.analysis?.sections || [];
    this.peaks = new Map(); // `${stemId}:${spp}` -> {data: Int16Array, channels, length, spp, display}
    this.pcm = new Map(); // `${stemId}:${block}` -> {data: Float32Array interleaved, channels} (deep zoom)
    this.selection = null; // {start, end, lanes: Set<index>}
    this.loopRegion = null; // {start, end}
    this.arrange = false;
    this.snap = this.beats.length ? "1" : "b1";
    this.scroll = 0;
    this.clipUntil = 0;
    this.pending = Promise.resolve();
    this.build();
    this.pxPerSec = this.fitted = this.fitZoom();
    this.engine = new DawEngine({
      stems: this.stems.map((s) => ({ id: s.id, frames: s.frames, sampleRate: s.sampleRate, channels: s.channels })),
      original: config.track.original || null,
    });
    this.sound();
    this.engine.on("error", (e) => this.status(`Playback: ${e?.message || e}`));
    this.engine.on("ended", () => this.refreshButtons());
    window.addEventListener("resize", () => {
      if (Math.abs(this.pxPerSec - this.fitted) < 1e-9) { this.pxPerSec = this.fitted = this.fitZoom(); this.scroll = 0; }
      this.draw();
    });
    document.addEventListener("keydown", (e) => this.onKey(e));
    this.loadPeaks().then(() => { this.drawnAt = performance.now(); this.root.dataset.waveforms = "drawn"; });
    this.tick = this.tick.bind(this);
    requestAnimationFrame(this.tick);
    this.poll = setInterval(() => this.pollRemix(), 3000);
  }

  // --- layout ---------------------------------------------------------------------------------------------

  build() {
    const title = [this.cfg.track.artist, this.cfg.track.title].filter(Boolean).join(" – ") || "Untitled";
    this.root.append(el("div", { class: "daw-title" }, el("a", { href: `/tracks/${this.trackId}`, text: `← ${title}`,
      title: "Back to the track page" })));
    const bar = el("div", { class: "daw-toolbar" });
    const btn = (label, title, onclick, extra = "") => el("button", { class: `daw-btn ${extra}`, title, text: label, onclick });
    this.playBtn = btn("▶", "Play / pause (Space)", () => this.togglePlay(), "primary");
    this.playBtn.dataset.testid = "play";
    this.loopBtn = btn("⟲ Loop", "Loop on/off (L)", () => this.toggleLoop());
    this.abBtn = btn("A/B: remix", "Switch between the remix and the original (A)", () => this.toggleAB());
    bar.append(el("div", { class: "grp" }, this.playBtn, btn("■", "Stop, back to the start (Enter)", () => this.stop()),
      this.loopBtn, this.abBtn));
    this.snapSel = el("select", { class: "daw-select", title: "Snap edits to" });
    for (const [value, label] of SNAPS) this.snapSel.append(el("option", { value, text: label }));
    this.snapSel.value = this.snap;
    this.snapSel.addEventListener("change", () => { this.snap = this.snapSel.value; this.snapSel.blur(); });
    bar.append(el("div", { class: "grp" }, btn("−", "Zoom out (−)", () => this.zoom(0.5)), btn("+", "Zoom in (+)",
      () => this.zoom(2)), btn("Fit", "The whole track (0)", () => this.fit()),
    el("span", { text: "Snap", style: "color:#9ca3af" }), this.snapSel));
    this.curveSel = el("select", { class: "daw-select", title: "Fade curve" });
    for (const c of CURVES) this.curveSel.append(el("option", { value: c, text: c.replace("_", " ") }));
    this.curveSel.value = "s_curve";
    this.curveSel.addEventListener("change", () => this.curveSel.blur());
    this.gainInput = el("input", { class: "daw-select", type: "number", value: "-6", step: "1", min: "-60", max: "12",
      title: "Gain in dB for G", style: "width:56px" });
    this.editBtns = [
      btn("Cut", "Silence the selection (Delete)", () => this.edit("trim")),
      btn("Keep", "Keep only the selection (K)", () => this.edit("crop")),
      btn("Fade in", "Fade in over the selection (I)", () => this.edit("fade_in")),
      btn("Fade out", "Fade out over the selection (O)", () => this.edit("fade_out")),
      this.curveSel,
      btn("Gain", "Gain over the selection (G)", () => this.edit("gain")), this.gainInput,
      btn("Clear", "Remove the edits inside the selection", () => this.clearEdits()),
    ];
    this.editBtns.forEach((b) => b.classList?.add("edit"));
    bar.append(el("div", { class: "grp" }, ...this.editBtns));
    this.arrangeBtn = btn("Arrange", "Arranger: click a stem × bar cell to mute it", () => this.toggleArrange());
    this.undoBtn = btn("↶", "Undo (Ctrl+Z)", () => this.step("undo"));
    this.redoBtn = btn("↷", "Redo (Ctrl+Shift+Z)", () => this.step("redo"));
    this.undoBtn.dataset.testid = "undo";
    this.redoBtn.dataset.testid = "redo";
    bar.append(el("div", { class: "grp" }, this.arrangeBtn, this.undoBtn, this.redoBtn));
    this.exportSel = el("select", { class: "daw-select", title: "What to export" });
    for (const [v, t] of [["mix", "Full mix (WAV)"], ["loop", "Loop region (WAV)"], ["stems", "Each stem, processed (ZIP)"]]) {
      this.exportSel.append(el("option", { value: v, text: t }));
    }
    this.exportSel.addEventListener("change", () => this.exportSel.blur());
    this.exportBtn = btn("Export", "Render and download", () => this.exportAudio(this.exportSel.value));
    this.exportBtn.dataset.testid = "export";
    bar.append(el("div", { class: "grp" }, this.exportSel, this.exportBtn, btn("?", "Keyboard shortcuts (?)",
      () => this.help.classList.toggle("open"))));
    this.timeLabel = el("span", { class: "daw-time", text: "1.1.00  0:00.000" });
    this.info = el("div", { class: "daw-info" });
    this.fillInfo();
    bar.append(this.info);
    this.root.append(bar);

    this.timeline = el("div", { class: "daw-timeline" });
    this.rulerLabel = el("div", { text: this.downbeats.length ? "Bars" : "Time", style: "color:#9ca3af" });
    this.ruler = this.row("ruler", this.rulerLabel);
    this.sectionRow = this.row("sections", el("div", { text: "Sections", style: "color:#9ca3af" }));
    this.lanes = this.stems.map((stem, index) => this.laneRow(stem, index));
    const masterHead = el("div");
    this.masterFader = el("input", { type: "range", min: "0", max: "1000", value: String(gainToFader(this.manifest.master.gain)) });
    this.masterDb = el("span", { class: "db" });
    this.clipLight = el("span", { class: "daw-clip", title: "Clip: the mix went beyond full scale" });
    this.masterFader.addEventListener("input", () => this.setMaster(false));
    this.masterFader.addEventListener("change", () => this.setMaster(true));
    this.masterFader.addEventListener("dblclick", () => { this.masterFader.value = String(gainToFader(1)); this.setMaster(true); });
    masterHead.append(el("div", { class: "name", text: "Master" }), el("div", { class: "ctl" }, this.masterFader, this.masterDb, this.clipLight));
    this.overview = this.row("overview", masterHead);
    this.playhead = el("div", { class: "daw-playhead" });
    this.timeline.append(this.playhead);
    this.root.append(this.timeline);
    this.progress = el("div", { class: "daw-progress" });
    this.statusText = el("span", { text: "" });
    this.root.append(el("div", { class: "daw-status" }, this.statusText, el("div", { style: "flex:1" }, this.progress)));
    this.help = el("div", { class: "daw-help" });
    const table = el("table");
    for (const [k, what] of SHORTCUTS) table.append(el("tr", {}, el("td", {}, el("kbd", { text: k })), el("td", { text: what })));
    this.help.append(el("h3", { text: "Keyboard shortcuts", style: "margin-top:0" }), table,
      el("p", { text: "Drag on a lane to select a range (across lanes by dragging up or down), then cut, keep, fade or gain it. Click the ruler to seek; drag on it to set the loop. Click a section to select it, double-click to loop it." }),
      el("button", { class: "daw-btn", text: "Close", onclick: () => this.help.classList.remove("open") }));
    this.root.append(this.help);
    this.bindRuler();
    this.bindSections();
    this.bindOverview();
    this.refreshMixer();
    this.refreshButtons();
  }

  row(kind, head) {
    const canvas = el("canvas");
    const cell = el("div", { class: "daw-canvas-cell" }, canvas);
    const headNode = el("div", { class: "daw-head" }, head);
    const node = el("div", { class: `daw-row ${kind}` }, headNode, cell);
    this.timeline.append(node);
    canvas.addEventListener("wheel", (e) => this.onWheel(e), { passive: false });
    return { node, canvas, cell };
  }

  laneRow(stem, index) {
    const head = el("div");
    const mute = el("button", { class: "daw-btn ms mute", text: "M", title: "Mute" });
    const solo = el("button", { class: "daw-btn ms solo", text: "S", title: "Solo" });
    const vol = el("input", { type: "range", min: "0", max: "1000", title: "Volume (double-click: 0 dB)" });
    const db = el("span", { class: "db" });
    const pan = el("input", { type: "range", min: "-100", max: "100", title: "Pan (double-click: centre)" });
    const panLabel = el("span", { class: "db" });
    const meter = el("div", { class: "daw-meter" }, el("i"));
    mute.addEventListener("click", () => this.setStem(index, { muted: !this.entry(index).muted }, "Mute"));
    solo.addEventListener("click", () => this.setStem(index, { solo: !this.entry(index).solo }, "Solo"));
    vol.addEventListener("input", () => this.setStem(index, { volume: faderToGain(+vol.value) }, null));
    vol.addEventListener("change", () => this.commit(`Volume ${stem.type}`));
    vol.addEventListener("dblclick", () => { vol.value = String(gainToFader(1)); this.setStem(index, { volume: 1 }, `Volume ${stem.type}`); });
    pan.addEventListener("input", () => this.setStem(index, { pan: +pan.value / 100 }, null));
    pan.addEventListener("change", () => this.commit(`Pan ${stem.type}`));
    pan.addEventListener("dblclick", () => { pan.value = "0"; this.setStem(index, { pan: 0 }, `Pan ${stem.type}`); });
    head.append(el("div", { class: "name" }, el("span", { class: "swatch", style: `background:${stem.colour}` }),
      stem.type[0].toUpperCase() + stem.type.slice(1)),
    el("div", { class: "ctl" }, mute, solo, vol, db), el("div", { class: "ctl" }, el("span", { text: "Pan", style: "color:#9ca3af;width:26px" }), pan, panLabel));
    const row = this.row("lane", el("div", { style: "display:flex;gap:8px;align-items:center" }, head, meter));
    row.node.dataset.testid = `lane-${stem.type}`;
    mute.dataset.testid = `mute-${stem.type}`;
    solo.dataset.testid = `solo-${stem.type}`;
    row.canvas.dataset.lane = String(index);
    this.bindLane(row.canvas, index);
    return { ...row, stem, mute, solo, vol, db, pan, panLabel, meter: meter.firstChild };
  }

  // --- manifest -------------------------------------------------------------------------------------------

  sound() {
    // A copy: the engine compares the manifest it had with the new one to know what to re-render now.
    this.engine.setManifest(structuredClone(this.manifest));
  }

  entry(index) {
    const id = this.stems[index].id;
    return this.manifest.stems.find((s) => s.stem_id === id);
  }

  setStem(index, change, label) {
    Object.assign(this.entry(index), change);
    this.sound();
    this.refreshMixer();
    this.drawLanes();
    if (label) this.commit(label);
  }

  setMaster(commit) {
    this.manifest.master.gain = faderToGain(+this.masterFader.value);
    this.sound();
    this.refreshMixer();
    if (commit) this.commit("Master");
  }

  refreshMixer() {
    this.lanes.forEach((lane, i) => {
      const e = this.entry(i);
      lane.mute.classList.toggle("on", !!e.muted);
      lane.solo.classList.toggle("on", !!e.solo);
      if (document.activeElement !== lane.vol) lane.vol.value = String(gainToFader(e.volume));
      if (document.activeElement !== lane.pan) lane.pan.value = String(Math.round(e.pan * 100));
      lane.db.textContent = `${dbOf(e.volume)} dB`;
      lane.panLabel.textContent = e.pan === 0 ? "C" : `${Math.abs(Math.round(e.pan * 100))}${e.pan < 0 ? "L" : "R"}`;
    });
    if (document.activeElement !== this.masterFader) this.masterFader.value = String(gainToFader(this.manifest.master.gain));
    this.masterDb.textContent = `${dbOf(this.manifest.master.gain)} dB`;
  }

  refreshButtons() {
    this.playBtn.textContent = this.engine?.playing ? "❚❚" : "▶";
    this.loopBtn.classList.toggle("on", !!this.engine?.loop);
    this.abBtn.textContent = `A/B: ${this.engine?.abMode === "original" ? "original" : "remix"}`;
    this.abBtn.classList.toggle("on", this.engine?.abMode === "original");
    this.arrangeBtn.classList.toggle("on", this.arrange);
    this.undoBtn.disabled = !this.canUndo;
    this.redoBtn.disabled = !this.canRedo;
    const done = (this.history || []).filter((h) => !h.undone), undone = (this.history || []).filter((h) => h.undone);
    this.undoBtn.title = done.length ? `Undo: ${done[done.length - 1].label || "last change"} (Ctrl+Z)` : "Undo (Ctrl+Z)";
    this.redoBtn.title = undone.length ? `Redo: ${undone[0].label || "change"} (Ctrl+Shift+Z)` : "Redo (Ctrl+Shift+Z)";
    const hasSelection = !!this.selection && this.selection.end > this.selection.start;
    this.editBtns.forEach((b) => { if (b.tagName === "BUTTON") b.disabled = !hasSelection; });
    this.lanes.forEach((lane, i) => lane.node.classList.toggle("selected", !!this.selection?.lanes.has(i)));
  }

  headers() {
    return { "Content-Type": "application/json", "X-CSRF-Token": this.cfg.csrf };
  }

  // One history step per gesture, sent as a JSON Patch of what this tab changed since the server's manifest
  // it knows: the server applies it to its current manifest, so another tab's change made meanwhile is kept.
  commit(label) {
    const patch = manifestPatch(this.base, this.manifest);
    if (!patch.length) return this.pending;
    this.base = structuredClone(this.manifest);
    this.pending = this.pending.then(async () => {
      const r = await fetch(`/api/daw/${this.trackId}/changes`, { method: "POST", credentials: "same-origin",
        headers: this.headers(), body: JSON.stringify({ patch, label }) });
      const body = await r.json().catch(() => ({}));
      if (r.ok) return this.adopt(body.data, !this.sameAsServer(body.data.manifest));
      this.status(`Not saved: ${body.error || r.status}`);
      return this.reload();
    });
    return this.pending;
  }

  sameAsServer(manifest) {
    return JSON.stringify(manifest) === JSON.stringify(this.manifest);
  }

  adopt(state, replaceManifest = true) {
    this.version = state.version;
    this.canUndo = state.can_undo;
    this.canRedo = state.can_redo;
    this.history = state.history || [];
    this.base = structuredClone(state.manifest);
    if (replaceManifest) {
      this.manifest = structuredClone(state.manifest);
      this.sound();
      this.refreshMixer();
      this.drawLanes();
    }
    this.root.dataset.version = String(this.version);
    this.refreshButtons();
  }

  async reload() {
    const r = await fetch(`/api/daw/${this.trackId}`, { credentials: "same-origin" });
    if (r.ok) this.adopt((await r.json()).data, true);
  }

  async pollRemix() {
    if (document.hidden || this.dragging) return;
    await this.pending;
    const r = await fetch(`/api/daw/${this.trackId}`, { credentials: "same-origin",
      headers: { "If-None-Match": `W/"remix-${this.version}"` } });
    if (r.status === 200) {
      const state = (await r.json()).data;
      if (state.version !== this.version) { this.adopt(state, true); this.status("Updated from another tab"); }
    }
  }

  step(which) {
    this.pending = this.pending.then(async () => {
      const r = await fetch(`/api/daw/${this.trackId}/${which}`, { method: "POST", credentials: "same-origin",
        headers: this.headers(), body: JSON.stringify({ base_version: this.version }) });
      const body = await r.json().catch(() => ({}));
      if (r.ok) { this.adopt(body.data, true); this.status(which === "undo" ? "Undone" : "Redone"); return; }
      if (body.code === "version_conflict") { await this.reload(); return; }
      this.status(body.error || `${which} failed`);
    });
    return this.pending;
  }

  newId() {
    return `op-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
  }

  edit(type) {
    const sel = this.selection;
    if (!sel || sel.end <= sel.start) return;
    const params = { start_ms: +(sel.start * 1000).toFixed(3), end_ms: +(sel.end * 1000).toFixed(3) };
    if (type === "fade_in" || type === "fade_out") params.curve = this.curveSel.value;
    if (type === "gain") params.level = +clamp(Math.pow(10, (+this.gainInput.value || 0) / 20), 0, 4).toFixed(6);
    const names = [];
    for (const index of sel.lanes) {
      this.entry(index).operations.push({ id: this.newId(), type, params: { ...params } });
      names.push(this.stems[index].type);
    }
    const what = { trim: "Cut", crop: "Keep", fade_in: "Fade in", fade_out: "Fade out", gain: "Gain" }[type];
    this.sound();
    this.drawLanes();
    return this.commit(`${what} ${names.join(", ")}`);
  }

  editAt(index, t) {
    const tolerance = 4 / this.pxPerSec;
    const ops = this.entry(index).operations;
    for (let i = ops.length - 1; i >= 0; i--) {
      const p = ops[i].params;
      const a = (p.start_ms ?? p.position_ms) / 1000, b = (p.end_ms ?? p.position_ms) / 1000;
      if (t >= a - tolerance && t <= b + tolerance) return ops[i];
    }
    return null;
  }

  removeSelectedOp() {
    const { lane, id } = this.selectedOp;
    const e = this.entry(lane);
    const op = e.operations.find((o) => o.id === id);
    this.selectedOp = null;
    if (!op) return;
    e.operations = e.operations.filter((o) => o.id !== id);
    this.sound();
    this.drawLanes();
    this.commit(`Remove ${op.type.replace("_", " ")} ${this.stems[lane].type}`);
  }

  clearEdits() {
    const sel = this.selection;
    if (!sel) return;
    for (const index of sel.lanes) {
      const e = this.entry(index);
      e.operations = e.operations.filter((op) => {
        const p = op.params;
        const a = (p.start_ms ?? p.position_ms) / 1000, b = (p.end_ms ?? p.position_ms) / 1000;
        return b < sel.start || a > sel.end;
      });
    }
    this.sound();
    this.drawLanes();
    return this.commit("Clear edits");
  }

  toggleArrange() {
    if (!this.downbeats.length) { this.status("Arrange needs the bars: analyse the track first"); return; }
    this.arrange = !this.arrange;
    this.selection = null;
    this.status(this.arrange ? "Arrange: click a stem × bar cell to mute or unmute it" : "");
    this.refreshButtons();
    this.drawLanes();
  }

  toggleBarMute(index, bar) {
    if (bar < 0 || bar >= this.downbeats.length) return;
    const start = this.downbeats[bar], end = bar + 1 < this.downbeats.length ? this.downbeats[bar + 1] : this.duration;
    const e = this.entry(index);
    const ms = (t) => +(t * 1000).toFixed(3);
    const found = e.operations.findIndex((op) => op.type === "mute" && Math.abs(op.params.start_ms - ms(start)) < 1
      && Math.abs(op.params.end_ms - ms(end)) < 1);
    if (found >= 0) e.operations.splice(found, 1);
    else e.operations.push({ id: this.newId(), type: "mute", params: { start_ms: ms(start), end_ms: ms(end) } });
    this.sound();
    this.drawLanes();
    return this.commit(`${found >= 0 ? "Unmute" : "Mute"} ${this.stems[index].type} bar ${bar + 1}`);
  }

  // --- grid and time --------------------------------------------------------------------------------------

  fitZoom() {
    const width = this.lanes?.[0]?.cell.clientWidth || this.root.clientWidth - 240 || 800;
    return width / this.duration;
  }

  fit() {
    this.pxPerSec = this.fitted = this.fitZoom();
    this.scroll = 0;
    this.draw();
    this.loadPeaks();
  }

  beatLength() {
    if (this.beats.length > 1) return (this.beats[this.beats.length - 1] - this.beats[0]) / (this.beats.length - 1);
    return 0.5;
  }

  snapTime(t, free = false) {
    t = clamp(t, 0, this.duration);
    if (free) return t;
    const grid = [];
    if (this.snap.startsWith("b")) {
      const every = +this.snap.slice(1);
      const bars = this.downbeats.length ? this.downbeats : this.secondsGrid(2);
      for (let i = 0; i < bars.length; i += every) grid.push(bars[i]);
    } else if (this.beats.length) {
      const div = +this.snap;
      for (let i = 0; i < this.beats.length; i++) {
        const b = this.beats[i], next = this.beats[i + 1] ?? b + this.beatLength();
        for (let k = 0; k < 1; k += div) grid.push(b + (next - b) * k);
      }
    } else {
      grid.push(...this.secondsGrid(+this.snap));
    }
    grid.push(0, this.duration);
    let best = t, dist = Infinity;
    for (const g of grid) { const d = Math.abs(g - t); if (d < dist) { dist = d; best = g; } }
    return best;
  }

  secondsGrid(step) {
    const out = [];
    for (let t = 0; t <= this.duration; t += step) out.push(t);
    return out;
  }

  barBeat(t) {
    if (!this.downbeats.length || !this.beats.length) return "";
    const perBar = this.analysis?.beats_per_bar || 4;
    const near = (x) => x <= t + 0.03;  // a beat a few ms ahead counts as reached (the display rounds)
    let beat = -1;
    while (beat + 1 < this.beats.length && near(this.beats[beat + 1])) beat++;
    const first = this.beats.findIndex((b) => Math.abs(b - this.downbeats[0]) < 0.03);
    if (beat < 0 || first < 0) return "1.1";
    const since = beat - first;
    if (since < 0) return `0.${perBar + since + 1}`;  // a pickup before the first bar
    return `${Math.floor(since / perBar) + 1}.${(since % perBar) + 1}`;
  }

  formatTime(t) {
    const m = Math.floor(t / 60), s = t - m * 60;
    const clock = `${m}:${s.toFixed(3).padStart(6, "0")}`;
    const bb = this.barBeat(t);
    return bb ? `${bb}  ${clock}` : clock;
  }

  xOf(t) { return (t - this.scroll) * this.pxPerSec; }
  tOf(x) { return this.scroll + x / this.pxPerSec; }

  zoom(factor, anchorT) {
    const width = this.lanes[0].cell.clientWidth;
    const min = width / this.duration, max = width / Math.max(0.05, this.beatLength());
    const now = this.engine.currentTime, view = width / this.pxPerSec;
    const anchor = anchorT ?? (now >= this.scroll && now <= this.scroll + view ? now : this.scroll + view / 2);
    const ax = (anchor - this.scroll) * this.pxPerSec;
    this.pxPerSec = clamp(this.pxPerSec * factor, min, max);
    this.scroll = clamp(anchor - ax / this.pxPerSec, 0, Math.max(0, this.duration - width / this.pxPerSec));
    this.draw();
    this.loadPeaks();
  }

  scrollBy(seconds) {
    const width = this.lanes[0].cell.clientWidth;
    this.scroll = clamp(this.scroll + seconds, 0, Math.max(0, this.duration - width / this.pxPerSec));
    this.draw();
  }

  // --- waveforms ------------------------------------------------------------------------------------------

  level() {
    const spp = this.sr / this.pxPerSec;
    let best = LEVELS[0];
    for (const l of LEVELS) if (l <= spp) best = l;
    return best;
  }

  async loadPeaks() {
    const spp = this.level();
    const wanted = [...new Set([LEVELS[LEVELS.length - 1], spp])];
    await Promise.all(this.stems.flatMap((stem) => wanted.map(async (level) => {
      const key = `${stem.id}:${level}`;
      if (this.peaks.has(key)) return;
      this.peaks.set(key, null);
      const r = await fetch(`/api/stems/${stem.id}/peaks?samples_per_pixel=${level}&bits=16`, { credentials: "same-origin" });
      if (!r.ok) { this.peaks.delete(key); return; }
      const doc = await r.json();
      const data = Int16Array.from(doc.data);
      let peak = 1;
      for (let i = 0; i < data.length; i++) peak = Math.max(peak, Math.abs(data[i]));
      // Quiet stems are drawn taller (up to 64x), so their shape shows; the lane says by how much.
      const display = Math.min(64, 32768 / peak);
      this.peaks.set(key, { data, channels: doc.channels, length: doc.length, spp: level, display });
    })));
    this.draw();
  }

  // Deeper than the finest peaks (256 samples a pixel) the lanes are drawn from the samples themselves:
  // PCM blocks of the visible stretch, fetched once and kept (a few dozen at most).
  pcmBlock(stem, block) {
    const key = `${stem.id}:${block}`;
    if (this.pcm.has(key)) return this.pcm.get(key);
    this.pcm.set(key, null);
    const start = block * PCM_BLOCK;
    if (start >= stem.frames) return null;
    fetch(`/api/stems/${stem.id}/pcm?start=${start}&frames=${Math.min(PCM_BLOCK, stem.frames - start)}&format=f32`,
      { credentials: "same-origin" }).then(async (r) => {
      if (!r.ok) { this.pcm.delete(key); return; }
      const data = new Float32Array(await r.arrayBuffer());
      this.pcm.set(key, { data, channels: +r.headers.get("X-Channels") || 2 });
      while (this.pcm.size > 48) this.pcm.delete(this.pcm.keys().next().value);
      this.drawLanes();
    }).catch(() => this.pcm.delete(key));
    return null;
  }

  samplesPeak(stem, f0, f1) {
    let lo = 0, hi = 0, complete = true;
    for (let b = Math.floor(f0 / PCM_BLOCK); b * PCM_BLOCK < f1; b++) {
      const got = this.pcmBlock(stem, b);
      if (!got) { complete = false; continue; }
      const from = Math.max(f0, b * PCM_BLOCK) - b * PCM_BLOCK, to = Math.min(f1, (b + 1) * PCM_BLOCK) - b * PCM_BLOCK;
      for (let i = from * got.channels; i < to * got.channels && i < got.data.length; i++) {
        const v = got.data[i]; if (v < lo) lo = v; if (v > hi) hi = v;
      }
    }
    return complete ? [lo * 32768, hi * 32768] : null;
  }

  peaksFor(stem) {
    const exact = this.peaks.get(`${stem.id}:${this.level()}`);
    if (exact) return exact;
    for (const l of [...LEVELS].reverse()) { const p = this.peaks.get(`${stem.id}:${l}`); if (p) return p; }
    return null;
  }

  sizeCanvas(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    return [ctx, w, h];
  }

  draw() {
    if (!this.lanes) return;
    this.drawRuler();
    this.drawSections();
    this.drawLanes();
    this.drawOverview();
  }

  gridLines(ctx, w, h, strong = "#334155", weak = "#1e293b") {
    const t0 = this.scroll, t1 = this.tOf(w);
    if (this.downbeats.length) {
      const showBeats = this.pxPerSec * this.beatLength() > 12;
      if (showBeats) {
        ctx.strokeStyle = weak;
        for (const b of this.beats) if (b >= t0 && b <= t1) { const x = Math.round(this.xOf(b)) + 0.5; ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, h); ctx.stroke(); }
      }
      ctx.strokeStyle = strong;
      const every = Math.max(1, Math.ceil(40 / (this.pxPerSec * this.beatLength() * (this.analysis?.beats_per_bar || 4))));
      this.downbeats.forEach((d, i) => {
        if (i % every || d < t0 || d > t1) return;
        const x = Math.round(this.xOf(d)) + 0.5; ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, h); ctx.stroke();
      });
    } else {
      const step = [1, 2, 5, 10, 15, 30, 60].find((s) => s * this.pxPerSec > 60) || 120;
      ctx.strokeStyle = weak;
      for (let t = Math.floor(t0 / step) * step; t <= t1; t += step) { const x = Math.round(this.xOf(t)) + 0.5; ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, h); ctx.stroke(); }
    }
  }

  drawRuler() {
    const [ctx, w, h] = this.sizeCanvas(this.ruler.canvas);
    ctx.fillStyle = "#0f172a"; ctx.fillRect(0, 0, w, h);
    if (this.loopRegion) {
      const a = this.xOf(this.loopRegion.start), b = this.xOf(this.loopRegion.end);
      ctx.fillStyle = this.engine?.loop ? "rgba(167,139,250,.45)" : "rgba(167,139,250,.18)";
      ctx.fillRect(a, 0, b - a, h);
    }
    ctx.fillStyle = "#94a3b8"; ctx.font = "11px system-ui"; ctx.strokeStyle = "#475569";
    if (this.downbeats.length && this.pxPerSec * this.beatLength() > 36) {  // zoomed in: every beat, bar.beat
      for (const b of this.beats) {
        const x = this.xOf(b);
        if (x < -40 || x > w) continue;
        const label = this.barBeat(b + 0.001);
        const downbeat = label.endsWith(".1");
        ctx.beginPath(); ctx.moveTo(Math.round(x) + 0.5, downbeat ? h - 12 : h - 6); ctx.lineTo(Math.round(x) + 0.5, h); ctx.stroke();
        ctx.fillStyle = downbeat ? "#e2e8f0" : "#64748b";
        ctx.fillText(label, x + 3, 12);
      }
    } else if (this.downbeats.length) {
      const every = Math.max(1, Math.ceil(46 / (this.pxPerSec * this.beatLength() * (this.analysis?.beats_per_bar || 4))));
      this.downbeats.forEach((d, i) => {
        if (i % every) return;
        const x = this.xOf(d);
        if (x < -40 || x > w) return;
        ctx.beginPath(); ctx.moveTo(Math.round(x) + 0.5, h - 10); ctx.lineTo(Math.round(x) + 0.5, h); ctx.stroke();
        ctx.fillText(String(i + 1), x + 3, 12);
      });
    } else {
      const step = [1, 2, 5, 10, 15, 30, 60].find((s) => s * this.pxPerSec > 60) || 120;
      for (let t = Math.floor(this.scroll / step) * step; t <= this.tOf(w); t += step) {
        const x = this.xOf(t);
        ctx.beginPath(); ctx.moveTo(Math.round(x) + 0.5, h - 10); ctx.lineTo(Math.round(x) + 0.5, h); ctx.stroke();
        ctx.fillText(`${Math.floor(t / 60)}:${String(Math.floor(t % 60)).padStart(2, "0")}`, x + 3, 12);
      }
    }
  }

  drawSections() {
    const [ctx, w, h] = this.sizeCanvas(this.sectionRow.canvas);
    ctx.fillStyle = "#0f172a"; ctx.fillRect(0, 0, w, h);
    ctx.font = "600 11px system-ui";
    if (!this.sections.length) {
      ctx.fillStyle = "#64748b"; ctx.fillText(this.analysis ? "No sections found" : "Not analysed: use “Analyse bars”", 8, 17);
      return;
    }
    const letters = [...new Set(this.sections.map((s) => s.label))];
    for (const s of this.sections) {
      const a = this.xOf(s.start), b = this.xOf(s.end);
      if (b < 0 || a > w) continue;
      ctx.fillStyle = SECTION_COLOURS[letters.indexOf(s.label) % SECTION_COLOURS.length];
      ctx.globalAlpha = 0.35 + 0.5 * (s.energy ?? 1);
      ctx.fillRect(a + 1, 3, Math.max(1, b - a - 2), h - 6);
      ctx.globalAlpha = 1;
      ctx.fillStyle = "#fff";
      ctx.fillText(s.label, Math.max(a, 0) + 6, 17);
    }
  }

  drawLanes() {
    if (!this.lanes) return;
    const level = this.level();
    this.lanes.forEach((lane, index) => {
      const [ctx, w, h] = this.sizeCanvas(lane.canvas);
      const entry = this.entry(index);
      const audible = !entry.muted && (!this.manifest.stems.some((s) => s.solo) || entry.solo);
      ctx.fillStyle = "#0b1222"; ctx.fillRect(0, 0, w, h);
      this.gridLines(ctx, w, h);
      const peaks = this.peaksFor(lane.stem);
      const mid = h / 2, half = h / 2 - 3;
      if (peaks) {
        ctx.fillStyle = lane.stem.colour;
        ctx.globalAlpha = audible ? 0.9 : 0.3;
        const frame0 = Math.floor(this.scroll * this.sr);
        const perPx = this.sr / this.pxPerSec;
        for (let x = 0; x < w; x++) {
          const f0 = frame0 + x * perPx, f1 = f0 + perPx;
          if (f0 >= lane.stem.frames) break;
          let lo = 0, hi = 0;
          const exact = perPx < LEVELS[0] ? this.samplesPeak(lane.stem, Math.floor(f0), Math.ceil(f1)) : null;
          if (exact) {
            [lo, hi] = exact;
          } else {
            const i0 = Math.floor(f0 / peaks.spp), i1 = Math.max(i0 + 1, Math.ceil(f1 / peaks.spp));
            for (let i = i0; i < i1 && i < peaks.length; i++) {
              for (let c = 0; c < peaks.channels; c++) {
                const base = (i * peaks.channels + c) * 2;
                lo = Math.min(lo, peaks.data[base]); hi = Math.max(hi, peaks.data[base + 1]);
              }
            }
          }
          const g = entry.operations.length ? envelopeBlock(entry.operations, Math.round(f0 + perPx / 2), 1, this.sr)[0] : 1;
          const scale = clamp(g * entry.volume, 0, 2) * peaks.display / 32768;
          const top = mid - hi * scale * half, bottom = mid - lo * scale * half;
          ctx.fillRect(x, top, 1, Math.max(1, bottom - top));
        }
        ctx.globalAlpha = 1;
        if (peaks.display > 1.05) {
          ctx.fillStyle = "#64748b"; ctx.font = "10px system-ui";
          ctx.fillText(`quiet stem: drawn ×${peaks.display.toFixed(0)}`, w - 120, h - 5);
        }
      } else {
        ctx.fillStyle = "#475569"; ctx.font = "12px system-ui"; ctx.fillText("Loading the waveform…", 10, mid);
      }
      this.drawOperations(ctx, entry, w, h);
      if (this.arrange) this.drawArrangeCells(ctx, entry, w, h);
      const sel = this.selection;
      if (sel && sel.lanes.has(index)) {
        const a = this.xOf(sel.start), b = this.xOf(sel.end);
        ctx.fillStyle = "rgba(253,230,138,.18)"; ctx.fillRect(a, 0, b - a, h);
        ctx.strokeStyle = "#fde68a"; ctx.strokeRect(a + 0.5, 0.5, b - a - 1, h - 1);
      }
      if (this.loopRegion && this.engine?.loop) {
        ctx.strokeStyle = "rgba(167,139,250,.8)";
        for (const t of [this.loopRegion.start, this.loopRegion.end]) { const x = Math.round(this.xOf(t)) + 0.5; ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, h); ctx.stroke(); }
      }
    });
  }

  drawOperations(ctx, entry, w, h) {
    ctx.font = "10px system-ui";
    for (const op of entry.operations) {
      const p = op.params;
      if (this.selectedOp && this.selectedOp.id === op.id) {
        const a = this.xOf((p.start_ms ?? p.position_ms) / 1000), b = this.xOf((p.end_ms ?? p.position_ms) / 1000);
        ctx.strokeStyle = "#38bdf8"; ctx.lineWidth = 2; ctx.strokeRect(a - 1, 1, Math.max(2, b - a + 2), h - 2); ctx.lineWidth = 1;
      }
      if (op.type === "split") {
        const x = this.xOf(p.position_ms / 1000);
        ctx.setLineDash([3, 3]); ctx.strokeStyle = "#94a3b8"; ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, h); ctx.stroke(); ctx.setLineDash([]);
        continue;
      }
      const a = this.xOf(p.start_ms / 1000), b = this.xOf(p.end_ms / 1000);
      if (b < 0 || a > w) { if (op.type !== "crop") continue; }
      ctx.fillStyle = "rgba(2,6,23,.6)";
      if (op.type === "trim" || op.type === "mute") { ctx.fillRect(a, 0, b - a, h); ctx.fillStyle = "#f87171"; ctx.fillText("cut", a + 3, 11); }
      if (op.type === "crop") { ctx.fillRect(0, 0, Math.max(0, a), h); ctx.fillRect(b, 0, w - b, h); ctx.fillStyle = "#86efac"; ctx.fillText("keep", a + 3, 11); }
      if (op.type === "gain") { ctx.fillStyle = "rgba(56,189,248,.12)"; ctx.fillRect(a, 0, b - a, h); ctx.fillStyle = "#7dd3fc"; ctx.fillText(`${dbOf(p.level)} dB`, a + 3, 11); }
      if (op.type === "fade_in" || op.type === "fade_out") {
        ctx.strokeStyle = "#fde68a"; ctx.beginPath();
        const steps = Math.max(2, Math.min(200, Math.round(b - a)));
        for (let k = 0; k <= steps; k++) {
          const t = (p.start_ms + (p.end_ms - p.start_ms) * k / steps) / 1000;
          const g = envelopeBlock([op], Math.round(t * this.sr), 1, this.sr)[0];
          const x = a + (b - a) * k / steps, y = h - 2 - g * (h - 4);
          if (k) ctx.lineTo(x, y); else ctx.moveTo(x, y);
        }
        ctx.stroke();
        ctx.fillStyle = "#fde68a"; ctx.fillText(op.type === "fade_in" ? "fade in" : "fade out", a + 3, 11);
      }
    }
  }

  drawArrangeCells(ctx, entry, w, h) {
    ctx.strokeStyle = "rgba(148,163,184,.35)";
    this.downbeats.forEach((d, i) => {
      const end = this.downbeats[i + 1] ?? this.duration;
      const a = this.xOf(d), b = this.xOf(end);
      if (b < 0 || a > w) return;
      ctx.strokeRect(a + 1.5, 1.5, b - a - 3, h - 3);
    });
  }

  drawOverview() {
    const [ctx, w, h] = this.sizeCanvas(this.overview.canvas);
    ctx.fillStyle = "#0f172a"; ctx.fillRect(0, 0, w, h);
    const scale = w / this.duration;
    this.stems.forEach((stem) => {
      const peaks = this.peaks.get(`${stem.id}:${LEVELS[LEVELS.length - 1]}`);
      if (!peaks) return;
      ctx.fillStyle = stem.colour; ctx.globalAlpha = 0.35;
      for (let x = 0; x < w; x++) {
        const i0 = Math.floor(x / scale * this.sr / peaks.spp), i1 = Math.max(i0 + 1, Math.floor((x + 1) / scale * this.sr / peaks.spp));
        let hi = 0;
        for (let i = i0; i < i1 && i < peaks.length; i++) hi = Math.max(hi, peaks.data[i * peaks.channels * 2 + 1]);
        const y = clamp(hi * peaks.display / 32768, 0, 1) * (h / 2 - 2);
        ctx.fillRect(x, h / 2 - y, 1, 2 * y);
      }
      ctx.globalAlpha = 1;
    });
    const width = this.lanes[0].cell.clientWidth;
    ctx.strokeStyle = "#fde68a"; ctx.lineWidth = 1.5;
    ctx.strokeRect(this.scroll * scale + 0.5, 0.5, width / this.pxPerSec * scale - 1, h - 1);
    ctx.lineWidth = 1;
  }

  // --- mouse ----------------------------------------------------------------------------------------------

  localX(canvas, e) { return e.clientX - canvas.getBoundingClientRect().left; }

  bindLane(canvas, index) {
    canvas.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      const x0 = this.localX(canvas, e);
      const t0 = this.tOf(x0);
      if (this.arrange && this.downbeats.length) {
        let bar = 0;
        while (bar + 1 < this.downbeats.length && this.downbeats[bar + 1] <= t0) bar++;
        this.toggleBarMute(index, bar);
        return;
      }
      const picked = e.offsetY < 16 ? this.editAt(index, t0) : null;
      if (picked || this.selectedOp) {
        this.selectedOp = picked ? { lane: index, id: picked.id } : null;
        if (picked) {
          this.status(`${picked.type.replace("_", " ")} selected: Delete removes it, Esc lets it go`);
          this.drawLanes();
          return;
        }
        this.drawLanes();
      }
      this.dragging = true;
      const anchor = this.snapTime(t0, e.shiftKey);
      let moved = false;
      let lastLane = index;
      const move = (ev) => {
        const x = this.localX(canvas, ev);
        if (Math.abs(x - x0) > 3) moved = true;
        if (!moved) return;
        const t = this.snapTime(this.tOf(x), ev.shiftKey);
        const over = document.elementFromPoint(ev.clientX, ev.clientY);
        if (over?.dataset?.lane !== undefined) lastLane = +over.dataset.lane;
        const to = lastLane;
        const lanes = new Set();
        for (let i = Math.min(index, to); i <= Math.max(index, to); i++) lanes.add(i);
        this.selection = { start: Math.min(anchor, t), end: Math.max(anchor, t), lanes };
        this.drawLanes();
        this.refreshButtons();
      };
      const up = (ev) => {
        window.removeEventListener("pointermove", move);
        window.removeEventListener("pointerup", up);
        this.dragging = false;
        if (!moved) { this.selection = null; this.seek(this.tOf(this.localX(canvas, ev))); }
        this.drawLanes();
        this.refreshButtons();
        this.root.dataset.selection = this.selection ? `${this.selection.start.toFixed(3)}-${this.selection.end.toFixed(3)}` : "";
      };
      window.addEventListener("pointermove", move);
      window.addEventListener("pointerup", up);
    });
  }

  bindRuler() {
    const canvas = this.ruler.canvas;
    canvas.addEventListener("pointerdown", (e) => {
      const x0 = this.localX(canvas, e);
      const t0 = this.snapTime(this.tOf(x0), e.shiftKey);
      let moved = false;
      const move = (ev) => {
        const x = this.localX(canvas, ev);
        if (Math.abs(x - x0) > 3) moved = true;
        if (!moved) return;
        const t = this.snapTime(this.tOf(x), ev.shiftKey);
        this.loopRegion = { start: Math.min(t0, t), end: Math.max(t0, t) };
        this.drawRuler();
      };
      const up = (ev) => {
        window.removeEventListener("pointermove", move);
        window.removeEventListener("pointerup", up);
        if (!moved) { this.seek(this.tOf(this.localX(canvas, ev))); return; }
        if (this.loopRegion && this.loopRegion.end - this.loopRegion.start > 0.05) {
          this.engine.setLoop(this.loopRegion.start, this.loopRegion.end);
          this.engine.loop = true;
          this.refreshButtons();
          this.draw();
        }
      };
      window.addEventListener("pointermove", move);
      window.addEventListener("pointerup", up);
    });
  }

  sectionAt(e) {
    const t = this.tOf(this.localX(this.sectionRow.canvas, e));
    return this.sections.find((s) => s.start <= t && t < s.end);
  }

  bindSections() {
    const canvas = this.sectionRow.canvas;
    canvas.addEventListener("click", (e) => {
      const s = this.sectionAt(e);
      if (!s) return;
      this.selection = { start: s.start, end: s.end, lanes: new Set(this.stems.map((_, i) => i)) };
      this.drawLanes();
      this.refreshButtons();
    });
    canvas.addEventListener("dblclick", (e) => {
      const s = this.sectionAt(e);
      if (!s) return;
      this.loopRegion = { start: s.start, end: s.end };
      this.engine.setLoop(s.start, s.end);
      this.engine.loop = true;
      this.refreshButtons();
      this.draw();
    });
  }

  bindOverview() {
    const centre = (e) => {
      const w = this.overview.canvas.clientWidth;
      const t = this.localX(this.overview.canvas, e) / w * this.duration;
      const view = this.lanes[0].cell.clientWidth / this.pxPerSec;
      this.scroll = clamp(t - view / 2, 0, Math.max(0, this.duration - view));
      this.draw();
    };
    this.overview.canvas.addEventListener("pointerdown", (e) => {
      centre(e);
      const up = () => { window.removeEventListener("pointermove", centre); window.removeEventListener("pointerup", up); this.loadPeaks(); };
      window.addEventListener("pointermove", centre);
      window.addEventListener("pointerup", up);
    });
  }

  onWheel(e) {
    e.preventDefault();
    if (e.ctrlKey || e.metaKey) {
      const canvas = e.currentTarget;
      this.zoom(e.deltaY < 0 ? 1.25 : 0.8, this.tOf(this.localX(canvas, e)));
      return;
    }
    const delta = Math.abs(e.deltaX) > Math.abs(e.deltaY) ? e.deltaX : e.deltaY;
    this.scrollBy(delta / this.pxPerSec);
  }

  // --- keyboard -------------------------------------------------------------------------------------------

  onKey(e) {
    const tag = (e.target?.tagName || "").toLowerCase();
    if (tag === "input" && e.target.type !== "range" || tag === "textarea" || tag === "select" || e.target?.isContentEditable) return;
    const key = e.key;
    const ctrl = e.ctrlKey || e.metaKey;
    if (ctrl && (key === "z" || key === "Z")) { e.preventDefault(); this.step(e.shiftKey ? "redo" : "undo"); return; }
    if (ctrl && (key === "y" || key === "Y")) { e.preventDefault(); this.step("redo"); return; }
    if (ctrl) return;
    const actions = {
      " ": () => this.togglePlay(), Enter: () => this.stop(), l: () => this.toggleLoop(), L: () => this.toggleLoop(),
      a: () => this.toggleAB(), A: () => this.toggleAB(),
      Delete: () => (this.selectedOp ? this.removeSelectedOp() : this.edit("trim")),
      Backspace: () => (this.selectedOp ? this.removeSelectedOp() : this.edit("trim")),
      k: () => this.edit("crop"), i: () => this.edit("fade_in"), o: () => this.edit("fade_out"), g: () => this.edit("gain"),
      m: () => this.toggleSelected("muted"), s: () => this.toggleSelected("solo"), "+": () => this.zoom(2), "=": () => this.zoom(2),
      "-": () => this.zoom(0.5), 0: () => this.fit(),
      Escape: () => {
        this.selection = null; this.selectedOp = null; this.help.classList.remove("open"); this.drawLanes(); this.refreshButtons();
      },
      "?": () => this.help.classList.toggle("open"), Home: () => this.stop(),
    };
    const action = actions[key];
    if (action) { e.preventDefault(); action(); }
  }

  toggleSelected(field) {
    if (!this.selection) return;
    const lanes = [...this.selection.lanes];
    const turnOn = !lanes.every((i) => this.entry(i)[field]);
    lanes.forEach((i) => { this.entry(i)[field] = turnOn; });
    this.sound();
    this.refreshMixer();
    this.drawLanes();
    this.commit(`${field === "muted" ? "Mute" : "Solo"} ${lanes.map((i) => this.stems[i].type).join(", ")}`);
  }

  // --- transport ------------------------------------------------------------------------------------------

  async togglePlay() {
    if (this.engine.playing) this.engine.pause();
    else await this.engine.play();
    this.refreshButtons();
  }

  stop() {
    this.engine.stop();
    if (this.engine.loop && this.loopRegion) this.engine.seek(this.loopRegion.start);
    this.refreshButtons();
  }

  seek(t) {
    this.engine.seek(clamp(t, 0, this.duration));
    this.refreshButtons();
  }

  toggleLoop() {
    if (!this.loopRegion) {
      const sel = this.selection;
      const start = sel ? sel.start : this.engine.currentTime;
      const bar = this.beatLength() * (this.analysis?.beats_per_bar || 4);
      let region = sel ? { start: sel.start, end: sel.end } : { start, end: Math.min(this.duration, start + 4 * bar) };
      if (region.end - region.start < 0.05) region = { start: Math.max(0, this.duration - 4 * bar), end: this.duration };
      this.loopRegion = region;
      this.engine.setLoop(region.start, region.end);
    }
    this.engine.loop = !this.engine.loop;
    this.refreshButtons();
    this.draw();
  }

  toggleAB() {
    if (!this.cfg.track.hasAudio) { this.status("The original track's audio is not on the server"); return; }
    this.engine.abMode = this.engine.abMode === "original" ? "remix" : "original";
    this.refreshButtons();
  }

  tick() {
    const t = this.engine.currentTime;
    const width = this.lanes[0].cell.clientWidth;
    if (this.engine.playing) {
      const view = width / this.pxPerSec;
      if (t > this.scroll + view * 0.92 || t < this.scroll) {
        this.scroll = clamp(t - view * 0.1, 0, Math.max(0, this.duration - view));
        this.draw();
      }
    }
    const x = (t - this.scroll) * this.pxPerSec;
    const head = this.lanes[0].node.firstChild.offsetWidth;
    this.playhead.style.display = x < 0 || x > width ? "none" : "block";
    this.playhead.style.left = `${head + x}px`;
    this.timeLabel.textContent = this.formatTime(t);
    this.root.dataset.time = t.toFixed(3);
    const levels = this.engine.levels?.() || null;
    if (levels) {
      const height = (v) => (v > 0 ? clamp((20 * Math.log10(v) + 60) / 60, 0, 1) : 0);  // -60..0 dBFS
      this.lanes.forEach((lane) => { lane.meter.style.height = `${height(levels.lanes?.[lane.stem.id] ?? 0) * 100}%`; });
      if ((levels.master ?? 0) > 1) this.clipUntil = performance.now() + 1500;
    }
    this.clipLight.classList.toggle("on", performance.now() < this.clipUntil);
    if (this.playBtn.textContent !== (this.engine.playing ? "❚❚" : "▶")) this.refreshButtons();
    requestAnimationFrame(this.tick);
  }

  // --- analysis and export --------------------------------------------------------------------------------

  fillInfo() {
    const a = this.analysis;
    this.info.replaceChildren();
    if (a && a.tempo) this.info.append(el("span", { "data-testid": "daw-tempo" }, el("b", { text: a.tempo.toFixed(1) }), " BPM"));
    if (a && a.key) this.info.append(el("span", {}, el("b", { text: a.key }), ` (${CAMELOT[a.key] || "?"})`));
    if (a && a.beats_per_bar) this.info.append(el("span", { text: `${a.beats_per_bar}/4` }));
    if (!a || !a.downbeats || !a.downbeats.length) {
      this.info.append(el("button", { class: "daw-btn", title: "Find tempo, key, bars and sections", text: "Analyse bars",
        onclick: () => this.analyse() }));
    }
    this.info.append(this.timeLabel);
  }

  /** Take a new analysis in place ({tempo, key, beats, downbeats, beats_per_bar, sections}; times in seconds):
   * the beat grid, the bars and the sections follow; the snap setting, the remix and its history stay as they are. */
  setAnalysis(analysis) {
    if (!analysis || JSON.stringify(analysis) === JSON.stringify(this.analysis)) return;
    this.analysis = analysis;
    this.beats = analysis.beats || [];
    this.downbeats = analysis.downbeats || [];
    this.sections = analysis.sections || [];
    if (this.arrange && !this.downbeats.length) { this.arrange = false; this.refreshButtons(); }
    this.fillInfo();
    this.rulerLabel.textContent = this.downbeats.length ? "Bars" : "Time";
    this.draw();
    this.status(analysis.tempo ? `New analysis: ${analysis.tempo.toFixed(1)} BPM, ${this.downbeats.length} bars`
      : "New analysis: no beat found");
  }

  status(text) {
    this.statusText.textContent = text;
    clearTimeout(this.statusTimer);
    if (text) this.statusTimer = setTimeout(() => { this.statusText.textContent = ""; }, 6000);
  }

  async analyse() {
    const r = await fetch("/api/analysis/analyze", { method: "POST", credentials: "same-origin", headers: this.headers(),
      body: JSON.stringify({ track_id: this.trackId, features: ["all"] }) });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) { this.status(body.error || "Could not start the analysis"); return; }
    this.status("Analysing… the bars appear when they are known");
    const job = body.data.job_id;
    const wait = async () => {
      const s = await fetch(`/api/analysis/job/${job}`, { credentials: "same-origin" }).then((x) => x.json());
      if (s.data.status === "completed") {
        const r = s.data.result || {};
        this.setAnalysis(Object.fromEntries(["tempo", "key", "beats", "downbeats", "beats_per_bar", "sections"]
          .map((k) => [k, r[k] ?? null])));
        return;
      }
      if (s.data.status === "failed") { this.status(`Analysis failed: ${s.data.error}`); return; }
      this.status(`Analysing… ${s.data.progress} %`);
      setTimeout(wait, 1000);
    };
    setTimeout(wait, 1000);
  }

  async render(manifest, range, label) {
    const form = new FormData();
    form.append("track_id", this.trackId);
    form.append("manifest", JSON.stringify(manifest));
    form.append("csrf_token", this.cfg.csrf);
    if (range) form.append("range", JSON.stringify(range));
    const r = await fetch("/api/daw/export", { method: "POST", body: form, credentials: "same-origin" });
    if (!r.ok) { const body = await r.json().catch(() => ({})); throw new Error(body.error || `export failed (${r.status})`); }
    const total = +r.headers.get("Content-Length") || 0;
    const reader = r.body.getReader();
    const parts = [];
    let got = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      got += value.length;
      if (total) { this.progress.style.width = `${(100 * got / total).toFixed(1)}%`; this.status(`${label}: ${Math.round(100 * got / total)} %`); }
    }
    const name = /filename="([^"]+)"/.exec(r.headers.get("Content-Disposition") || "")?.[1] || "remix.wav";
    return { blob: new Blob(parts, { type: "audio/wav" }), name, clipped: +(r.headers.get("X-Clipped-Samples") || 0) };
  }

  download(blob, name) {
    const url = URL.createObjectURL(blob);
    const a = el("a", { href: url, download: name });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  async exportAudio(kind) {
    this.exportBtn.disabled = true;
    try {
      await this.pending;
      if (kind === "stems") {
        const files = [];
        for (const stem of this.stems) {
          const entry = this.manifest.stems.find((s) => s.stem_id === stem.id);
          const solo = { ...this.manifest, stems: [{ ...entry, muted: false, solo: false }] };
          const { blob, name } = await this.render(solo, null, `Stem ${stem.type}`);
          files.push({ name: name.replace(/ \(remix\)\.wav$/, ` - ${stem.type} (processed).wav`), data: new Uint8Array(await blob.arrayBuffer()) });
        }
        const title = [this.cfg.track.artist, this.cfg.track.title].filter(Boolean).join(" - ") || "track";
        this.download(zipStore(files), `${title} (processed stems).zip`);
        this.status(`Exported ${files.length} processed stems`);
      } else {
        const range = kind === "loop" && this.loopRegion ? { start_ms: this.loopRegion.start * 1000, end_ms: this.loopRegion.end * 1000 } : null;
        if (kind === "loop" && !range) { this.status("Set a loop region first (drag on the ruler)"); return; }
        const { blob, name: served, clipped } = await this.render(this.manifest, range, "Export");
        const name = range ? served.replace(/ \(remix\)\.wav$/, " (remix, loop).wav") : served;
        this.download(blob, name);
        this.status(clipped ? `Exported; ${clipped} samples clipped: turn the master down` : "Exported");
        this.root.dataset.exported = name;
      }
    } catch (err) {
      this.status(String(err.message || err));
    } finally {
      this.exportBtn.disabled = false;
      setTimeout(() => { this.progress.style.width = "0"; }, 1500);
    }
  }
}

// What changed from ``before`` to ``after`` (two manifests with the same stems), as JSON Patch operations on
// the fields the editor changes: a stem's volume, pan, mute, solo and its operations, the master gain.
function manifestPatch(before, after) {
  const patch = [];
  after.stems.forEach((stem, i) => {
    const old = before.stems[i];
    if (!old || old.stem_id !== stem.stem_id) { patch.push({ op: "replace", path: "/stems", value: after.stems }); return; }
    for (const field of ["volume", "pan", "muted", "solo"]) {
      if (old[field] !== stem[field]) patch.push({ op: "replace", path: `/stems/${i}/${field}`, value: stem[field] });
    }
    if (JSON.stringify(old.operations) !== JSON.stringify(stem.operations)) {
      patch.push({ op: "replace", path: `/stems/${i}/operations`, value: stem.operations });
    }
  });
  if (before.master.gain !== after.master.gain) patch.push({ op: "replace", path: "/master/gain", value: after.master.gain });
  return patch;
}

// A ZIP of stored (uncompressed) entries: WAV does not compress, and this needs no library.
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; t[n] = c >>> 0; }
  return t;
})();
function crc32(data) {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function zipStore(files) {
  const enc = new TextEncoder();
  const parts = [], central = [];
  let offset = 0;
  for (const f of files) {
    const name = enc.encode(f.name), crc = crc32(f.data), size = f.data.length;
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true); local.setUint16(4, 20, true); local.setUint16(6, 0x0800, true);
    local.setUint32(14, crc, true); local.setUint32(18, size, true); local.setUint32(22, size, true); local.setUint16(26, name.length, true);
    parts.push(new Uint8Array(local.buffer), name, f.data);
    const cd = new DataView(new ArrayBuffer(46));
    cd.setUint32(0, 0x02014b50, true); cd.setUint16(4, 20, true); cd.setUint16(6, 20, true); cd.setUint16(8, 0x0800, true);
    cd.setUint32(16, crc, true); cd.setUint32(20, size, true); cd.setUint32(24, size, true); cd.setUint16(28, name.length, true);
    cd.setUint32(42, offset, true);
    central.push(new Uint8Array(cd.buffer), name);
    offset += 30 + name.length + size;
  }
  const cdSize = central.reduce((n, p) => n + p.length, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true); end.setUint16(8, files.length, true); end.setUint16(10, files.length, true);
  end.setUint32(12, cdSize, true); end.setUint32(16, offset, true);
  return new Blob([...parts, ...central, new Uint8Array(end.buffer)], { type: "application/zip" });
}

export function mountEditor(rootOrId, config) {
  const find = () => (typeof rootOrId === "string" ? document.getElementById(rootOrId) : rootOrId);
  return new Promise((resolve) => {
    const attempt = () => {
      const root = find();
      if (root && root.isConnected && root.clientWidth) { const editor = new Editor(root, config); window.dawEditor = editor; resolve(editor); return; }
      requestAnimationFrame(attempt);
    };
    attempt();
  });
}
