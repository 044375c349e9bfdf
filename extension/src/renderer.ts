/**
 * The run renderer: draws an `application/vnd.asm.run+json` bundle as a run header (provider,
 * model, status), an error box, the transcript (user and assistant messages as Markdown, tool
 * results as collapsible tool calls) and a usage/cost footer. Everything it needs is in the
 * bundle, so a saved notebook shows the run with no kernel.
 */

import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { renderMarkdown } from '@jupyterlab/rendermime';
import { Widget } from '@lumino/widgets';

import { IRunBundle, IToolCall, ITranscriptEntry, RUN_MIME } from './types';

/** Add a child element with a class and optional text. */
function el<K extends keyof HTMLElementTagNameMap>(
  parent: HTMLElement | null,
  tag: K,
  className?: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  if (parent) {
    parent.appendChild(node);
  }
  return node;
}

/** `1234` → `"1,234"`. */
export function formatInt(n: number | null | undefined): string {
  return typeof n === 'number' && isFinite(n) ? Math.round(n).toLocaleString('en-US') : '0';
}

/** A cost in dollars, with enough digits for sub-cent runs; `n/a` when unknown. */
export function formatCost(cost: number | null | undefined): string {
  if (typeof cost !== 'number' || !isFinite(cost)) {
    return 'n/a';
  }
  if (cost === 0) {
    return '$0.00';
  }
  return cost >= 0.01 ? `$${cost.toFixed(4)}` : `$${cost.toFixed(6)}`;
}

