/**
 * The dashboard renderer: draws an `application/vnd.asm.dashboard+json` snapshot (what
 * `asm_nb.dashboard()` displays next to its widget) as KPI tiles and a sortable grid of runs.
 *
 * While the kernel that made the dashboard still holds its widget (the comm `model_id` is open
 * on a notebook's kernel), the live ipywidgets dashboard is shown instead, drawn by that
 * notebook's widget renderer. A reopened notebook (new kernel, no widget models) gets the
 * snapshot: never "Error displaying widget: model not found". Clicking a run opens it in the
 * main area (the "Open Agent Run" command) when `openRun` is given.
 */

import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { IRenderMimeRegistry, MimeModel } from '@jupyterlab/rendermime';
import { PanelLayout, Widget } from '@lumino/widgets';

import { formatCost, formatInt } from './renderer';

export const DASHBOARD_MIME = 'application/vnd.asm.dashboard+json';
export const WIDGET_MIME = 'application/vnd.jupyter.widget-view+json';

export interface IDashboardColumn {
  key: string;
  label: string;
  /** how the column formats and sorts: time | text | int | usd | seconds */
  kind: string;
}

export interface IDashboardSnapshot {
  schema: 'asm.dashboard';
  version: number;
  model_id: string | null;
  filters: Record<string, string | string[]>;
  kpis: { name: string; label: string; value: string; note: string }[];
  columns: IDashboardColumn[];
  rows: Record<string, string | number | null>[];
  total: number;
}

/** Finds the live widget: the rendermime of the notebook whose kernel holds `modelId`. */
export type LiveWidgetLookup = (modelId: string) => IRenderMimeRegistry | null;

export function isDashboardSnapshot(value: unknown): value is IDashboardSnapshot {
  const v = value as IDashboardSnapshot | null;
  return !!v && v.schema === 'asm.dashboard' && Array.isArray(v.rows) && Array.isArray(v.columns);
}

