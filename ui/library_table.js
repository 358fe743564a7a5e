// The library's track list as plain DOM (rows or cards): one Vue component, native checkboxes, CSS from
// ui/library_table.css. A page of rows is a props update that Vue patches in place, so a sort or a filter
// redraws only what changed; nothing here asks the server itself.
//
// Events to Python: "select" (ids of the ticked rows), "sort" ({sort, descending}),
// "action" ([action, track id]) for separate / analyse / delete.

const CHIP_COLOURS = {
  primary: "#7c3aed", negative: "#dc2626", positive: "#16a34a", secondary: "#0d9488", "grey-7": "#616161",
};

export default {
  template: `
    <div class="sf-lib" :data-rows="rows.length">
      <div v-if="cards" class="sf-cards" data-testid="library-cards">
        <a v-for="row in rows" :key="row.id" class="sf-card" :href="'/tracks/' + row.id" data-testid="track-card">
          <div class="sf-card-cover">
            <img v-if="row.cover && !broken[row.id]" :src="row.cover" loading="lazy" alt="" @error="broken[row.id] = true">
            <i v-else class="material-icons">music_note</i>
          </div>
          <div class="sf-card-body">
            <div class="sf-title" data-testid="row-title">{{ row.title }}</div>
            <div class="sf-sub">{{ row.artist }}</div>
            <div class="sf-tags">
              <span v-if="row.bpm" class="sf-tag">{{ row.bpm }} BPM</span>
              <span v-if="row.camelot" class="sf-camelot" :title="row.key" data-testid="row-key">{{ row.camelot }}</span>
            </div>
            <div class="sf-tags">
              <span v-for="chip in row.chips" :key="chip.label" class="sf-chip" :title="chip.tip"
                    :style="{background: colour(chip.color)}">{{ chip.label }}</span>
            </div>
          </div>
        </a>
      </div>
      <table v-else class="sf-table" data-testid="library-table">
        <thead>
          <tr>
            <th class="sf-check"><input type="checkbox" aria-label="Select all on this page" :checked="allTicked"
                :indeterminate.prop="someTicked" @change="tickAll($event.target.checked)" data-testid="select-all"></th>
            <th v-for="col in columns" :key="col.name" :class="[col.cls, {sortable: col.sort}]"
                :aria-sort="col.sort && sort === col.sort ? (descending ? 'descending' : 'ascending') : null"
                @click="col.sort && sortBy(col.sort)">
              {{ col.label }}<i v-if="col.sort && sort === col.sort" class="material-icons sf-arrow">{{
                descending ? 'arrow_downward' : 'arrow_upward' }}</i>
            </th>
            <th class="sf-actions"></th>
          </tr>
        </thead>
        <tbody>
          <tr v-for="(row, index) in rows" :key="row.id" :class="{ticked: ticked.has(row.id)}" @click="open(row)">
            <td class="sf-check" @click.stop="tick(index, $event)">
              <input type="checkbox" :checked="ticked.has(row.id)" :aria-label="'Select ' + row.title"
                     data-testid="row-check">
            </td>
            <td class="sf-track">
              <div class="sf-cover">
                <img v-if="row.cover && !broken[row.id]" :src="row.cover" loading="lazy" alt=""
                     @error="broken[row.id] = true">
                <i v-else class="material-icons">music_note</i>
              </div>
              <div class="sf-names">
                <a :href="'/tracks/' + row.id" class="sf-title" data-testid="row-title" @click.stop>{{ row.title }}</a>
                <div class="sf-sub">{{ row.artist }}</div>
              </div>
            </td>
            <td class="sf-album sf-sub">{{ row.album }}</td>
            <td class="sf-num sf-len">{{ row.duration }}</td>
            <td class="sf-num">{{ row.bpm }}</td>
            <td class="sf-key"><span v-if="row.camelot" class="sf-camelot" :title="row.key" data-testid="row-key">{{
              row.camelot }}</span> <span class="sf-sub sf-keyname">{{ row.key }}</span></td>
            <td class="sf-energy"><span v-if="row.energy !== null" class="sf-meter" :title="'energy ' + row.energy">
              <span :style="{width: Math.round(row.energy * 100) + '%'}"></span></span></td>
            <td class="sf-status" data-testid="row-status">
              <span v-for="chip in row.chips" :key="chip.label" class="sf-chip" :title="chip.tip"
                    :style="{background: colour(chip.color)}">{{ chip.label }}</span>
            </td>
            <td class="sf-actions" @click.stop>
              <a class="sf-icon" :href="'/daw/' + row.id" title="Open in editor" aria-label="Open in editor"
                 data-testid="row-editor"><i class="material-icons">graphic_eq</i></a>
              <button class="sf-icon" type="button" :aria-label="'More actions for ' + row.title"
                      :aria-expanded="menu === row.id" data-testid="row-menu" @click="toggleMenu(row.id)">
                <i class="material-icons">more_vert</i></button>
              <div v-if="menu === row.id" class="sf-menu" role="menu">
                <a role="menuitem" :href="'/tracks/' + row.id">Open</a>
                <button role="menuitem" type="button" :disabled="!row.has_audio" data-testid="menu-separate"
                        @click="act('separate', row)">Separate…</button>
                <button role="menuitem" type="button" :disabled="!row.has_audio" data-testid="menu-analyse"
                        @click="act('analyse', row)">Analyse</button>
                <a role="menuitem" :class="{disabled: !row.has_stems}"
                   :href="row.has_stems ? '/export/stems/' + row.id : null">Download stems (ZIP)</a>
                <button role="menuitem" type="button" class="danger" data-testid="menu-delete"
                        @click="act('delete', row)">Delete…</button>
              </div>
            </td>
          </tr>
        </tbody>
      </table>
    </div>`,
  props: {
    rows: Array,
    selected: Array, // ids ticked, as Python last saw them
    sort: String,
    descending: Boolean,
    cards: Boolean,
  },
  data() {
    return {
      ticked: new Set(this.selected || []),
      last: null, // index of the last row ticked or unticked: shift-click ticks the range up to here
      menu: null,
      broken: {},
      columns: [
        { name: "track", label: "Track", sort: "title", cls: "" },
        { name: "album", label: "Album", sort: null, cls: "sf-album" },
        { name: "duration", label: "Length", sort: "duration", cls: "sf-num sf-len" },
        { name: "bpm", label: "BPM", sort: "bpm", cls: "sf-num" },
        { name: "key", label: "Key", sort: "key", cls: "" },
        { name: "energy", label: "Energy", sort: "energy", cls: "sf-energy" },
        { name: "status", label: "Status", sort: null, cls: "" },
      ],
    };
  },
  computed: {
    allTicked() {
      return this.rows.length > 0 && this.rows.every((r) => this.ticked.has(r.id));
    },
    someTicked() {
      return !this.allTicked && this.rows.some((r) => this.ticked.has(r.id));
    },
  },
  watch: {
    selected(ids) {
      this.ticked = new Set(ids || []);
    },
    rows(rows) {
      // Live updates (a chip moving) replace the rows often: keep an open menu while its row is still here.
      if (this.menu !== null && !rows.some((r) => r.id === this.menu)) this.menu = null;
      this.last = null;
    },
  },
  mounted() {
    this.closeMenu = (e) => {
      if (this.menu !== null && !e.target.closest(".sf-menu, [data-testid=row-menu]")) this.menu = null;
    };
    this.escape = (e) => {
      if (e.key === "Escape") this.menu = null;
    };
    document.addEventListener("click", this.closeMenu);
    document.addEventListener("keydown", this.escape);
  },
  unmounted() {
    document.removeEventListener("click", this.closeMenu);
    document.removeEventListener("keydown", this.escape);
  },
  methods: {
    colour(name) {
      return CHIP_COLOURS[name] || name;
    },
    emitSelection() {
      this.ticked = new Set(this.ticked);
      this.$emit("select", [...this.ticked]);
    },
    tick(index, event) {
      const id = this.rows[index].id;
      const on = !this.ticked.has(id);
      if (event.shiftKey && this.last !== null) {
        const [from, to] = [Math.min(this.last, index), Math.max(this.last, index)];
        for (let i = from; i <= to; i++) on ? this.ticked.add(this.rows[i].id) : this.ticked.delete(this.rows[i].id);
      } else {
        on ? this.ticked.add(id) : this.ticked.delete(id);
      }
      this.last = index;
      this.emitSelection();
    },
    tickAll(on) {
      for (const row of this.rows) on ? this.ticked.add(row.id) : this.ticked.delete(row.id);
      this.emitSelection();
    },
    sortBy(field) {
      const descending = this.sort === field ? !this.descending : false;
      this.$emit("sort", { sort: field, descending });
    },
    open(row) {
      window.location.href = "/tracks/" + row.id;
    },
    toggleMenu(id) {
      this.menu = this.menu === id ? null : id;
    },
    act(action, row) {
      this.menu = null;
      this.$emit("action", [action, row.id]);
    },
  },
};
