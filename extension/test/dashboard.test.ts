// Unit tests of the dashboard renderer (jsdom): the static snapshot as KPI tiles and a grid
// sortable by any column, and the hand-over to the live widget while its kernel holds it.
import { describe, expect, it, vi } from 'vitest';

vi.mock('@jupyterlab/rendermime', () => ({
  MimeModel: class {
    data: any;
    trusted: boolean;
    constructor(options: any) {
      this.data = options.data;
      this.trusted = !!options.trusted;
    }
  }
}));

import { Widget } from '@lumino/widgets';

import { DASHBOARD_MIME, DashboardRenderer, WIDGET_MIME, compareCells, gridText } from '../src/dashboard';

function snapshot(modelId: string | null = null): any {
  return {
    schema: 'asm.dashboard',
    version: 1,
    model_id: modelId,
    filters: {},
    kpis: [
      { name: 'runs', label: 'Runs', value: '3', note: '' },
      { name: 'cost', label: 'Cost', value: '$0.0100', note: '' }
    ],
    columns: [
      { key: 'started_at', label: 'Started (UTC)', kind: 'time' },
      { key: 'status', label: 'Status', kind: 'text' },
      { key: 'total_tokens', label: 'Tokens', kind: 'int' },
      { key: 'cost_usd', label: 'Cost', kind: 'usd' },
      { key: 'run_id', label: 'Run', kind: 'text' }
    ],
    rows: [
      { started_at: '2026-12-03T06:00:00Z', status: 'completed', total_tokens: 1200, cost_usd: 0.01, run_id: 'run_c' },
      { started_at: '2026-12-02T06:00:00Z', status: 'failed', total_tokens: 50, cost_usd: null, run_id: 'run_b' },
      { started_at: '2026-12-01T06:00:00Z', status: '<b>x</b>', total_tokens: 300, cost_usd: 0.002, run_id: 'run_a' }
    ],
    total: 3
  };
}

function model(data: any, trusted = false): any {
  return { data: { [DASHBOARD_MIME]: data }, trusted, metadata: {}, setData: () => undefined };
}

describe('dashboard snapshot', () => {
  it('formats cells like the HTML table', () => {
    expect(gridText('2026-12-03T06:00:00Z', 'time')).toBe('2026-12-03 06:00');
    expect(gridText(1200, 'int')).toBe('1,200');
    expect(gridText(null, 'usd')).toBe('-');
    expect(gridText(0.5, 'seconds')).toBe('500 ms');
    expect(compareCells(null, 3, 'int', true)).toBe(1); // empty last, whatever the direction
    expect(compareCells(null, 3, 'int', false)).toBe(1);
  });

  it('draws KPI tiles and a grid sorted newest first, re-sorted by a header click', async () => {
    const opened: string[] = [];
    const r = new DashboardRenderer({ openRun: id => opened.push(id) });
    await r.renderModel(model(snapshot()));
    const kpis = r.node.querySelectorAll('.jp-asm-dashboard-kpi');
    expect(kpis.length).toBe(2);
    expect(kpis[0].textContent).toContain('Runs');
    expect(r.rowIds()).toEqual(['run_c', 'run_b', 'run_a']);
    const heads = Array.from(r.node.querySelectorAll('th')) as HTMLElement[];
    const tokens = heads.find(h => h.dataset.key === 'total_tokens')!;
    tokens.click(); // a new column: ascending
    expect(Array.from(r.node.querySelectorAll('tbody tr')).map(tr => (tr as HTMLElement).dataset.runId)).toEqual([
      'run_b',
      'run_a',
      'run_c'
    ]);
    expect(tokens.getAttribute('aria-sort')).toBe('ascending');
    tokens.click();
    expect(r.rowIds()).toEqual(['run_c', 'run_a', 'run_b']);
    r.sortBy('cost_usd', true); // the unpriced run sorts last both ways
    expect(r.rowIds()).toEqual(['run_c', 'run_a', 'run_b']);
    r.sortBy('cost_usd', false);
    expect(r.rowIds()).toEqual(['run_a', 'run_c', 'run_b']);
    // text is text: the status cell holds no element
    const cells = Array.from(r.node.querySelectorAll('td[data-status]')) as HTMLElement[];
    expect(cells.some(td => td.textContent === '<b>x</b>' && td.children.length === 0)).toBe(true);
    (r.node.querySelector('tbody tr') as HTMLElement).click();
    expect(opened).toEqual(['run_a']);
    expect(r.node.textContent).not.toContain('model not found');
  });

  it('shows the live widget while a kernel holds its model, the snapshot otherwise', async () => {
    const rendered: any[] = [];
    class FakeWidgetRenderer extends Widget {
      async renderModel(m: any) {
        rendered.push(m.data[WIDGET_MIME]);
        this.node.textContent = 'live widget';
      }
    }
    const live: any = { mimeTypes: [WIDGET_MIME, 'text/html'], createRenderer: () => new FakeWidgetRenderer() };
    const lookup = (id: string) => (id === 'abc' ? live : null);

    const r = new DashboardRenderer({ lookup });
    await r.renderModel(model(snapshot('abc'), true));
    expect(rendered).toEqual([{ version_major: 2, version_minor: 0, model_id: 'abc' }]);
    expect(r.node.textContent).toBe('live widget');
    expect(r.node.querySelector('table')).toBeNull();

    // the kernel is gone (a reopened notebook): the snapshot
    const gone = new DashboardRenderer({ lookup });
    await gone.renderModel(model(snapshot('zzz'), true));
    expect(gone.node.querySelectorAll('tbody tr').length).toBe(3);
    // an untrusted output never hands over to the widget renderer
    const untrusted = new DashboardRenderer({ lookup });
    await untrusted.renderModel(model(snapshot('abc'), false));
    expect(untrusted.node.querySelectorAll('tbody tr').length).toBe(3);
    expect(rendered.length).toBe(1);
  });
});
