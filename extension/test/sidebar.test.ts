// Unit tests of the sidebar: relative times, one cost precision, short store paths, search, and
// rows that lead with the prompt (listing from a stub, no server).
import { describe, expect, it, vi } from 'vitest';

vi.mock('@jupyterlab/rendermime', () => ({ renderMarkdown: async () => undefined }));

import { SessionsPanel, relativeTime, runMatches, sessionTitle, shortPath, sidebarCost } from '../src/sidebar';
import { IRunRow, ISessionListing } from '../src/types';

const NOW = Date.parse('2026-01-02T12:00:00Z');

function run(over: Partial<IRunRow> = {}): IRunRow {
  return {
    run_id: 'run_a',
    status: 'completed',
    provider: 'shell',
    model: null,
    started_at: '2026-01-02T11:57:00Z',
    duration_s: 0.1,
    input_tokens: 0,
    output_tokens: 0,
    cost_usd: 0,
    error_code: null,
    prompt: 'echo hello world',
    ...over
  };
}

describe('helpers', () => {
  it('relative times', () => {
    expect(relativeTime('2026-01-02T11:59:50Z', NOW)).toBe('just now');
    expect(relativeTime('2026-01-02T11:57:00Z', NOW)).toBe('3 min ago');
    expect(relativeTime('2026-01-02T09:00:00Z', NOW)).toBe('3 h ago');
    expect(relativeTime('2026-01-01T12:00:00Z', NOW)).toBe('yesterday');
    expect(relativeTime(null, NOW)).toBe('');
  });
  it('one cost precision', () => {
    expect([0, 0.012345, 0.00001, null].map(sidebarCost)).toEqual(['$0.00', '$0.0123', '<$0.0001', '—']);
  });
  it('short store paths keep the slash in front', () => {
    expect(shortPath('/home/me/projects/demo/.asm')).toBe('…/demo/.asm');
    expect(shortPath('/tmp/.asm')).toBe('/tmp/.asm');
  });
  it('search matches every word anywhere in the row', () => {
    expect(runMatches(run(), 'hello shell')).toBe(true);
    expect(runMatches(run(), 'hello codex')).toBe(false);
    expect(runMatches(run(), '')).toBe(true);
  });
  it('sessions are titled by their first prompt', () => {
    expect(sessionTitle({ session_id: 'ses_1', name: null, providers: ['shell'], runs: [run()] } as any)).toBe(
      'echo hello world'
    );
  });
});

describe('SessionsPanel', () => {
  it('leads rows with the prompt, then time, and filters with the search box', async () => {
    vi.useFakeTimers({ now: NOW, toFake: ['Date'] });
    const listing: ISessionListing = {
      store: '/home/me/demo/.asm',
      exists: true,
      sessions: [
        {
          session_id: 'ses_1',
          name: null,
          agent_id: null,
          status: 'active',
          created_at: '2026-01-02T11:00:00Z',
          updated_at: null,
          run_count: 2,
          total_tokens: 0,
          cost_usd: 0,
          providers: ['shell'],
          runs: [run(), run({ run_id: 'run_b', prompt: 'ls -la', status: 'failed' })]
        }
      ]
    } as any;
    const opened: string[] = [];
    const panel = new SessionsPanel({ openRun: id => opened.push(id), pollMs: 0, fetch: async () => listing });
    await panel.refresh();
    const rows = Array.from(panel.node.querySelectorAll<HTMLElement>('.jp-asm-run-row'));
    expect(rows.map(r => r.firstElementChild!.nextElementSibling!.textContent)).toEqual(['ls -la', 'echo hello world']);
    expect(rows[1].querySelector('.jp-asm-run-row-meta')!.textContent).toBe('3 min ago · shell · 0 tok · $0.00');
    expect(panel.node.querySelector('.jp-asm-sessions-store')!.textContent).toBe('…/demo/.asm');
    const search = panel.node.querySelector<HTMLInputElement>('.jp-asm-sessions-search')!;
    search.value = 'echo';
    search.dispatchEvent(new Event('input'));
    expect(rows.map(r => r.style.display)).toEqual(['none', '']);
    rows[1].click();
    expect(opened).toEqual(['run_a']);
    panel.dispose();
    vi.useRealTimers();
  });
});
