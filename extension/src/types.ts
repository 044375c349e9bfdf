/**
 * The `application/vnd.asm.run+json` payload (schema "asm.run", version 1) emitted by
 * asm_nb's RunResult (`asm_nb/rendering/mime.py`), and the sidebar's session listing
 * (`asm_nb/server_ext.py`).
 */

export const RUN_MIME = 'application/vnd.asm.run+json';

export interface IRunError {
  code: string | null;
  message: string;
}

export interface IRunHeader {
  run_id: string | null;
  session_id: string | null;
  provider: string | null;
  model: string | null;
  status: string;
  stop_reason: string | null;
  /** the stop reason in words ("finished", "exit 0"); older bundles have none */
  stop_reason_text?: string | null;
  duration_ms: number | null;
  error: IRunError | null;
}

export interface ITranscriptEntry {
  role: string;
  content: string;
  tool_call_id?: string | null;
  tool_name?: string | null;
  status?: string;
}

export interface IToolCall {
  id: string | null;
  name: string | null;
  input: unknown;
  output: unknown;
  status: string;
  exit_code: number | null;
  duration_ms: number | null;
  summary: string;
  /** the row's icon as the live view shows it (✓ ◐ ⏸ ⊘ ■ ✗); older bundles have none */
  icon?: string;
  approval?: string | null;
}

export interface IUsage {
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_creation_tokens: number;
  total_tokens: number;
}

export interface IRunBundle {
  schema: string;
  version: number;
  run: IRunHeader;
  output: string;
  transcript: ITranscriptEntry[];
  tool_calls: IToolCall[];
  usage: IUsage;
  cost_usd: number | null;
  /** Added by the server endpoint for a stored run. */
  session_name?: string | null;
  prompt?: string;
}

export interface IRunRow {
  run_id: string;
  status: string;
  provider: string | null;
  model: string | null;
  started_at: string | null;
  duration_s: number | null;
  input_tokens: number | null;
  output_tokens: number | null;
  cost_usd: number | null;
  error_code: string | null;
  prompt: string;
}

export interface ISessionRow {
  session_id: string;
  name: string | null;
  agent_id: string | null;
  status: string;
  created_at: string | null;
  updated_at: string | null;
  run_count: number | null;
  total_tokens: number | null;
  cost_usd: number | null;
  providers: string[] | null;
  runs: IRunRow[];
}

export interface ISessionListing {
  store: string;
  exists: boolean;
  sessions: ISessionRow[];
}
