// StemForge DAW audio engine: plays an edit manifest (version 1) the way the server's mixdown renders it.
//
// No dependencies. One AudioContext at the stems' sample rate; per lane (stem):
//   AudioBufferSourceNode windows -> GainNode (volume * audibility) -> StereoPannerNode -> master GainNode
// and master -> remix bus (A/B) -> out -> destination. The original track (A/B) is one more lane with its
// own bus. The operations' envelope (core/daw/envelopes.py) is multiplied into each window's samples
// (float64 product, stored float32) before the window becomes an AudioBuffer; volume/mute/solo/pan/master
// are AudioParams, so they change at once. Windows of every lane start at the same context frame, back to
// back, so lanes stay sample-locked through play, seek, loop and edits. `renderOffline` builds the very
// same graph and windows in an OfflineAudioContext (the test that compares preview and export uses it).

export const RAMP_S = 0.005;
const LIVE_RAMP_S = 0.005;   // live gain changes glide over 5 ms (renderOffline sets values exactly)
const MIN_LOOP_S = 0.05;
const MAX_WINDOW_FRAMES = 1 << 20;  // the PCM route's limit
const ORIGINAL = "original";

// ---------------------------------------------------------------------------------------------------------
// Envelopes (a line-by-line port of core/daw/envelopes.py: same operations, same order, float64)

const CURVES = {
  linear: (u) => u,
  equal_power: (u) => Math.sin(u * (Math.PI / 2)),
  s_curve: (u) => (1.0 - Math.cos(u * Math.PI)) * 0.5,
  exponential: (u) => (Math.pow(2, u * 10.0) - 1.0) / 1023.0,
  logarithmic: (u) => Math.log10(u * 9.0 + 1.0),
};

const clip01 = (x) => (x < 0 ? 0 : x > 1 ? 1 : x);

function distanceShape(s, e, inside) {
  const centre = (s + e) / 2.0;
  const half = (e - s) / 2.0;
  return (t) => {
    let d = Math.abs(t - centre);
    d = inside ? half - d : d - half;
    return clip01(d / RAMP_S);
  };
}

/** One operation as {lo, hi, before, after, shape(t), flat: [lo, hi, value] | null} (seconds); null for split. */
export function operationEnvelope(op) {
  if (op.type === "split") return null;
  const p = op.params || {};
  const s = p.start_ms / 1000.0;
  const e = p.end_ms / 1000.0;
  switch (op.type) {
    case "trim":
    case "mute":
      return { lo: s - RAMP_S, hi: e + RAMP_S, before: 1, after: 1, shape: distanceShape(s, e, false), flat: [s, e, 0] };
    case "crop":
      return { lo: s, hi: e, before: 0, after: 0, shape: distanceShape(s, e, true), flat: [s + RAMP_S, e - RAMP_S, 1] };
    case "gain": {
      const level = p.level;
      const trim = distanceShape(s, e, false);
      return { lo: s - RAMP_S, hi: e + RAMP_S, before: 1, after: 1, shape: (t) => trim(t) * (1.0 - level) + level,
               flat: [s, e, level] };
    }
    case "fade_in":
    case "fade_out": {
      const curve = CURVES[p.curve ?? "linear"];
      if (!curve) throw new Error(`unknown curve ${p.curve}`);
      const width = e - s;
      const out = op.type === "fade_out";
      const shape = (t) => {
        let u = clip01((t - s) / width);
        if (out) u = 1.0 - u;
        return curve(u);
      };
      return out ? { lo: s, hi: e, before: 1, after: 0, shape, flat: null }
                 : { lo: s, hi: e, before: 0, after: 1, shape, flat: null };
    }
    default:
      throw new Error(`operation ${op.type} is not supported in manifest version 1`);
  }
}

/** The operations compiled for one sample rate: frame bounds as the server computes them. */
export function compileEnvelope(operations, sampleRate) {
  const list = [];
  for (const op of operations || []) {
    const env = operationEnvelope(op);
    if (!env) continue;
    let flat = null;
    if (env.flat) {
      const f0 = Math.ceil(env.flat[0] * sampleRate);
      const f1 = Math.floor(env.flat[1] * sampleRate);
      if (f0 <= f1) flat = [f0, f1, env.flat[2]];
    }
    list.push({ env, lo: Math.ceil(env.lo * sampleRate), hi: Math.floor(env.hi * sampleRate), flat });
  }
  return { sampleRate, list };
}

/** Fills out[0..count) with the envelope of frames [first, first+count) (float64) and returns null, or returns
 *  the constant value of the whole block (out untouched). */
