/**
 * Full-text search in the "Agent sessions" sidebar: press Enter in the sidebar's search box to
 * search every prompt, output, tool input and tool output of the store (the server extension's
 * `asm-nb/search` endpoint, docs/search.md), best first. Each hit shows its kind, a snippet with
 * the matches marked (built from text nodes, never HTML) and a relative time; clicking it opens
 * the run. Escape (or clearing the box) closes the results.
 */

import { requestAPI } from './handler';

/** One hit of `GET asm-nb/search`. */
export interface ISearchHit {
  rank: number;
  score: number;
  kind: 'prompt' | 'output' | 'tool_input' | 'tool_output' | string;
  session_id: string;
  run_id: string | null;
  sequence_number: number | null;
  timestamp: string | null;
  event_id: string;
  /** The snippet split at its matches: `[text, highlighted]`. */
  parts: [string, boolean][];
}

export interface ISearchResult {
  store: string;
  exists: boolean;
  hits: ISearchHit[];
}

/** Ask the server extension (errors carry its one-line message). */
export function fetchSearch(query: string, limit = 20): Promise<ISearchResult> {
  const q = encodeURIComponent(query);
  return requestAPI<ISearchResult>(`search?q=${q}&limit=${limit}`);
}

const KIND_LABEL: Record<string, string> = {
  prompt: 'prompt',
  output: 'output',
  tool_input: 'tool call',
  tool_output: 'tool result'
};

/** A hit's snippet as DOM: text nodes, matches inside `<mark>`; whitespace runs collapsed. */
export function snippetNode(parts: [string, boolean][]): HTMLElement {
  const node = document.createElement('span');
  node.className = 'jp-asm-search-snippet';
  for (const [text, hit] of parts) {
    const clean = text.replace(/\s+/g, ' ');
    if (hit) {
      const mark = document.createElement('mark');
      mark.textContent = clean;
      node.appendChild(mark);
    } else {
      node.appendChild(document.createTextNode(clean));
    }
  }
  return node;
}

export interface ISearchResultsOptions {
  /** The search box whose Enter key starts a search. */
  input: HTMLInputElement;
  /** Called with a run id when a hit is clicked. */
  openRun: (runId: string) => void;
  /** Where hits come from (default: the server extension). */
  search?: (query: string) => Promise<ISearchResult>;
  /** Relative time of a hit ("3 min ago"). */
  when?: (iso: string | null) => string;
}

/**
 * The results list under the search box. `attach` it after the box; it stays empty (hidden)
 * until Enter is pressed with some text.
 */
export class SearchResults {
  readonly node: HTMLElement;

  constructor(options: ISearchResultsOptions) {
    this._options = options;
    this.node = document.createElement('div');
    this.node.className = 'jp-asm-search-results';
    this.node.hidden = true;
    options.input.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        event.preventDefault();
        void this.run(options.input.value);
      } else if (event.key === 'Escape') {
        this.clear();
      }
    });
    options.input.addEventListener('input', () => {
      if (!options.input.value.trim()) {
        this.clear();
      }
    });
  }

  /** Search for `query` and show the hits (or the server's message). */
  async run(query: string): Promise<void> {
    const q = query.trim();
    if (!q) {
      this.clear();
      return;
    }
    const ticket = ++this._ticket;
    this._show('jp-asm-search-status', `Searching for “${q}”…`);
    let result: ISearchResult;
    try {
      result = await (this._options.search ?? fetchSearch)(q);
    } catch (error) {
      if (ticket === this._ticket) {
        this._show('jp-asm-search-error', (error as Error).message || String(error));
      }
      return;
    }
    if (ticket !== this._ticket) {
      return; // a newer search answered first
    }
    this._render(q, result);
  }

  /** Hide the results. */
  clear(): void {
    this._ticket++;
    this.node.textContent = '';
    this.node.hidden = true;
  }

  private _show(className: string, text: string): void {
    this.node.textContent = '';
    this.node.hidden = false;
    const div = document.createElement('div');
    div.className = className;
    div.textContent = text;
    this.node.appendChild(div);
  }

  private _render(q: string, result: ISearchResult): void {
    if (!result.hits.length) {
      this._show('jp-asm-search-status', `No matches for “${q}” in prompts, outputs or tool calls.`);
      return;
    }
    this._show(
      'jp-asm-search-status',
      `${result.hits.length} match${result.hits.length === 1 ? '' : 'es'} for “${q}” · Esc to close`
    );
    const list = document.createElement('ul');
    list.className = 'jp-asm-search-list';
    for (const hit of result.hits) {
      const li = document.createElement('li');
      li.className = `jp-asm-search-hit jp-asm-search-${hit.kind}`;
      li.dataset.runId = hit.run_id || '';
      li.title = `${hit.run_id || hit.session_id}\n${hit.timestamp || ''}`;
      const head = document.createElement('span');
      head.className = 'jp-asm-search-meta';
      const when = this._options.when ? this._options.when(hit.timestamp) : hit.timestamp || '';
      head.textContent = [KIND_LABEL[hit.kind] || hit.kind, when].filter(p => p).join(' · ');
      li.appendChild(head);
      li.appendChild(snippetNode(hit.parts));
      if (hit.run_id) {
        const runId = hit.run_id;
        li.addEventListener('click', () => this._options.openRun(runId));
      }
      list.appendChild(li);
    }
    this.node.appendChild(list);
  }

  private _options: ISearchResultsOptions;
  private _ticket = 0;
}
