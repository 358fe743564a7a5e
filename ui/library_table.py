"""The library's track list element (ui/library_table.js): rows or cards drawn as plain DOM from a page of
``row_dict``s, with ticks (shift-click for a range), header sorting and a per-row menu.

Why not ``ui.table``: a Quasar table of 25 rows with slot templates took about 0.6 s more to appear than the
empty page on a 2-core laptop-class machine, and a sort or filter redrew it whole (about 0.7 s); this element
patches the rows in place (bench/pages.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui

_CSS = """
.sf-lib { --sf-line: #e5e7eb; --sf-hover: #f5f3ff; --sf-tick: #ede9fe; --sf-sub: #6b7280; --sf-menu: #ffffff;
          width: 100%; overflow-x: auto; }
body.body--dark .sf-lib { --sf-line: #2e2e38; --sf-hover: #1f1b2e; --sf-tick: #2e1065; --sf-sub: #9ca3af;
                          --sf-menu: #1c1c22; }
.sf-table { width: 100%; border-collapse: collapse; font-size: 14px; }
.sf-table th { text-align: left; font-weight: 600; font-size: 12px; padding: 8px; white-space: nowrap;
               border-bottom: 1px solid var(--sf-line); user-select: none; }
.sf-table th.sortable { cursor: pointer; }
.sf-table th.sortable:hover { color: #8b5cf6; }
.sf-arrow { font-size: 14px; vertical-align: -2px; margin-left: 2px; }
.sf-table td { padding: 6px 8px; border-bottom: 1px solid var(--sf-line); vertical-align: middle; }
.sf-table tbody tr { cursor: pointer; }
.sf-table tbody tr:hover { background: var(--sf-hover); }
.sf-table tbody tr.ticked { background: var(--sf-tick); }
.sf-check { width: 36px; text-align: center; }
.sf-check input { width: 16px; height: 16px; accent-color: #7c3aed; cursor: pointer; }
.sf-track { display: flex; align-items: center; gap: 10px; min-width: 180px; }
.sf-cover { width: 40px; height: 40px; flex: none; border-radius: 4px; overflow: hidden; display: flex;
            align-items: center; justify-content: center; color: #fff;
            background: linear-gradient(135deg, #6d28d9, #0d9488); }
.sf-cover img { width: 100%; height: 100%; object-fit: cover; }
.sf-names { min-width: 0; }
.sf-title { font-weight: 500; color: inherit; text-decoration: none; display: block; overflow: hidden;
            text-overflow: ellipsis; white-space: nowrap; max-width: 28rem; }
a.sf-title:hover { text-decoration: underline; }
.sf-sub { font-size: 12px; color: var(--sf-sub); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.sf-album { max-width: 14rem; }
.sf-table th.sf-num, .sf-num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.sf-camelot { display: inline-block; background: #4c1d95; color: #ede9fe; font-weight: 600; font-size: 12px;
              border-radius: 4px; padding: 1px 6px; }
.sf-meter { display: inline-block; width: 64px; height: 6px; border-radius: 3px; background: var(--sf-line);
            overflow: hidden; vertical-align: middle; }
.sf-meter span { display: block; height: 100%; background: #f59e0b; }
.sf-chip { display: inline-block; color: #fff; font-size: 11px; line-height: 18px; border-radius: 9px;
           padding: 0 8px; margin: 1px 2px 1px 0; white-space: nowrap; }
.sf-actions { position: relative; white-space: nowrap; text-align: right; width: 76px; }
.sf-icon { display: inline-flex; align-items: center; justify-content: center; width: 32px; height: 32px;
           border-radius: 16px; background: none; border: 0; color: inherit; cursor: pointer; }
.sf-icon:hover, .sf-icon:focus-visible { background: var(--sf-hover); }
.sf-menu { position: absolute; right: 8px; top: 38px; z-index: 20; min-width: 200px; background: var(--sf-menu);
           border: 1px solid var(--sf-line); border-radius: 6px; box-shadow: 0 8px 24px rgba(0,0,0,.35);
           display: flex; flex-direction: column; padding: 4px 0; text-align: left; }
.sf-menu a, .sf-menu button { padding: 8px 14px; background: none; border: 0; color: inherit; font: inherit;
                              text-align: left; text-decoration: none; cursor: pointer; }
.sf-menu a:hover, .sf-menu button:hover:not(:disabled) { background: var(--sf-hover); }
.sf-menu .danger { color: #ef4444; border-top: 1px solid var(--sf-line); }
.sf-menu button:disabled, .sf-menu a.disabled { opacity: .45; cursor: default; pointer-events: none; }
.sf-cards { display: grid; gap: 12px; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); }
.sf-card { border: 1px solid var(--sf-line); border-radius: 8px; overflow: hidden; color: inherit;
           text-decoration: none; }
.sf-card:hover { box-shadow: 0 4px 16px rgba(0,0,0,.3); }
.sf-card-cover { aspect-ratio: 1; display: flex; align-items: center; justify-content: center; color: #fff;
                 background: linear-gradient(135deg, #6d28d9, #0d9488); }
.sf-card-cover img { width: 100%; height: 100%; object-fit: cover; }
.sf-card-cover i { font-size: 48px; }
.sf-card-body { padding: 8px; min-width: 0; }
.sf-tags { display: flex; flex-wrap: wrap; gap: 4px; margin-top: 4px; }
.sf-tag { font-size: 11px; border: 1px solid var(--sf-line); border-radius: 4px; padding: 0 6px; }
@media (max-width: 1100px) { .sf-album, .sf-keyname { display: none; } }
@media (max-width: 700px) { .sf-energy { display: none; } .sf-title { max-width: 11rem; } }
@media (max-width: 520px) { .sf-table .sf-len, .sf-table .sf-cover { display: none; } .sf-track { min-width: 0; }
                            .sf-title { max-width: 8rem; } .sf-table td, .sf-table th { padding: 6px 4px; } }
"""


class LibraryTable(ui.element, component="library_table.js"):
    """``rows``: ``library_view.row_dict``s; ``on_select(ids)``, ``on_sort(sort, descending)``,
    ``on_action(action, track_id)`` are called with what the person did."""

    def __init__(self, *, on_select: Callable[[list[str]], Any], on_sort: Callable[[str, bool], Any],
                 on_action: Callable[[str, str], Any]) -> None:
        super().__init__()
        ui.add_css(_CSS)
        self._props.update({"rows": [], "selected": [], "sort": "created_at", "descending": True, "cards": False})
        self.on("select", lambda e: on_select(list(e.args or [])))
        self.on("sort", lambda e: on_sort(str(e.args["sort"]), bool(e.args["descending"])))
        self.on("action", lambda e: on_action(str(e.args[0]), str(e.args[1])))

    def show(self, rows: list[dict[str, Any]], *, selected: list[str], sort: str, descending: bool,
             cards: bool) -> None:
        """Draw this page of rows (one props update; the browser patches what changed)."""
        self._props.update({"rows": rows, "selected": selected, "sort": sort, "descending": descending,
                            "cards": cards})
        self.update()
