/**
 * The "Agent sessions" sidebar: the store's sessions (from the server extension's
 * `asm-nb/sessions` endpoint), each a group of its runs. A run row leads with its prompt, then a
 * status dot, a relative time ("3 min ago"), the model, tokens and cost; a search box filters
 * rows by prompt, model, provider or status, and Enter in it searches the full text of the store
 * (`./search`); clicking a run opens its transcript. Refreshed with
 * a `@lumino/polling` `Poll` while visible (interval from the settings).
 */

import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { fetchSessions } from './handler';
import { formatInt } from './renderer';
import { ISearchResult, SearchResults } from './search';
import { IRunRow, ISessionListing, ISessionRow } from './types';

function el<K extends keyof HTMLElementTagNameMap>(
  parent: HTMLElement,
  tag: K,
  className: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  parent.appendChild(node);
  return node;
}

/** `2026-01-01T10:00:00Z` → "3 min ago" (relative to `now`, ms since the epoch). */
export function relativeTime(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) {
    return '';
  }
  const t = new Date(iso).getTime();
  if (isNaN(t)) {
    return '';
  }
  const s = Math.round((now - t) / 1000);
  if (s < 0) {
    return 'just now';
  }
  if (s < 45) {
    return 'just now';
  }
  const m = Math.round(s / 60);
  if (m < 60) {
    return `${m} min ago`;
  }
  const h = Math.round(m / 60);
  if (h < 24) {
    return `${h} h ago`;
  }
  const d = Math.round(h / 24);
  if (d < 30) {
    return d === 1 ? 'yesterday' : `${d} days ago`;
  }
  return new Date(t).toISOString().slice(0, 10);
}

/** One cost precision for the whole sidebar: `$0.0123`, `<$0.0001`, `$0.00`, `—` when unknown. */
export function sidebarCost(cost: number | null | undefined): string {
  if (typeof cost !== 'number' || !isFinite(cost)) {
    return '—';
  }
  if (cost === 0) {
    return '$0.00';
  }
  return cost < 0.0001 ? '<$0.0001' : `$${cost.toFixed(4)}`;
}

/** A long path as `…/parent/name` (the full path goes in the tooltip). */
export function shortPath(path: string, keep = 2): string {
  const parts = path.split('/').filter(p => p !== '');
  if (parts.length <= keep + 1) {
    return path;
  }
  return '…/' + parts.slice(-keep).join('/');
}

/** Does a run match the search text (case-insensitive, every word somewhere in the row)? */
export function runMatches(r: IRunRow, query: string): boolean {
  const words = query
    .toLowerCase()
    .split(/\s+/)
    .filter(w => w);
  if (!words.length) {
    return true;
  }
  const hay = [r.prompt, r.model, r.provider, r.status, r.run_id].join(' ').toLowerCase();
  return words.every(w => hay.includes(w));
}

/** The title of a session: its name, else its first run's prompt, else the provider. */
export function sessionTitle(s: ISessionRow): string {
  const first = s.runs.find(r => r.prompt);
  return s.name || (first ? first.prompt : '') || (s.providers || []).join(', ') || s.session_id.slice(0, 12);
}

export interface ISessionsPanelOptions {
  /** Called with a run id when a run row is clicked. */
  openRun: (runId: string) => void;
  /** Refresh period while the panel is visible, in ms (0 = only on show and on the button). */
  pollMs?: number;
  /** Where the listing comes from (default: the server extension). */
  fetch?: () => Promise<ISessionListing>;
  /** Where full-text search hits come from (default: the server extension). */
  search?: (query: string) => Promise<ISearchResult>;
}

/** The sidebar widget. */
export class SessionsPanel extends Widget {
  constructor(options: ISessionsPanelOptions) {
    super();
    this._openRun = options.openRun;
    this._fetch = options.fetch ?? (() => fetchSessions());
    this.id = 'asm-nb-sessions';
    this.addClass('jp-asm-sessions');
    this.title.caption = 'Agent sessions';
    const head = el(this.node, 'div', 'jp-asm-sessions-header');
    el(head, 'span', 'jp-asm-sessions-title', 'Agent sessions');
    const button = el(head, 'button', 'jp-asm-sessions-refresh jp-Button jp-mod-minimal', '⟳');
    button.title = 'Refresh';
    button.addEventListener('click', () => void this.refresh());
    this._storeNode = el(this.node, 'div', 'jp-asm-sessions-store');
    this._search = el(this.node, 'input', 'jp-asm-sessions-search jp-InputGroup');
    this._search.type = 'search';
    this._search.placeholder = 'Filter runs · Enter searches all text';
    this._search.addEventListener('input', () => this._applyFilter());
    const results = new SearchResults({
      input: this._search,
      openRun: this._openRun,
      search: options.search,
      when: iso => relativeTime(iso)
    });
    this.node.appendChild(results.node);
    this._list = el(this.node, 'div', 'jp-asm-sessions-list');
    this._poll = new Poll({
      factory: () => this.refresh(),
      frequency: { interval: this._interval(options.pollMs ?? 10000), backoff: true, max: 300 * 1000 },
      name: 'asm-nb:sessions',
      standby: () => (this.isVisible ? 'when-hidden' : true)
    });
  }

