// A waveform drawn from audiowaveform v2 peaks (spec/daw.md, section 5) on a canvas, with an optional beat
// grid (downbeats stronger) and song sections as coloured bands labelled A, B, C. It follows an <audio>
// element (a playhead while it plays) and a click seeks it. Colours come from the page (ui/palette.py), the
// greys read on the dark and the light theme alike. The peaks travel over plain HTTP, never the socket.

const GRID = "148, 163, 184"; // slate-400, drawn with alpha

export default {
  template: `
    <div class="sf-wave" :style="{position: 'relative', height: height + 'px', cursor: audio_id ? 'pointer' : 'default'}"
         @click="seek">
      <canvas ref="canvas" style="display:block;width:100%;height:100%"></canvas>
      <div ref="head" style="position:absolute;top:0;bottom:0;left:0;width:2px;background:#fde68a;
           box-shadow:0 0 4px #fde68a;pointer-events:none;display:none"></div>
      <div v-if="message" style="position:absolute;inset:0;display:flex;align-items:center;justify-content:center;
           font-size:12px;color:#8b929c;pointer-events:none">{{ message }}</div>
    </div>`,
  props: {
    peaks_url: String,
    duration: Number, // seconds: the timeline until the peaks arrive (they then give the exact length)
    beats: Array,
    downbeats: Array,
    sections: Array, // [{start, end, label, color}]
    color: String,
    height: Number,
    audio_id: String, // the id of the <audio> element to follow and seek
  },
  data() {
    return { peaks: null, message: "Loading the waveform…" };
  },
  async mounted() {
    this.resize = new ResizeObserver(() => this.draw());
    this.resize.observe(this.$el);
    this.tick = () => {
      this.follow();
      this.frame = requestAnimationFrame(this.tick);
    };
    this.frame = requestAnimationFrame(this.tick);
    await this.load();
  },
  unmounted() {
    this.resize?.disconnect();
    cancelAnimationFrame(this.frame);
  },
  watch: {
    peaks_url() { this.load(); },
    beats() { this.draw(); },
    downbeats() { this.draw(); },
    sections() { this.draw(); },
    color() { this.draw(); },
  },
  methods: {
    async load() {
      if (!this.peaks_url) return;
      try {
        const r = await fetch(this.peaks_url, { credentials: "same-origin" });
        if (!r.ok) {
          let why = `The waveform could not be loaded (${r.status})`;
          try { why = (await r.json()).error || why; } catch (e) { /* not JSON */ }
          this.message = why;
          return;
        }
        const doc = await r.json();
        // Quiet audio (a stem that is nearly silent) is drawn taller, up to 64 times, so its shape shows;
        // the corner says by how much, as the editor's lanes do.
        const full = doc.bits === 8 ? 128 : 32768;
        let peak = 1;
        for (const v of doc.data) peak = Math.max(peak, Math.abs(v));
        doc.display = Math.min(64, full / peak);
        this.peaks = doc;
        this.message = "";
        this.draw();
        this.$el.dataset.drawn = String(doc.length);
      } catch (e) {
        this.message = "The waveform could not be loaded";
      }
    },
    seconds() {
      const p = this.peaks;
      return p ? (p.length * p.samples_per_pixel) / p.sample_rate : this.duration || 0;
    },
    audio() {
      const el = this.audio_id && document.getElementById(this.audio_id);
      if (!el) return null;
      return el.tagName === "AUDIO" ? el : el.querySelector("audio");
    },
    seek(event) {
      const audio = this.audio(), total = this.seconds();
      if (!audio || !total) return;
      const box = this.$el.getBoundingClientRect();
      audio.currentTime = Math.max(0, Math.min(1, (event.clientX - box.left) / box.width)) * total;
      this.follow();
    },
    follow() {
      const audio = this.audio(), total = this.seconds(), head = this.$refs.head;
      if (!head) return;
      if (!audio || !total || (audio.paused && audio.currentTime === 0)) {
        head.style.display = "none";
        return;
      }
      head.style.display = "block";
      head.style.transform = `translateX(${(audio.currentTime / total) * this.$el.clientWidth}px)`;
    },
    draw() {
      const canvas = this.$refs.canvas;
      if (!canvas) return;
      const dpr = window.devicePixelRatio || 1;
      const w = Math.max(1, Math.round(this.$el.clientWidth * dpr));
      const h = Math.max(1, Math.round(this.$el.clientHeight * dpr));
      if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
      const ctx = canvas.getContext("2d");
      ctx.clearRect(0, 0, w, h);
      const total = this.seconds();
      if (!total) return;
      const x = (t) => (t / total) * w;
      // Sections: bands behind everything, a label chip at the top.
      ctx.font = `600 ${11 * dpr}px system-ui, sans-serif`;
      for (const s of this.sections || []) {
        const a = x(s.start), b = x(s.end);
        ctx.globalAlpha = 0.18;
        ctx.fillStyle = s.color;
        ctx.fillRect(a, 0, Math.max(1, b - a), h);
        ctx.globalAlpha = 1;
        const label = String(s.label), pad = 4 * dpr;
        const chip = ctx.measureText(label).width + 2 * pad;
        if (b - a > chip + 2 * dpr) {
          ctx.fillRect(a + 2 * dpr, 2 * dpr, chip, 15 * dpr);
          ctx.fillStyle = "#fff";
          ctx.fillText(label, a + 2 * dpr + pad, 13.5 * dpr);
        }
      }
      // The beat grid: beats faint, downbeats stronger; too dense to see, a level is left out.
      const lines = (times, alpha, width) => {
        if (!times || times.length < 2 || w / times.length < 4 * dpr) return false;
        ctx.strokeStyle = `rgba(${GRID}, ${alpha})`;
        ctx.lineWidth = width * dpr;
        ctx.beginPath();
        for (const t of times) {
          const px = Math.round(x(t)) + 0.5;
          ctx.moveTo(px, 0);
          ctx.lineTo(px, h);
        }
        ctx.stroke();
        return true;
      };
      const downbeats = new Set(this.downbeats || []);
      lines((this.beats || []).filter((t) => !downbeats.has(t)), 0.2, 1);
      lines(this.downbeats, 0.85, 2);  // bar lines twice as wide: the bars read apart from the beats
      // The waveform: per column the min and max over the pixels (and channels) it covers.
      const p = this.peaks;
      if (!p) return;
      const full = (p.bits === 8 ? 128 : 32768) / p.display, step = p.channels * 2, mid = h / 2;
      ctx.fillStyle = this.color || "#a78bfa";
      for (let col = 0; col < w; col++) {
        const i0 = Math.floor((col / w) * p.length), i1 = Math.max(i0 + 1, Math.floor(((col + 1) / w) * p.length));
        let lo = 0, hi = 0;
        for (let i = i0; i < i1 && i < p.length; i++) {
          for (let c = 0; c < p.channels; c++) {
            lo = Math.min(lo, p.data[i * step + c * 2]);
            hi = Math.max(hi, p.data[i * step + c * 2 + 1]);
          }
        }
        const top = mid - (hi / full) * (mid - 1), bottom = mid - (lo / full) * (mid - 1);
        ctx.fillRect(col, top, 1, Math.max(1, bottom - top));
      }
      if (p.display > 2) {
        ctx.font = `${10 * dpr}px system-ui, sans-serif`;
        const note = `quiet: drawn ×${p.display.toFixed(0)}`, nw = ctx.measureText(note).width + 8 * dpr;
        ctx.fillStyle = "rgba(15, 23, 42, 0.7)";
        ctx.fillRect(w - nw - 2 * dpr, h - 15 * dpr, nw, 13 * dpr);
        ctx.fillStyle = "#e2e8f0";
        ctx.fillText(note, w - nw + 2 * dpr, h - 5 * dpr);
      }
    },
  },
};
