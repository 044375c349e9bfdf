/**
 * The "Agent sessions" sidebar: lists the store's sessions and their runs (from the server
 * extension's `asm-nb/sessions` endpoint); clicking a run opens its transcript.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { formatCost, formatInt } from './renderer';
import { IRunBundle, IRunRow, ISessionListing, ISessionRow } from './types';

/** GET a JSON endpoint of the asm_nb server extension (authenticated with the page's token/cookie). */
export async function requestAPI<T>(path: string, settings?: ServerConnection.ISettings): Promise<T> {
  const s = settings ?? ServerConnection.makeSettings();
  const url = URLExt.join(s.baseUrl, 'asm-nb', path);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, {}, s);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: any = text;
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    // not JSON: keep the text for the error message
  }
  if (!response.ok) {
    const message = typeof data === 'object' && data && data.message ? data.message : String(text);
    throw new ServerConnection.ResponseError(response, message);
  }
  return data as T;
}

/** Fetch one stored run as an asm.run bundle. */
export function fetchRun(runId: string): Promise<IRunBundle> {
  return requestAPI<IRunBundle>(`runs/${encodeURIComponent(runId)}`);
}

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

function when(iso: string | null): string {
  if (!iso) {
    return '';
  }
  const d = new Date(iso);
  return isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export interface ISessionsPanelOptions {
  /** Called with a run id when a run row is clicked. */
  openRun: (runId: string) => void;
  /** Refresh period while the panel is visible, in ms (0 = only on show and on the button). */
  pollMs?: number;
}

/** The sidebar widget. */
export class SessionsPanel extends Widget {
  constructor(options: ISessionsPanelOptions) {
    super();
    this._openRun = options.openRun;
    this._pollMs = options.pollMs ?? 10000;
    this.id = 'asm-nb-sessions';
    this.addClass('jp-asm-sessions');
    this.title.caption = 'Agent sessions';
    const head = el(this.node, 'div', 'jp-asm-sessions-header');
    el(head, 'span', 'jp-asm-sessions-title', 'Agent sessions');
    const button = el(head, 'button', 'jp-asm-sessions-refresh jp-Button jp-mod-minimal', '⟳');
    button.title = 'Refresh';
    button.addEventListener('click', () => void this.refresh());
    this._storeNode = el(this.node, 'div', 'jp-asm-sessions-store');
    this._list = el(this.node, 'div', 'jp-asm-sessions-list');
  }

  /** Reload the listing from the server. */
  async refresh(): Promise<void> {
    try {
      const listing = await requestAPI<ISessionListing>('sessions');
      this._render(listing);
    } catch (error) {
      this._list.textContent = '';
      el(this._list, 'div', 'jp-asm-sessions-error', `Could not list sessions: ${(error as Error).message}`);
    }
  }

  protected onAfterShow(): void {
    void this.refresh();
    this._startPolling();
  }

  protected onAfterHide(): void {
    this._stopPolling();
  }

  dispose(): void {
    this._stopPolling();
    super.dispose();
  }

  private _startPolling(): void {
    this._stopPolling();
    if (this._pollMs > 0) {
      this._timer = window.setInterval(() => {
        if (this.isVisible) {
          void this.refresh();
        }
      }, this._pollMs);
    }
  }

  private _stopPolling(): void {
    if (this._timer !== null) {
      window.clearInterval(this._timer);
      this._timer = null;
    }
  }

  private _render(listing: ISessionListing): void {
    this._storeNode.textContent = listing.store;
    this._storeNode.title = listing.store;
    this._list.textContent = '';
    if (!listing.sessions.length) {
      el(
        this._list,
        'div',
        'jp-asm-sessions-empty',
        listing.exists ? 'No sessions yet.' : 'No store here yet: runs started from a notebook in this folder appear here.'
      );
      return;
    }
    for (const s of listing.sessions) {
      this._session(s);
    }
  }

  private _session(s: ISessionRow): void {
    const details = el(this._list, 'details', `jp-asm-session jp-asm-row-${s.status}`);
    details.dataset.sessionId = s.session_id;
    if (this._open.has(s.session_id) || this._list.childElementCount === 1) {
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
    el(summary, 'span', 'jp-asm-session-name', s.name || s.agent_id || s.session_id.slice(0, 12));
    el(summary, 'span', 'jp-asm-session-meta', `${s.runs.length} run${s.runs.length === 1 ? '' : 's'} · ${formatCost(s.cost_usd)}`);
    summary.title = `${s.session_id}\n${when(s.created_at)}`;
    const runs = el(details, 'ul', 'jp-asm-session-runs');
    for (const r of s.runs) {
      this._run(runs, r);
    }
  }

  private _run(parent: HTMLElement, r: IRunRow): void {
    const li = el(parent, 'li', `jp-asm-run-row jp-asm-row-${r.status}`);
    li.dataset.runId = r.run_id;
    li.title = `${r.run_id}\n${when(r.started_at)}\n${r.status}${r.error_code ? ` (${r.error_code})` : ''}`;
    el(li, 'span', 'jp-asm-run-row-dot');
    el(li, 'span', 'jp-asm-run-row-provider', r.model || r.provider || '?');
    el(li, 'span', 'jp-asm-run-row-prompt', r.prompt || '(no prompt)');
    el(
      li,
      'span',
      'jp-asm-run-row-meta',
      `${formatInt((r.input_tokens || 0) + (r.output_tokens || 0))} tok · ${formatCost(r.cost_usd)}`
    );
    li.addEventListener('click', () => this._openRun(r.run_id));
  }

  private _openRun: (runId: string) => void;
  private _pollMs: number;
  private _timer: number | null = null;
  private _storeNode: HTMLElement;
  private _list: HTMLElement;
  private _open = new Set<string>();
}
