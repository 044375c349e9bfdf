/**
 * Requests to the asm_nb server extension (`asm-nb/...` endpoints), authenticated with the page's
 * token/cookie through `ServerConnection`.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { IRunBundle, ISessionListing } from './types';

/** GET a JSON endpoint of the asm_nb server extension; errors carry the server's message. */
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

/** The store's sessions with their runs. */
export function fetchSessions(settings?: ServerConnection.ISettings): Promise<ISessionListing> {
  return requestAPI<ISessionListing>('sessions', settings);
}

/** One stored run as an asm.run bundle. */
export function fetchRun(runId: string, settings?: ServerConnection.ISettings): Promise<IRunBundle> {
  return requestAPI<IRunBundle>(`runs/${encodeURIComponent(runId)}`, settings);
}