/** Milliseconds as `850 ms` / `12.3 s` / `2 min 5 s`. */
export function formatDuration(ms: number | null | undefined): string {
  if (typeof ms !== 'number' || !isFinite(ms)) {
    return '';
  }
  if (ms < 1000) {
    return `${Math.round(ms)} ms`;
  }
  const s = ms / 1000;
  if (s < 60) {
    return `${s.toFixed(1)} s`;
  }
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

const STOP_WORDS: Record<string, string> = {
  end_turn: 'finished',
  stop: 'finished',
  completed: 'finished',
  stop_sequence: 'hit a stop sequence',
  max_tokens: 'hit the output token limit',
  length: 'hit the output token limit',
  max_turns: 'hit the turn limit',
  tool_use: 'stopped at a tool call',
  refusal: 'refused',
  pause_turn: 'paused',
  cancelled: 'cancelled',
  timeout: 'timed out',
  budget_exceeded: 'over budget',
  content_filter: 'blocked by a content filter'
};

/** A provider's stop reason in words: `end_turn` → `finished`, `exit_code_2` → `exit 2`. */
export function stopReasonWords(reason: string | null | undefined): string {
  if (!reason) {
    return '';
  }
  const m = /^exit_code_(-?\d+)$/.exec(reason);
  if (m) {
    return `exit ${m[1]}`;
  }
  return STOP_WORDS[reason] ?? reason.replace(/_/g, ' ');
}

/** The icon of a tool row: the bundle's own, else from the status. */
export function toolIcon(status: string, icon?: string): string {
  if (icon) {
    return icon;
  }
  switch (status) {
    case 'failed':
      return '✗';
    case 'running':
      return '◐';
    case 'cancelled':
      return '■';
    case 'denied':
      return '⊘';
    default:
      return '✓';
  }
}

function pretty(value: unknown): string {
  if (value === null || value === undefined) {
    return '';
  }
  if (typeof value === 'string') {
    return value;
  }
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

/** The output text of a tool call (`{"output": ...}` objects are unwrapped). */
function toolOutputText(output: unknown): string {
  if (output && typeof output === 'object' && !Array.isArray(output)) {
    const o = output as Record<string, unknown>;
    if (typeof o.output === 'string') {
      return o.output;
    }
    if (typeof o.content === 'string') {
      return o.content;
    }
  }
  return pretty(output);
}

/** Does the payload look like an asm.run bundle we can draw? */
export function isRunBundle(data: unknown): data is IRunBundle {
  if (!data || typeof data !== 'object') {
    return false;
  }
  const d = data as Record<string, unknown>;
  return d.schema === 'asm.run' && typeof d.run === 'object' && d.run !== null;
}

/**
 * Widget rendering one run bundle. Used by the MIME renderer factory (notebook outputs) and by
 * the sidebar (a stored run opened in the main area).
 */
export class RunRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(options: IRenderMime.IRendererOptions) {
    super();
    this._options = options;
    this.addClass('jp-asm-run');
    this.addClass('jp-RenderedAsmRun');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const data = model.data[RUN_MIME] as unknown;
    this.node.textContent = '';
    if (!isRunBundle(data)) {
      el(this.node, 'div', 'jp-asm-run-invalid', 'Not an asm.run bundle (unknown schema).');
      return;
    }
    await this.renderBundle(data, model.trusted);
  }

  /** Draw a bundle (also called directly by the sidebar's run view). */
  async renderBundle(bundle: IRunBundle, trusted: boolean): Promise<void> {
    const root = this.node;
    root.textContent = '';
    const run = bundle.run;
    const status = (run.status || 'unknown').toLowerCase();
    root.dataset.status = status;

    // header: provider · model, status badge, ids and timing
    const header = el(root, 'div', 'jp-asm-run-header');
    const title = el(header, 'span', 'jp-asm-run-title');
    el(title, 'span', 'jp-asm-run-provider', run.provider || 'agent');
    if (run.model) {
      el(title, 'span', 'jp-asm-run-model', run.model);
    }
    el(header, 'span', `jp-asm-run-status jp-asm-status-${status.replace(/[^a-z_]/g, '')}`, status);
    const meta: string[] = [];
    if (bundle.session_name) {
      meta.push(`session ${bundle.session_name}`);
    }
    const stop = run.stop_reason_text || stopReasonWords(run.stop_reason);
    if (stop && stop !== 'finished') {
      meta.push(stop);
    }
    const dur = formatDuration(run.duration_ms);
    if (dur) {
      meta.push(dur);
    }
    if (run.run_id) {
      meta.push(run.run_id.slice(0, 12) + '…');
    }
    if (meta.length) {
      el(header, 'span', 'jp-asm-run-meta', meta.join(' · '));
    }

    if (run.error) {
      const box = el(root, 'div', 'jp-asm-run-error');
      el(box, 'span', 'jp-asm-run-error-code', run.error.code || 'error');
      el(box, 'span', 'jp-asm-run-error-message', run.error.message || '');
    }

    // transcript
    const transcript = el(root, 'div', 'jp-asm-run-transcript');
    const calls = bundle.tool_calls || [];
    const used = new Set<number>();
    const findCall = (entry: ITranscriptEntry): IToolCall | undefined => {
      let idx = -1;
      if (entry.tool_call_id) {
        idx = calls.findIndex((c, i) => !used.has(i) && c.id === entry.tool_call_id);
      }
      if (idx < 0) {
        idx = calls.findIndex((c, i) => !used.has(i) && (!entry.tool_name || c.name === entry.tool_name));
      }
      if (idx < 0) {
        return undefined;
      }
      used.add(idx);
      return calls[idx];
    };
    const pending: Promise<void>[] = [];
    for (const entry of bundle.transcript || []) {
      if (entry.role === 'tool') {
        if (!entry.tool_name && !entry.tool_call_id && !entry.status) {
          continue; // a bare tool echo without a call: its text is already in the tool call
        }
        this._toolCall(transcript, findCall(entry), entry);
        continue;
      }
      const msg = el(transcript, 'div', `jp-asm-msg jp-asm-msg-${entry.role === 'user' ? 'user' : 'assistant'}`);
      el(msg, 'div', 'jp-asm-msg-role', entry.role === 'user' ? 'You' : 'Agent');
      const body = el(msg, 'div', 'jp-asm-msg-body jp-RenderedMarkdown jp-RenderedHTMLCommon');
      pending.push(this._markdown(body, entry.content || '', trusted));
    }
    calls.forEach((call, i) => {
      if (!used.has(i)) {
        this._toolCall(transcript, call, undefined);
      }
    });
    if (!transcript.childElementCount) {
      el(transcript, 'div', 'jp-asm-run-empty', bundle.output || '(no messages)');
    }

    // usage and cost
    const u = bundle.usage || ({} as IRunBundle['usage']);
    const usage = el(root, 'div', 'jp-asm-run-usage');
    const item = (cls: string, label: string, value: string) => {
      const span = el(usage, 'span', `jp-asm-usage-item ${cls}`);
      el(span, 'span', 'jp-asm-usage-label', label);
      el(span, 'span', 'jp-asm-usage-value', value);
    };
    item('jp-asm-usage-input', 'in', formatInt(u.input_tokens));
    item('jp-asm-usage-output', 'out', formatInt(u.output_tokens));
    if (u.cache_read_tokens || u.cache_creation_tokens) {
      item(
        'jp-asm-usage-cache',
        'cache',
        `${formatInt(u.cache_read_tokens)} read / ${formatInt(u.cache_creation_tokens)} written`
      );
    }
    item('jp-asm-usage-tools', 'tools', String(calls.length));
    item('jp-asm-usage-cost', 'cost', formatCost(bundle.cost_usd));
    await Promise.all(pending);
  }

  private _toolCall(parent: HTMLElement, call: IToolCall | undefined, entry: ITranscriptEntry | undefined): void {
    let status = (call?.status || entry?.status || 'completed').toLowerCase();
    if (call?.approval === 'denied') {
      status = 'denied';
    }
    const details = el(parent, 'details', `jp-asm-tool jp-asm-tool-${status.replace(/[^a-z_]/g, '')}`);
    const summary = el(details, 'summary', 'jp-asm-tool-summary');
    const glyph = toolIcon(status, call?.icon);
    if (glyph === '\u23f8') {
      // few fonts have ⏸ (U+23F8): two CSS bars instead
      const icon = el(summary, 'span', 'jp-asm-tool-icon jp-asm-icon-pause');
      icon.setAttribute('role', 'img');
      icon.setAttribute('aria-label', 'paused');
    } else {
      el(summary, 'span', 'jp-asm-tool-icon', glyph);
    }
    const name = call?.name || entry?.tool_name || 'tool';
    if (call?.summary) {
      // the plain-language row ("Read notes.txt · 17 B · 0.2 s"); the name stays for search
      el(summary, 'span', 'jp-asm-tool-name jp-asm-hidden', name);
      el(summary, 'span', 'jp-asm-tool-line', call.summary);
    } else {
      el(summary, 'span', 'jp-asm-tool-name', name);
    }
    const body = el(details, 'div', 'jp-asm-tool-body');
    if (call && call.input !== undefined && call.input !== null) {
      el(body, 'div', 'jp-asm-tool-section', 'Input');
      el(body, 'pre', 'jp-asm-tool-input', pretty(call.input));
    }
    const out = entry?.content ?? (call ? toolOutputText(call.output) : '');
    el(
      body,
      'div',
      'jp-asm-tool-section',
      call && call.exit_code !== null && call.exit_code !== undefined ? `Output (exit ${call.exit_code})` : 'Output'
    );
    el(body, 'pre', 'jp-asm-tool-output', out || '(empty)');
  }

  /**
   * Markdown of agent or user text. Always rendered as *untrusted* (sanitized: no script, no
   * event handlers, no iframes), whatever the output's trusted flag says: the text comes from a
   * model, a tool or a shared cassette, never from the notebook's author.
   */
  private async _markdown(host: HTMLElement, source: string, _trusted: boolean): Promise<void> {
    const o = this._options;
    try {
      await renderMarkdown({
        host,
        source,
        trusted: false,
        sanitizer: o.sanitizer,
        resolver: o.resolver,
        linkHandler: o.linkHandler,
        shouldTypeset: this.isAttached,
        latexTypesetter: o.latexTypesetter,
        markdownParser: o.markdownParser ?? null,
        translator: o.translator
      });
    } catch {
      host.textContent = source;
    }
  }

  private _options: IRenderMime.IRendererOptions;
}

/** The renderer factory registered for `application/vnd.asm.run+json`. */
export const rendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [RUN_MIME],
  defaultRank: 10,
  createRenderer: options => new RunRenderer(options)
};