function envelopeInto(compiled, first, count, out) {
  const sr = compiled.sampleRate;
  const last = first + count - 1;
  let constant = 1.0;
  let filled = false;
  for (const { env, lo, hi, flat } of compiled.list) {
    let factor;
    if (last < lo) factor = env.before;
    else if (first > hi) factor = env.after;
    else if (flat && flat[0] <= first && last <= flat[1]) factor = flat[2];
    else {
      if (!filled) {
        out.fill(constant, 0, count);
        filled = true;
      }
      const a = Math.max(lo, first);
      const b = Math.min(hi, last);
      if (env.before !== 1) for (let i = 0; i < a - first; i++) out[i] *= env.before;
      for (let n = a; n <= b; n++) {
        const f = flat && n >= flat[0] && n <= flat[1] ? flat[2] : env.shape(n / sr);
        out[n - first] *= f;
      }
      if (env.after !== 1) for (let i = b - first + 1; i < count; i++) out[i] *= env.after;
      continue;
    }
    if (factor === 1) continue;
    if (filled) {
      for (let i = 0; i < count; i++) out[i] *= factor;
    } else {
      constant *= factor;
      if (constant === 0) return 0;
    }
  }
  return filled ? null : constant;
}

/** The stem envelope (product of the operations' envelopes) of frames [firstFrame, firstFrame+count), float32. */
export function envelopeBlock(operations, firstFrame, count, sampleRate) {
  const compiled = compileEnvelope(operations, sampleRate);
  const tmp = new Float64Array(count);
  const constant = envelopeInto(compiled, firstFrame, count, tmp);
  const out = new Float32Array(count);
  if (constant === null) out.set(tmp);
  else out.fill(constant);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// The manifest's mix values

/** Python's round() (half to even), as core/daw/manifest.range_frames uses it. */
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The rendered range [first, end) in frames, as core.daw.manifest.range_frames. */
export function rangeFrames(manifest, sampleRate, totalFrames) {
  const range = manifest.range || {};
  const first = Math.min(totalFrames, roundHalfEven((range.start_ms ?? 0) * sampleRate / 1000));
  if (range.end_ms == null) return [first, totalFrames];
  return [first, Math.max(first, Math.min(totalFrames, roundHalfEven(range.end_ms * sampleRate / 1000)))];
}

function laneOfStem(stem, lanes) {
  if (stem.stem_id != null) return lanes.find((l) => l.kind !== ORIGINAL && String(l.id) === String(stem.stem_id));
  if (stem.file_index != null) {
    return lanes.find((l) => l.id === `file:${stem.file_index}`) ?? lanes.filter((l) => l.kind !== ORIGINAL)[stem.file_index];
  }
  return undefined;
}

/** Per lane {gain: volume * audibility, pan, ops, opsKey}, and the master gain. Lanes the manifest does not
 *  name are silent (not in the mix). */
function mixValues(manifest, lanes) {
  const stems = manifest?.stems || [];
  const soloing = stems.some((s) => s.solo);
  const values = new Map();
  for (const lane of lanes) values.set(lane.key, { gain: lane.kind === ORIGINAL ? 1 : 0, pan: 0, ops: [], opsKey: "[]" });
  for (const stem of stems) {
    const lane = laneOfStem(stem, lanes);
    if (!lane) continue;
    const audible = !stem.muted && (!soloing || !!stem.solo);
    const ops = stem.operations || [];
    values.set(lane.key, { gain: audible ? (stem.volume ?? 1) : 0, pan: stem.pan ?? 0, ops, opsKey: JSON.stringify(ops) });
  }
  return { lanes: values, master: manifest?.master?.gain ?? 1 };
}

// ---------------------------------------------------------------------------------------------------------
// The graph (shared by the live engine and renderOffline)

class Meter {
  constructor(ctx, source) {
    this.splitter = new ChannelSplitterNode(ctx, { numberOfOutputs: 2 });
    this.analysers = [0, 1].map(() => new AnalyserNode(ctx, { fftSize: 2048 }));  // ~46 ms at 44.1 kHz
    source.connect(this.splitter);
    this.analysers.forEach((a, i) => this.splitter.connect(a, i));
    this.buf = new Float32Array(2048);
  }

  read() {
    return this.analysers.map((a) => {
      a.getFloatTimeDomainData(this.buf);
      let peak = 0;
      for (let i = 0; i < this.buf.length; i++) {
        const v = Math.abs(this.buf[i]);
        if (v > peak) peak = v;
      }
      return peak;
    });
  }

  disconnect() {
    this.splitter.disconnect();
  }
}

class Mixer {
  constructor(ctx, lanes, { meters = false } = {}) {
    this.ctx = ctx;
    this.live = !(typeof OfflineAudioContext !== "undefined" && ctx instanceof OfflineAudioContext);
    this.out = new GainNode(ctx);
    this.out.connect(ctx.destination);
    this.master = new GainNode(ctx);
    this.remixBus = new GainNode(ctx);
    this.master.connect(this.remixBus);
    this.remixBus.connect(this.out);
    this.originalBus = null;
    this.lanes = new Map();
    this.applied = new Map();
    for (const lane of lanes) {
      const gain = new GainNode(ctx);
      let tail;
      let panner = null;
      if (lane.kind === ORIGINAL) {
        // the track as it is: upmixed to stereo, on its own bus (heard in A/B "original" mode)
        gain.channelCount = 2;
        gain.channelCountMode = "explicit";
        gain.channelInterpretation = "speakers";
        this.originalBus = new GainNode(ctx, { gain: 0 });
        gain.connect(this.originalBus);
        this.originalBus.connect(this.out);
        tail = gain;
      } else {
        // explicit stereo input: a mono lane is copied to both channels before panning (the server's rule)
        panner = new StereoPannerNode(ctx, { channelCount: 2, channelCountMode: "explicit", channelInterpretation: "speakers" });
        gain.connect(panner);
        panner.connect(this.master);
        tail = panner;
      }
      this.lanes.set(lane.key, { gain, panner, meter: meters ? new Meter(ctx, tail) : null });
    }
    this.masterMeter = meters ? new Meter(ctx, this.out) : null;
  }

  input(key) {
    return this.lanes.get(key).gain;
  }

  _set(param, id, value, smooth) {
    if (this.applied.get(id) === value) return;
    this.applied.set(id, value);
    if (!this.live) {
      param.value = value;
      return;
    }
    const t = this.ctx.currentTime;
    if (smooth && typeof param.cancelAndHoldAtTime === "function") {
      param.cancelAndHoldAtTime(t);
      param.linearRampToValueAtTime(value, t + LIVE_RAMP_S);
    } else {
      param.cancelScheduledValues(t);
      param.setValueAtTime(value, t);
    }
  }

  apply(values) {
    for (const [key, lane] of this.lanes) {
      const v = values.lanes.get(key);
      if (!v) continue;
      this._set(lane.gain.gain, `g:${key}`, v.gain, true);
      if (lane.panner) this._set(lane.panner.pan, `p:${key}`, v.pan, false);
    }
    this._set(this.master.gain, "master", values.master, true);
  }

  setAB(mode) {
    this._set(this.remixBus.gain, "ab:remix", mode === "original" ? 0 : 1, true);
    if (this.originalBus) this._set(this.originalBus.gain, "ab:original", mode === "original" ? 1 : 0, true);
  }

  disconnect() {
    for (const lane of this.lanes.values()) {
      lane.gain.disconnect();
      lane.panner?.disconnect();
      lane.meter?.disconnect();
    }
    this.master.disconnect();
    this.remixBus.disconnect();
    this.originalBus?.disconnect();
    this.out.disconnect();
    this.masterMeter?.disconnect();
  }
}

/** The next window from timeline frame `cursor`: it ends at the next multiple of windowFrames (the fetch grid),
 *  at the loop end or at the end; `next` is where the following one starts (the loop start after a wrap). */
function nextWindow(cursor, { windowFrames, totalFrames, loop, loopStart, loopEnd }) {
  if (cursor >= totalFrames) return null;
  let limit = totalFrames;
  const looping = loop && cursor < loopEnd;
  if (looping) limit = Math.min(limit, loopEnd);
  const blockEnd = (Math.floor(cursor / windowFrames) + 1) * windowFrames;
  const frames = Math.min(blockEnd, limit) - cursor;
  let next = cursor + frames;
  if (looping && next === loopEnd) next = loopStart;
  return { tl: cursor, frames, next };
}

/** A window's AudioBuffer for one lane: the block's samples of frames [firstFrame, firstFrame+count) (from
 *  `offset` in the block) times the lane's envelope, float32; null where the envelope is 0 throughout. */
function windowBuffer(ctx, block, offset, count, firstFrame, compiled, scratch) {
  let constant = 1;
  let env32 = null;
  if (compiled.list.length) {
    const tmp = scratch.length >= count ? scratch : new Float64Array(count);
    constant = envelopeInto(compiled, firstFrame, count, tmp);
    if (constant === 0) return null;
    if (constant === null) {
      env32 = new Float32Array(count);
      for (let i = 0; i < count; i++) env32[i] = tmp[i];
    }
  }
  const channels = block.planar.length;
  const buffer = new AudioBuffer({ numberOfChannels: channels, length: count, sampleRate: ctx.sampleRate });
  for (let ch = 0; ch < channels; ch++) {
    const src = block.planar[ch].subarray(offset, offset + count);
    const dst = buffer.getChannelData(ch);
    if (env32) {
      for (let i = 0; i < count; i++) dst[i] = src[i] * env32[i];   // exact product, rounded to float32
    } else if (constant === 1) {
      dst.set(src);
    } else {
      const g = Math.fround(constant);
      for (let i = 0; i < count; i++) dst[i] = src[i] * g;
    }
  }
  return buffer;
}

/** Starts every lane's part of window `w` at context frame `at` (one time for all lanes). */
function startWindow(ctx, mixer, lanes, w, at, envelopes, scratch) {
  const when = at / ctx.sampleRate;
  for (const lane of lanes) {
    const block = w.blocks.get(lane.key);
    if (!block || !block.planar) continue;
    const offset = w.tl - block.start;
    const count = Math.min(w.frames, block.frames - offset);
    if (count <= 0) continue;
    const buffer = windowBuffer(ctx, block, offset, count, w.tl, envelopes.get(lane.key), scratch);
    if (!buffer) continue;
    const node = new AudioBufferSourceNode(ctx, { buffer });
    node.connect(mixer.input(lane.key));
    node.start(when);
    w.sources.push({ lane: lane.key, id: lane.id, node, bytes: count * buffer.numberOfChannels * 4 });
  }
  w.ctxFrame = at;
  w.scheduled = true;
}

function releaseWindow(w, when) {
  for (const s of w.sources) {
    try {
      if (when === undefined) s.node.stop();
      else s.node.stop(when);
    } catch (_) { /* already stopped */ }
    if (when === undefined) s.node.disconnect();
  }
  if (when === undefined) w.sources = [];
}

function sourceLanes(stems) {
  return stems.map((s, i) => ({ key: String(s.id), id: s.id, index: i, kind: "stem", frames: s.frames }));
}

/**
 * Renders `manifest` over `stems` ([{id, channels: [Float32Array, ...], sampleRate}]) in an OfflineAudioContext
 * through the same graph and windows as the live engine. Frames [startFrame, endFrame) (default: the manifest's
 * range). Resolves to the AudioBuffer (2 channels).
 */
export async function renderOffline(manifest, stems, { startFrame, endFrame, windowSeconds = 4 } = {}) {
  const sampleRate = stems[0].sampleRate;
  if (stems.some((s) => s.sampleRate !== sampleRate)) throw new Error("every stem must have the same sample rate");
  const total = Math.max(...stems.map((s) => s.channels[0].length));
  let [first, end] = rangeFrames(manifest, sampleRate, total);
  if (startFrame != null) first = startFrame;
  if (endFrame != null) end = endFrame;
  if (end <= first) throw new Error("empty range");
  const ctx = new OfflineAudioContext({ numberOfChannels: 2, length: end - first, sampleRate });
  const lanes = sourceLanes(stems.map((s) => ({ id: s.id, frames: s.channels[0].length })));
  const mixer = new Mixer(ctx, lanes);
  const values = mixValues(manifest, lanes);
  mixer.apply(values);
  mixer.setAB("remix");
  const envelopes = new Map(lanes.map((l) => [l.key, compileEnvelope(values.lanes.get(l.key).ops, sampleRate)]));
  const blocks = new Map(lanes.map((l, i) => [l.key, { start: 0, frames: l.frames, planar: stems[i].channels }]));
  const windowFrames = Math.max(128, Math.min(MAX_WINDOW_FRAMES, Math.round(windowSeconds * sampleRate)));
  const plan = { windowFrames, totalFrames: end, loop: false };
  const scratch = new Float64Array(windowFrames);
  for (let p = nextWindow(first, plan); p; p = nextWindow(p.next, plan)) {
    const w = { tl: p.tl, frames: p.frames, blocks, sources: [], scheduled: false, ctxFrame: null };
    startWindow(ctx, mixer, lanes, w, p.tl - first, envelopes, scratch);
  }
  return ctx.startRendering();
}

// ---------------------------------------------------------------------------------------------------------
// The live engine

async function httpWindow(kind, id, start, frames, signal) {
  const base = kind === ORIGINAL ? "/api/tracks/" : "/api/stems/";
  const url = `${base}${encodeURIComponent(id)}/pcm?start=${start}&frames=${frames}&format=f32`;
  const res = await fetch(url, { credentials: "same-origin", signal });
  if (!res.ok) throw new Error(`PCM window of ${id} at ${start}: HTTP ${res.status}`);
  const body = await res.arrayBuffer();
  const channels = Number(res.headers.get("X-Channels")) || 1;
  const s16 = (res.headers.get("X-Sample-Format") || "").startsWith("s16");
  const width = s16 ? 2 : 4;
  const got = res.headers.get("X-Frames") != null ? Number(res.headers.get("X-Frames"))
                                                  : Math.floor(body.byteLength / width / channels);
  if (!s16) return { data: new Float32Array(body, 0, got * channels), frames: got, channels };
  const ints = new Int16Array(body, 0, got * channels);
  const data = new Float32Array(ints.length);
  for (let i = 0; i < ints.length; i++) data[i] = ints[i] / 32768;
  return { data, frames: got, channels };
}

function deinterleave(data, frames, channels) {
  if (channels === 1) return [data.length === frames ? data : data.subarray(0, frames)];
  const planar = [];
  for (let ch = 0; ch < channels; ch++) {
    const arr = new Float32Array(frames);
    for (let i = 0, j = ch; i < frames; i++, j += channels) arr[i] = data[j];
    planar.push(arr);
  }
  return planar;
}

export class DawEngine {
  constructor({ stems, fetchWindow = null, original = null, windowSeconds = 4, aheadSeconds = 8,
                scheduleSeconds = 1.5, leadSeconds = 0.1, maxFetches = 6, latencyHint = "interactive",
                audioContext = null } = {}) {
    if (!stems || !stems.length) throw new Error("DawEngine needs at least one stem");
    const sampleRate = stems[0].sampleRate;
    if (stems.some((s) => s.sampleRate !== sampleRate)) throw new Error("every stem must have the same sample rate");
    this.sampleRate = sampleRate;
    this.totalFrames = Math.max(...stems.map((s) => s.frames));
    this.duration = this.totalFrames / sampleRate;
    this._lanes = sourceLanes(stems);
    if (original) {
      if (original.sampleRate && original.sampleRate !== sampleRate) {
        queueMicrotask(() => this._emit("error", new Error("the original's sample rate differs from the stems'; A/B is off")));
      } else {
        this._lanes.push({ key: ORIGINAL, id: original.id, kind: ORIGINAL, frames: original.frames });
      }
    }
    this._fetchWindow = fetchWindow;
    this._windowFrames = Math.max(128, Math.min(MAX_WINDOW_FRAMES, Math.round(windowSeconds * sampleRate)));
    this._aheadFrames = Math.max(this._windowFrames, Math.round(aheadSeconds * sampleRate));
    this._scheduleFrames = Math.round(scheduleSeconds * sampleRate);
    this._lead = leadSeconds;
    this._safetyFrames = Math.round(0.03 * sampleRate);
    this._maxFetches = maxFetches;
    this.ctx = audioContext ?? new AudioContext({ sampleRate, latencyHint });
    this._mixer = new Mixer(this.ctx, this._lanes, { meters: true });
    this._scratch = new Float64Array(this._windowFrames);
    this._cache = new Map();          // "lane|index" -> block {start, frames, planar, bytes, ready, error}
    this._queue = [];
    this._inFlight = 0;
    this._listeners = new Map();
    this._run = null;
    this._runSeq = 0;
    this._position = 0;
    this._timer = null;
    this._kicked = false;
    this._disposed = false;
    this._loop = false;
    this._loopStart = 0;
    this._loopEnd = this.totalFrames;
    this._abMode = "remix";
    this._envelopes = new Map();
    this.setManifest({ version: 1, stems: stems.map((s) => ({ stem_id: s.id })) });
    this._mixer.setAB("remix");
  }

  // --- events -------------------------------------------------------------------------------------------
  on(name, cb) {
    if (!this._listeners.has(name)) this._listeners.set(name, new Set());
    this._listeners.get(name).add(cb);
    return () => this._listeners.get(name)?.delete(cb);
  }

  _emit(name, value) {
    for (const cb of this._listeners.get(name) || []) {
      try { cb(value); } catch (err) { console.error(err); }
    }
  }

  // --- the mix ------------------------------------------------------------------------------------------
  setManifest(manifest) {
    const values = mixValues(manifest, this._lanes);
    const previous = this._values;
    this._manifest = manifest;
    this._values = values;
    this._mixer.apply(values);
    let lo = Infinity;
    let hi = -Infinity;
    for (const lane of this._lanes) {
      const now = values.lanes.get(lane.key);
      const before = previous?.lanes.get(lane.key);
      if (before && before.opsKey === now.opsKey) continue;
      this._envelopes.set(lane.key, compileEnvelope(now.ops, this.sampleRate));
      if (!before) continue;
      // the frames the change reaches: the changed operations' spans (all before/after when those are not 1)
      const keep = new Set(now.ops.map((o) => JSON.stringify(o)));
      const old = new Set(before.ops.map((o) => JSON.stringify(o)));
      const changed = [...now.ops.filter((o) => !old.has(JSON.stringify(o))),
                       ...before.ops.filter((o) => !keep.has(JSON.stringify(o)))];
      for (const op of changed) {
        const env = operationEnvelope(op);
        if (!env) continue;
        lo = Math.min(lo, env.before !== 1 ? -Infinity : Math.floor(env.lo * this.sampleRate));
        hi = Math.max(hi, env.after !== 1 ? Infinity : Math.ceil(env.hi * this.sampleRate));
      }
    }
    if (lo <= hi && this._run && this._scheduledReach(lo, hi)) this._replan();
  }

  get manifest() {
    return this._manifest;
  }

  get abMode() {
    return this._abMode;
  }

  set abMode(mode) {
    if (mode !== "remix" && mode !== "original") throw new Error(`abMode is "remix" or "original", not ${mode}`);
    if (mode === "original" && !this._lanes.some((l) => l.kind === ORIGINAL)) {
      this._emit("error", new Error("no original audio to compare with"));
      return;
    }
    this._abMode = mode;
    this._mixer.setAB(mode);
  }

  // --- loop ---------------------------------------------------------------------------------------------
  setLoop(startSec, endSec) {
    const sr = this.sampleRate;
    let a = Math.max(0, Math.min(this.totalFrames, Math.round(startSec * sr)));
    let b = Math.max(0, Math.min(this.totalFrames, Math.round(endSec * sr)));
    if (b < a) [a, b] = [b, a];
    if (b - a < Math.round(MIN_LOOP_S * sr)) throw new Error(`a loop is at least ${MIN_LOOP_S * 1000} ms long`);
    this._loopStart = a;
    this._loopEnd = b;
    if (this._loop) this._replan();
  }

  get loopRange() {
    return [this._loopStart / this.sampleRate, this._loopEnd / this.sampleRate];
  }

  get loop() {
    return this._loop;
  }

  set loop(on) {
    on = !!on;
    if (on === this._loop) return;
    this._loop = on;
    this._replan();
  }

  _plan() {
    return { windowFrames: this._windowFrames, totalFrames: this.totalFrames, loop: this._loop,
             loopStart: this._loopStart, loopEnd: this._loopEnd };
  }

  // --- transport ----------------------------------------------------------------------------------------
  get playing() {
    return this._run !== null;
  }

  get currentTime() {
    return this._currentFrame() / this.sampleRate;
  }

  _currentFrame() {
    const run = this._run;
    if (!run) return this._position;
    const nowF = this.ctx.currentTime * this.sampleRate;
    let frame = run.restTl;
    for (const w of run.windows) {
      if (!w.scheduled || nowF < w.ctxFrame) break;
      if (nowF < w.ctxFrame + w.frames) return w.tl + (nowF - w.ctxFrame);
      frame = w.tl + w.frames;
    }
    return frame;
  }

  async play(fromSeconds) {
    if (this._disposed) throw new Error("the engine is disposed");
    if (this._run) {
      if (fromSeconds != null) this.seek(fromSeconds);
      return;
    }
    if (fromSeconds != null) this._position = this._clampFrame(fromSeconds);
    if (this._position >= this.totalFrames) this._position = 0;
    if (this.ctx.state !== "running") this.ctx.resume().catch((err) => this._emit("error", err));
    const run = this._startRun(this._position);
    await run.started;
  }

  pause() {
    if (!this._run) return;
    this._position = Math.min(this.totalFrames, Math.round(this._currentFrame()));
    this._stopRun();
    this._emit("time", this.currentTime);
  }

  stop() {
    this._stopRun();
    this._position = 0;
    for (const key of [...this._cache.keys()]) this._evict(key);
    this._queue = [];
    this._emit("time", 0);
  }

  seek(seconds) {
    const frame = this._clampFrame(seconds);
    if (this._run) {
      this._stopRun();
      this._startRun(frame);
    } else {
      this._position = frame;
    }
    this._emit("time", frame / this.sampleRate);
  }

  _clampFrame(seconds) {
    return Math.max(0, Math.min(this.totalFrames, Math.round(Number(seconds) * this.sampleRate)));
  }

  _startRun(frame) {
    let resolve;
    const started = new Promise((r) => { resolve = r; });
    const run = { id: ++this._runSeq, cursor: frame, restTl: frame, done: false, windows: [], nextCtx: null,
                  anchor: null, buffering: false, started, resolveStarted: resolve };
    this._run = run;
    if (!this._timer) this._timer = setInterval(() => this._tick(), 40);
    this._tick();
    return run;
  }

  _stopRun() {
    const run = this._run;
    if (!run) return;
    for (const w of run.windows) releaseWindow(w);
    run.windows = [];
    this._run = null;
    run.resolveStarted();
    if (this._timer) {
      clearInterval(this._timer);
      this._timer = null;
    }
    if (run.buffering) this._emit("buffering", false);
  }

  /** Cuts the schedule a moment from now and plans again from there (after a loop change or an edit that
   *  reaches already scheduled windows). Every lane is cut at the same frame; the new windows start there. */
  _replan() {
    const run = this._run;
    if (!run) return;
    if (run.anchor === null) {      // nothing scheduled yet: plan again from the start
      run.windows = [];
      run.cursor = run.restTl;
      run.done = false;
      this._tick();
      return;
    }
    const sr = this.sampleRate;
    const cut = Math.ceil((this.ctx.currentTime + 0.04) * sr);
    const keep = [];
    let resume = null;   // [timeline frame, context frame]
    for (const w of run.windows) {
      if (!w.scheduled) {
        if (resume === null) resume = [w.tl, null];
        continue;
      }
      const end = w.ctxFrame + w.frames;
      if (end <= cut) {
        keep.push(w);
      } else if (w.ctxFrame >= cut) {
        if (resume === null) resume = [w.tl, w.ctxFrame];
        releaseWindow(w);
      } else {
        const played = cut - w.ctxFrame;
        resume = [w.tl + played, cut];
        releaseWindow(w, cut / sr);
        w.frames = played;
        keep.push(w);
      }
    }
    if (resume === null) resume = [run.cursor, run.nextCtx];
    let [tl, at] = resume;
    if (this._loop && tl === this._loopEnd) tl = this._loopStart;
    run.windows = keep;
    run.cursor = tl;
    run.done = false;
    if (at !== null) run.nextCtx = at;
    this._tick();
  }

  _scheduledReach(lo, hi) {
    const nowF = this.ctx.currentTime * this.sampleRate;
    return this._run.windows.some((w) => w.scheduled && w.ctxFrame + w.frames > nowF && w.tl <= hi && w.tl + w.frames > lo);
  }

  // --- streaming ----------------------------------------------------------------------------------------
  _block(lane, index) {
    const key = `${lane.key}|${index}`;
    let block = this._cache.get(key);
    if (block) return block;
    const start = index * this._windowFrames;
    const frames = Math.min(this._windowFrames, (lane.frames ?? this.totalFrames) - start);
    block = { key, lane: lane.key, start, frames: 0, planar: null, bytes: 0, ready: false, error: null,
              controller: new AbortController() };
    this._cache.set(key, block);
    if (frames <= 0) block.ready = true;
    else {
      this._queue.push(() => this._fetchBlock(lane, block, start, frames));
      this._pump();
    }
    return block;
  }

  _pump() {
    while (this._inFlight < this._maxFetches && this._queue.length) {
      const job = this._queue.shift();
      this._inFlight++;
      job().finally(() => {
        this._inFlight--;
        this._pump();
      });
    }
  }

  async _fetchBlock(lane, block, start, frames) {
    if (this._cache.get(block.key) !== block) return;   // evicted while queued
    try {
      const signal = block.controller.signal;
      let win;
      if (this._fetchWindow) {
        win = await this._fetchWindow(lane.id, start, frames, { kind: lane.kind, signal });
      } else {
        win = await httpWindow(lane.kind, lane.id, start, frames, signal);
      }
      if (this._cache.get(block.key) !== block) return;
      const got = Math.min(frames, win.frames);
      block.planar = deinterleave(win.data, got, win.channels);
      block.frames = got;
      block.bytes = got * win.channels * 4;
      block.ready = true;
    } catch (err) {
      if (this._cache.get(block.key) !== block) return;
      block.error = err;
    }
    this._kick();
  }

  _evict(key) {
    const block = this._cache.get(key);
    if (!block) return;
    this._cache.delete(key);
    if (!block.ready) block.controller.abort();
  }

  _kick() {
    if (this._kicked) return;
    this._kicked = true;
    queueMicrotask(() => {
      this._kicked = false;
      this._tick();
    });
  }

  _tick() {
    const run = this._run;
    if (!run || this._disposed) return;
    const sr = this.sampleRate;
    const nowF = this.ctx.currentTime * sr;
    // 1. drop the windows that have been played (a little after their end)
    const margin = 0.05 * sr;
    while (run.windows.length && run.windows[0].scheduled && run.windows[0].ctxFrame + run.windows[0].frames + margin <= nowF) {
      const w = run.windows.shift();
      releaseWindow(w);
      run.restTl = w.tl + w.frames;
    }
    // 2. plan windows up to aheadSeconds ahead of the playhead (their PCM is fetched in order)
    let ahead = 0;
    for (const w of run.windows) {
      ahead += w.scheduled ? Math.max(0, Math.min(w.frames, w.ctxFrame + w.frames - nowF)) : w.frames;
    }
    const plan = this._plan();
    while (!run.done && ahead < this._aheadFrames) {
      const p = nextWindow(run.cursor, plan);
      if (!p) {
        run.done = true;
        break;
      }
      run.cursor = p.next;
      const index = Math.floor(p.tl / this._windowFrames);
      const blocks = new Map(this._lanes.map((lane) => [lane.key, this._block(lane, index)]));
      run.windows.push({ tl: p.tl, frames: p.frames, blocks, sources: [], scheduled: false, ctxFrame: null });
      ahead += p.frames;
    }
    // 3. schedule the windows whose PCM is here, in order, back to back
    for (const w of run.windows) {
      if (w.scheduled) continue;
      const blocks = [...w.blocks.values()];
      const failed = blocks.find((b) => b.error);
      if (failed) {
        this._emit("error", failed.error);
        this._evict(failed.key);
        this.pause();
        return;
      }
      if (!blocks.every((b) => b.ready)) {
        if (!run.buffering && (run.nextCtx === null ? run.anchor !== null : nowF >= run.nextCtx - this._safetyFrames)) {
          run.buffering = true;
          this._emit("buffering", true);
        }
        break;
      }
      if (run.nextCtx !== null && run.nextCtx - nowF > this._scheduleFrames) break;
      let at = run.nextCtx;
      if (at === null || at < nowF + this._safetyFrames) {
        // the first window, or an underrun: (re)anchor a moment from now; every lane moves alike
        at = Math.ceil((this.ctx.currentTime + this._lead) * sr);
      }
      if (run.anchor === null) run.anchor = at;
      startWindow(this.ctx, this._mixer, this._lanes, w, at, this._envelopes, this._scratch);
      run.nextCtx = at + w.frames;
      if (run.buffering) {
        run.buffering = false;
        this._emit("buffering", false);
      }
      run.resolveStarted();
    }
    // 4. the end of the timeline
    if (run.done && run.windows.every((w) => w.scheduled) && (run.nextCtx === null || nowF >= run.nextCtx)) {
      this._position = run.nextCtx === null ? run.restTl : this.totalFrames;
      this._stopRun();
      this._emit("time", this.currentTime);
      this._emit("ended", this.currentTime);
      this._trimCache(new Set());
      return;
    }
    // 5. hold only the PCM of the windows still to play
    const wanted = new Set();
    for (const w of run.windows) for (const b of w.blocks.values()) wanted.add(b.key);
    this._trimCache(wanted);
    this._emit("time", this.currentTime);
  }

  _trimCache(wanted) {
    for (const key of [...this._cache.keys()]) if (!wanted.has(key)) this._evict(key);
  }

  // --- introspection ------------------------------------------------------------------------------------
  levels() {
    const lanes = {};
    const channels = {};
    for (const lane of this._lanes) {
      const meter = this._mixer.lanes.get(lane.key).meter;
      const [l, r] = meter.read();
      lanes[lane.key] = Math.max(l, r);
      channels[lane.key] = [l, r];
    }
    const [l, r] = this._mixer.masterMeter.read();
    channels.master = [l, r];
    return { lanes, master: Math.max(l, r), channels };
  }

  state() {
    const sr = this.sampleRate;
    const run = this._run;
    const laneStarts = [];
    const windows = [];
    let bytesHeld = 0;
    let windowsHeld = 0;
    for (const block of this._cache.values()) {
      if (block.planar) {
        bytesHeld += block.bytes;
        windowsHeld += 1;
      }
    }
    if (run) {
      for (const w of run.windows) {
        if (!w.scheduled) continue;
        windows.push({ frame: w.tl, frames: w.frames, contextTime: w.ctxFrame / sr, contextFrame: w.ctxFrame });
        for (const s of w.sources) {
          laneStarts.push([s.id, w.ctxFrame / sr, w.tl]);
          bytesHeld += s.bytes;
        }
      }
    }
    return {
      contextStart: run && run.anchor !== null ? run.anchor / sr : null,
      contextTime: this.ctx.currentTime,
      laneStarts,
      windows,
      bytesHeld,
      windowsHeld,
      buffering: !!run?.buffering,
      playing: !!run,
    };
  }

  dispose() {
    if (this._disposed) return;
    this._stopRun();
    for (const key of [...this._cache.keys()]) this._evict(key);
    this._queue = [];
    this._disposed = true;
    this._mixer.disconnect();
    this._listeners.clear();
    this.ctx.close().catch(() => {});
  }
}
