// Unit tests of the run renderer (jsdom): formatting helpers, the card's DOM, and that agent
// text never runs as HTML/JS whatever the output's trusted flag says.
import { beforeEach, describe, expect, it, vi } from 'vitest';

// JupyterLab's markdown pipeline is heavy; the stub records how it is called and renders the
// source as text (the sanitizer itself is JupyterLab's, exercised in the browser test).
const calls: any[] = [];
vi.mock('@jupyterlab/rendermime', () => ({
  renderMarkdown: async (options: any) => {
    calls.push(options);
    options.host.textContent = options.source;
  }
}));

import { RunRenderer, formatCost, formatDuration, isRunBundle, stopReasonWords, toolIcon } from '../src/renderer';
import { IRunBundle, RUN_MIME } from '../src/types';

function bundle(over: Partial<IRunBundle> = {}): IRunBundle {
  return {
    schema: 'asm.run',
    version: 1,
    run: {
      run_id: 'run_0123456789abcdef',
      session_id: 'ses_1',
      provider: 'claude',
      model: 'claude-haiku-4-5',
      status: 'completed',
      stop_reason: 'end_turn',
      duration_ms: 1500,
      error: null
    } as any,
    output: 'Done.',
    transcript: [
      { role: 'user', content: 'Read notes.txt' },
      { role: 'assistant', content: '<img src=x onerror="window.__xss=1">*hi*' },
      { role: 'tool', tool_call_id: 't1', tool_name: 'read_file', content: 'buy milk', status: 'completed' }
    ],
    tool_calls: [
      {
        id: 't1',
        name: 'read_file',
        input: { path: 'notes.txt' },
        output: 'buy milk',
        status: 'completed',
        exit_code: null,
        duration_ms: 200,
        summary: 'Read notes.txt · 8 B · 0.2 s',
        icon: '✓'
      }
    ],
    usage: {
      input_tokens: 1200,
      output_tokens: 30,
      cache_read_tokens: 0,
      cache_creation_tokens: 0,
      total_tokens: 1230
    },
    cost_usd: 0.000104,
    ...over
  };
}

function renderer(): RunRenderer {
  return new RunRenderer({ sanitizer: {} as any, resolver: null, linkHandler: null, latexTypesetter: null } as any);
}

describe('helpers', () => {
  it('says stop reasons in words', () => {
    expect(stopReasonWords('end_turn')).toBe('finished');
    expect(stopReasonWords('exit_code_2')).toBe('exit 2');
    expect(stopReasonWords('max_tokens')).toBe('hit the output token limit');
    expect(stopReasonWords('brand_new')).toBe('brand new');
    expect(stopReasonWords(null)).toBe('');
  });
  it('picks tool icons', () => {
    expect(toolIcon('failed')).toBe('✗');
    expect(toolIcon('cancelled')).toBe('■');
    expect(toolIcon('completed', '⊘')).toBe('⊘');
  });
  it('formats costs and durations', () => {
    expect(formatCost(null)).toBe('n/a');
    expect(formatCost(0)).toBe('$0.00');
    expect(formatCost(0.25)).toBe('$0.2500');
    expect(formatCost(0.000104)).toBe('$0.000104');
    expect(formatDuration(850)).toBe('850 ms');
    expect(formatDuration(12300)).toBe('12.3 s');
  });
  it('recognises bundles', () => {
    expect(isRunBundle(bundle())).toBe(true);
    expect(isRunBundle({ schema: 'other' })).toBe(false);
  });
});

describe('RunRenderer', () => {
  beforeEach(() => {
    calls.length = 0;
  });

  it('draws the header, transcript, plain-language tool rows and usage', async () => {
    const r = renderer();
    await r.renderModel({ data: { [RUN_MIME]: bundle() as any }, trusted: true, metadata: {} } as any);
    const n = r.node;
    expect(n.querySelector('.jp-asm-run-status')!.textContent).toBe('completed');
    expect(n.querySelector('.jp-asm-run-meta')!.textContent).not.toContain('end_turn');
    expect(n.querySelector('.jp-asm-tool-line')!.textContent).toBe('Read notes.txt · 8 B · 0.2 s');
    expect(n.querySelector('.jp-asm-tool-icon')!.textContent).toBe('✓');
    expect(n.querySelector('.jp-asm-msg-user')!.textContent).toContain('Read notes.txt');
    expect(n.querySelector('.jp-asm-usage-cost .jp-asm-usage-value')!.textContent).toBe('$0.000104');
  });

  it('renders agent text as untrusted even in a trusted output', async () => {
    const r = renderer();
    await r.renderModel({ data: { [RUN_MIME]: bundle() as any }, trusted: true, metadata: {} } as any);
    expect(calls.length).toBe(2);
    expect(calls.every(c => c.trusted === false)).toBe(true);
    expect(r.node.querySelector('img')).toBeNull();
  });

  it('shows cancelled and denied rows with their own icons', async () => {
    const b = bundle({
      transcript: [],
      tool_calls: [
        { ...bundle().tool_calls[0], status: 'unfinished', icon: '■', summary: 'Cancelled: bash sleep 60' },
        {
          ...bundle().tool_calls[0],
          status: 'failed',
          approval: 'denied',
          icon: '⊘',
          summary: 'Denied by you: bash rm'
        }
      ]
    });
    const r = renderer();
    await r.renderModel({ data: { [RUN_MIME]: b as any }, trusted: false, metadata: {} } as any);
    const rows = Array.from(r.node.querySelectorAll('.jp-asm-tool'));
    expect(rows.map(x => x.querySelector('.jp-asm-tool-icon')!.textContent)).toEqual(['■', '⊘']);
    expect(rows[1].classList.contains('jp-asm-tool-denied')).toBe(true);
  });

  it('draws the pause icon with CSS, not the U+23F8 glyph few fonts have', async () => {
    const b = bundle({
      transcript: [],
      tool_calls: [
        { ...bundle().tool_calls[0], status: 'running', icon: '\u23f8', summary: 'Waiting for approval: bash ls' }
      ]
    });
    const r = renderer();
    await r.renderModel({ data: { [RUN_MIME]: b as any }, trusted: false, metadata: {} } as any);
    const icon = r.node.querySelector('.jp-asm-tool-icon') as HTMLElement;
    expect(icon.classList.contains('jp-asm-icon-pause')).toBe(true);
    expect(icon.textContent).toBe('');
    expect(icon.getAttribute('aria-label')).toBe('paused');
  });

  it('says so for a payload it cannot draw', async () => {
    const r = renderer();
    await r.renderModel({ data: { [RUN_MIME]: { schema: 'x' } as any }, trusted: true, metadata: {} } as any);
    expect(r.node.textContent).toContain('Not an asm.run bundle');
  });
});