  /** The refresh interval in ms (0: no periodic refresh). */
  setPollInterval(ms: number): void {
    this._poll.frequency = { ...this._poll.frequency, interval: this._interval(ms) };
  }

  /** Reload the listing from the server. */
  async refresh(): Promise<void> {
    try {
      this._render(await this._fetch());
    } catch (error) {
      this._list.textContent = '';
      el(this._list, 'div', 'jp-asm-sessions-error', `Could not list sessions: ${(error as Error).message}`);
    }
  }

  protected onAfterShow(): void {
    void this._poll.refresh();
  }

  dispose(): void {
    this._poll.dispose();
    super.dispose();
  }

  private _interval(ms: number): number {
    return ms > 0 ? ms : Poll.NEVER;
  }

  private _render(listing: ISessionListing): void {
    this._storeNode.textContent = shortPath(listing.store);
    this._storeNode.title = listing.store;
    this._list.textContent = '';
    if (!listing.sessions.length) {
      el(
        this._list,
        'div',
        'jp-asm-sessions-empty',
        listing.exists
          ? 'No sessions yet.'
          : 'No store here yet: runs started from a notebook in this folder appear here.'
      );
      return;
    }
    const now = Date.now();
    for (const s of listing.sessions) {
      this._session(s, now);
    }
    this._applyFilter();
  }

  private _applyFilter(): void {
    const q = this._search.value;
    this._list.querySelectorAll<HTMLElement>('.jp-asm-session').forEach(group => {
      let shown = 0;
      group.querySelectorAll<HTMLElement>('.jp-asm-run-row').forEach(row => {
        const run = this._rows.get(row.dataset.runId || '');
        const ok = !run || runMatches(run, q);
        row.style.display = ok ? '' : 'none';
        shown += ok ? 1 : 0;
      });
      group.style.display = shown || !q ? '' : 'none';
      if (q && shown) {
        (group as HTMLDetailsElement).open = true;
      }
    });
  }

  private _session(s: ISessionRow, now: number): void {
    const details = el(this._list, 'details', `jp-asm-session jp-asm-row-${s.status}`);
    details.dataset.sessionId = s.session_id;
    if (this._open.has(s.session_id) || this._list.childElementCount <= 3) {
      details.open = true;
    }
    details.addEventListener('toggle', () => {
      if (details.open) {
        this._open.add(s.session_id);
      } else {
        this._open.delete(s.session_id);
      }
    });
    const summary = el(details, 'summary', 'jp-asm-session-summary');
    el(summary, 'span', 'jp-asm-session-name', sessionTitle(s));
    const last = s.runs.length ? s.runs[s.runs.length - 1].started_at : s.updated_at || s.created_at;
    const cost = s.runs.reduce((a, r) => a + (typeof r.cost_usd === 'number' ? r.cost_usd : 0), 0);
    el(
      summary,
      'span',
      'jp-asm-session-meta',
      [
        `${s.runs.length} run${s.runs.length === 1 ? '' : 's'}`,
        relativeTime(last, now),
        sidebarCost(s.cost_usd ?? cost)
      ]
        .filter(p => p)
        .join(' · ')
    );
    summary.title = `${s.session_id}\n${s.created_at || ''}`;
    const runs = el(details, 'ul', 'jp-asm-session-runs');
    for (const r of [...s.runs].reverse()) {
      this._run(runs, r, now);
    }
  }

  private _run(parent: HTMLElement, r: IRunRow, now: number): void {
    this._rows.set(r.run_id, r);
    const li = el(parent, 'li', `jp-asm-run-row jp-asm-row-${r.status}`);
    li.dataset.runId = r.run_id;
    li.title = `${r.prompt || ''}\n${r.run_id}\n${r.started_at || ''}\n${r.status}${r.error_code ? ` (${r.error_code})` : ''}`;
    const dot = el(li, 'span', 'jp-asm-run-row-dot');
    dot.setAttribute('aria-label', r.status);
    el(li, 'span', 'jp-asm-run-row-prompt', r.prompt || '(no prompt)');
    const meta = [
      relativeTime(r.started_at, now),
      r.model || r.provider || '',
      `${formatInt((r.input_tokens || 0) + (r.output_tokens || 0))} tok`,
      sidebarCost(r.cost_usd)
    ].filter(p => p);
    el(li, 'span', 'jp-asm-run-row-meta', meta.join(' · '));
    li.addEventListener('click', () => this._openRun(r.run_id));
  }

  private _openRun: (runId: string) => void;
  private _fetch: () => Promise<ISessionListing>;
  private _poll: Poll;
  private _storeNode: HTMLElement;
  private _search: HTMLInputElement;
  private _list: HTMLElement;
  private _open = new Set<string>();
  private _rows = new Map<string, IRunRow>();
}
