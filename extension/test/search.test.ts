// Unit tests of the sidebar's full-text search (src/search.ts): Enter runs a search, hits render
// with <mark> around the matches from text nodes only, a click opens the run, Esc closes, the
// server's error message is shown, and a stale answer never replaces a newer one.
import { describe, expect, it, vi } from 'vitest';

vi.mock('@jupyterlab/rendermime', () => ({ renderMarkdown: async () => undefined }));

import { ISearchResult, SearchResults, snippetNode } from '../src/search';
import { SessionsPanel } from '../src/sidebar';

const RESULT: ISearchResult = {
  store: '/tmp/.asm',
  exists: true,
  hits: [
    {
      rank: 1,
      score: 2.5,
      kind: 'tool_output',
      session_id: 'ses_1',
      run_id: 'run_a',
      sequence_number: 7,
      timestamp: '2026-01-02T11:57:00Z',
      event_id: 'evt_1',
      parts: [
        ['psql: error: ', false],
        ['connection', true],
        ['\n\n refused <b>x</b>', false]
      ]
    },
    {
      rank: 2,
      score: 1.0,
      kind: 'prompt',
      session_id: 'ses_2',
      run_id: 'run_b',
      sequence_number: 1,
      timestamp: null,
      event_id: 'evt_2',
      parts: [['why is the connection slow', false]]
    }
  ]
};

function press(input: HTMLInputElement, key: string): void {
  input.dispatchEvent(new KeyboardEvent('keydown', { key }));
}

describe('snippetNode', () => {
  it('marks matches with text nodes only (no HTML from the snippet)', () => {
    const node = snippetNode(RESULT.hits[0].parts);
    expect(node.querySelectorAll('mark').length).toBe(1);
    expect(node.querySelector('mark')!.textContent).toBe('connection');
    expect(node.querySelector('b')).toBeNull();
    expect(node.textContent).toBe('psql: error: connection refused <b>x</b>');
  });
});

describe('SearchResults', () => {
  it('searches on Enter, opens a run on click, closes on Escape', async () => {
    const input = document.createElement('input');
    const asked: string[] = [];
    const opened: string[] = [];
    const results = new SearchResults({
      input,
      openRun: id => opened.push(id),
      search: async q => {
        asked.push(q);
        return RESULT;
      },
      when: iso => (iso ? 'then' : '')
    });
    expect(results.node.hidden).toBe(true);
    input.value = '  connection ';
    press(input, 'a');
    expect(asked).toEqual([]);
    press(input, 'Enter');
    await vi.waitFor(() => expect(results.node.querySelectorAll('.jp-asm-search-hit').length).toBe(2));
    expect(asked).toEqual(['connection']);
    expect(results.node.hidden).toBe(false);
    expect(results.node.querySelector('.jp-asm-search-status')!.textContent).toContain('2 matches');
    const hits = Array.from(results.node.querySelectorAll<HTMLElement>('.jp-asm-search-hit'));
    expect(hits[0].querySelector('.jp-asm-search-meta')!.textContent).toBe('tool result · then');
    expect(hits[1].querySelector('.jp-asm-search-meta')!.textContent).toBe('prompt');
    hits[1].click();
    expect(opened).toEqual(['run_b']);
    press(input, 'Escape');
    expect(results.node.hidden).toBe(true);
    expect(results.node.textContent).toBe('');
  });

  it("shows the server's message and 'no matches'", async () => {
    const input = document.createElement('input');
    const failing = new SearchResults({
      input,
      openRun: () => undefined,
      search: async () => {
        throw new Error("search query '\"x' is not valid full-text syntax");
      }
    });
    await failing.run('"x');
    expect(failing.node.querySelector('.jp-asm-search-error')!.textContent).toContain('not valid full-text syntax');
    const empty = new SearchResults({
      input: document.createElement('input'),
      openRun: () => undefined,
      search: async () => ({ ...RESULT, hits: [] })
    });
    await empty.run('zzz');
    expect(empty.node.textContent).toContain('No matches for “zzz”');
    await empty.run('   ');
    expect(empty.node.hidden).toBe(true);
  });

  it('keeps the newest answer when an older one arrives late', async () => {
    let release: (r: ISearchResult) => void = () => undefined;
    const slow = new Promise<ISearchResult>(resolve => (release = resolve));
    const results = new SearchResults({
      input: document.createElement('input'),
      openRun: () => undefined,
      search: q => (q === 'old' ? slow : Promise.resolve({ ...RESULT, hits: [RESULT.hits[1]] }))
    });
    const first = results.run('old');
    await results.run('new');
    release(RESULT);
    await first;
    expect(results.node.querySelectorAll('.jp-asm-search-hit').length).toBe(1);
  });
});

describe('SessionsPanel wiring', () => {
  it('Enter in the sidebar box searches the full text; typing still filters rows', async () => {
    const asked: string[] = [];
    const opened: string[] = [];
    const panel = new SessionsPanel({
      openRun: id => opened.push(id),
      pollMs: 0,
      fetch: async () => ({ store: '/tmp/.asm', exists: true, sessions: [] }),
      search: async q => {
        asked.push(q);
        return RESULT;
      }
    });
    await panel.refresh();
    const box = panel.node.querySelector<HTMLInputElement>('.jp-asm-sessions-search')!;
    box.value = 'connection';
    box.dispatchEvent(new Event('input'));
    expect(asked).toEqual([]);
    press(box, 'Enter');
    await vi.waitFor(() => expect(panel.node.querySelectorAll('.jp-asm-search-hit').length).toBe(2));
    expect(asked).toEqual(['connection']);
    panel.node.querySelector<HTMLElement>('.jp-asm-search-hit')!.click();
    expect(opened).toEqual(['run_a']);
    box.value = '';
    box.dispatchEvent(new Event('input'));
    expect(panel.node.querySelector<HTMLElement>('.jp-asm-search-results')!.hidden).toBe(true);
    panel.dispose();
  });
});