/** A grid cell as text (the same formats as the snapshot's HTML table). */
export function gridText(value: string | number | null | undefined, kind: string): string {
  if (value === null || value === undefined || value === '') {
    return kind === 'text' ? '' : '-';
  }
  switch (kind) {
    case 'time':
      return String(value).replace('T', ' ').slice(0, 16);
    case 'int':
      return formatInt(Number(value));
    case 'usd':
      return formatCost(Number(value));
    case 'seconds': {
      const s = Number(value);
      return s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(1)} s`;
    }
    default:
      return String(value);
  }
}

/** Compare two cells of a column; empty values sort last whatever the direction. */
export function compareCells(a: unknown, b: unknown, kind: string, descending: boolean): number {
  const empty = (v: unknown) => v === null || v === undefined || v === '';
  if (empty(a) || empty(b)) {
    return empty(a) === empty(b) ? 0 : empty(a) ? 1 : -1;
  }
  let c: number;
  if (kind === 'int' || kind === 'usd' || kind === 'seconds') {
    c = Number(a) - Number(b);
  } else {
    c = String(a).localeCompare(String(b));
  }
  return descending ? -c : c;
}

export class DashboardRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(private _options: { lookup?: LiveWidgetLookup; openRun?: (runId: string) => void } = {}) {
    super();
    this.addClass('jp-asm-dashboard');
    this.layout = new PanelLayout();
  }

  /** The column the grid is sorted by and the direction (newest first to start). */
  sortKey = 'started_at';
  descending = true;
  private _snapshot: IDashboardSnapshot | null = null;
  private _body: HTMLTableSectionElement | null = null;
  private _head: HTMLTableRowElement | null = null;

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const data = model.data[DASHBOARD_MIME];
    const layout = this.layout as PanelLayout;
    while (layout.widgets.length) {
      layout.widgets[0].dispose();
    }
    this.node.textContent = '';
    if (!isDashboardSnapshot(data)) {
      this.node.textContent = 'Not an asm_nb dashboard snapshot.';
      return;
    }
    const id = data.model_id;
    // only a trusted output (made in this session) may hand over to the widget renderer
    const live = id && model.trusted && this._options.lookup ? this._options.lookup(id) : null;
    if (id && live && live.mimeTypes.indexOf(WIDGET_MIME) >= 0) {
      // the kernel still holds the widget: the interactive dashboard
      const renderer = live.createRenderer(WIDGET_MIME);
      layout.addWidget(renderer);
      await renderer.renderModel(
        new MimeModel({
          data: { [WIDGET_MIME]: { version_major: 2, version_minor: 0, model_id: id } },
          trusted: true
        })
      );
      this.addClass('jp-asm-dashboard-live');
      return;
    }
    this.removeClass('jp-asm-dashboard-live');
    this._snapshot = data;
    this._drawStatic(data);
  }

  /** Sort the grid by `key` (a column key); clicking a header does this. */
  sortBy(key: string, descending?: boolean): void {
    if (descending === undefined) {
      descending = key === this.sortKey ? !this.descending : key === 'started_at';
    }
    this.sortKey = key;
    this.descending = descending;
    this._drawRows();
  }

  /** The run ids in the grid's current order. */
  rowIds(): string[] {
    return this._sorted().map(r => String(r.run_id ?? ''));
  }

  private _sorted(): Record<string, string | number | null>[] {
    const snap = this._snapshot;
    if (!snap) {
      return [];
    }
    const col = snap.columns.find(c => c.key === this.sortKey);
    const kind = col ? col.kind : 'text';
    return snap.rows
      .map((r, i) => ({ r, i }))
      .sort((a, b) => compareCells(a.r[this.sortKey], b.r[this.sortKey], kind, this.descending) || a.i - b.i)
      .map(x => x.r);
  }

  private _drawStatic(snap: IDashboardSnapshot): void {
    const root = this.node;
    const title = document.createElement('div');
    title.className = 'jp-asm-dashboard-title';
    const active = Object.entries(snap.filters || {})
      .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : v}`)
      .join(' · ');
    title.textContent = 'Agent runs' + (active ? ` — ${active}` : '');
    const note = document.createElement('span');
    note.className = 'jp-asm-dashboard-note';
    note.textContent = snap.model_id ? 'saved snapshot: run the cell again for filters and charts' : 'saved snapshot';
    title.appendChild(note);
    root.appendChild(title);

    const kpis = document.createElement('div');
    kpis.className = 'jp-asm-dashboard-kpis';
    for (const k of snap.kpis || []) {
      const tile = document.createElement('div');
      tile.className = 'jp-asm-dashboard-kpi';
      tile.dataset.kpi = k.name;
      for (const [cls, text] of [
        ['label', k.label],
        ['value', k.value],
        ['note', k.note]
      ]) {
        const part = document.createElement('div');
        part.className = `jp-asm-dashboard-kpi-${cls}`;
        part.textContent = text || '\u00a0';
        tile.appendChild(part);
      }
      kpis.appendChild(tile);
    }
    root.appendChild(kpis);

    const wrap = document.createElement('div');
    wrap.className = 'jp-asm-dashboard-gridwrap';
    const table = document.createElement('table');
    table.className = 'jp-asm-dashboard-grid';
    const thead = table.createTHead();
    this._head = thead.insertRow();
    for (const c of snap.columns) {
      const th = document.createElement('th');
      th.dataset.key = c.key;
      th.dataset.kind = c.kind;
      th.tabIndex = 0;
      th.title = `sort by ${c.label.toLowerCase()}`;
      th.textContent = c.label;
      const arrow = document.createElement('span');
      arrow.className = 'jp-asm-dashboard-sort';
      th.appendChild(arrow);
      th.addEventListener('click', () => this.sortBy(c.key));
      th.addEventListener('keydown', ev => {
        if (ev.key === 'Enter' || ev.key === ' ') {
          ev.preventDefault();
          this.sortBy(c.key);
        }
      });
      this._head.appendChild(th);
    }
    this._body = table.createTBody();
    wrap.appendChild(table);
    root.appendChild(wrap);
    if (snap.total > snap.rows.length) {
      const more = document.createElement('div');
      more.className = 'jp-asm-dashboard-note';
      more.textContent = `showing ${snap.rows.length} of ${snap.total} runs`;
      root.appendChild(more);
    }
    this._drawRows();
  }

  private _drawRows(): void {
    const snap = this._snapshot;
    if (!snap || !this._body || !this._head) {
      return;
    }
    for (const th of Array.from(this._head.cells)) {
      const on = th.dataset.key === this.sortKey;
      th.classList.toggle('jp-mod-sorted', on);
      th.setAttribute('aria-sort', on ? (this.descending ? 'descending' : 'ascending') : 'none');
      const arrow = th.querySelector('.jp-asm-dashboard-sort');
      if (arrow) {
        arrow.textContent = on ? (this.descending ? ' ▼' : ' ▲') : '';
      }
    }
    this._body.textContent = '';
    for (const r of this._sorted()) {
      const tr = this._body.insertRow();
      tr.dataset.runId = String(r.run_id ?? '');
      for (const c of snap.columns) {
        const td = tr.insertCell();
        td.className = `jp-asm-dashboard-${c.kind}`;
        if (c.key === 'status') {
          td.dataset.status = String(r.status ?? '');
        }
        td.textContent = gridText(r[c.key], c.kind);
      }
      const open = this._options.openRun;
      if (open && r.run_id) {
        tr.classList.add('jp-mod-clickable');
        tr.title = 'open this run';
        tr.addEventListener('click', () => open(String(r.run_id)));
      }
    }
  }
}

/** The rendermime factory; `lookup` finds a live widget, `openRun` opens a run's view. */
export function dashboardRendererFactory(
  options: { lookup?: LiveWidgetLookup; openRun?: (runId: string) => void } = {}
): IRenderMime.IRendererFactory {
  return {
    safe: true,
    mimeTypes: [DASHBOARD_MIME],
    // before the widget renderer (rank -10): this one decides between the widget and the snapshot
    defaultRank: -20,
    createRenderer: () => new DashboardRenderer(options)
  };
}
