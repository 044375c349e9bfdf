/**
 * asm-nb-extension: the run MIME renderer (`./mime`) and the "Agent sessions" sidebar
 * (`./plugin`). JupyterLab loads them through package.json's `jupyterlab.mimeExtension` and
 * `jupyterlab.extension`; this module re-exports them for other code.
 */

export { default as mimeExtension } from './mime';
export { default as sessionsPlugin, CommandIDs, agentIcon } from './plugin';
export {
  RunRenderer,
  rendererFactory,
  isRunBundle,
  formatCost,
  formatDuration,
  formatInt,
  stopReasonWords,
  toolIcon
} from './renderer';
export {
  DashboardRenderer,
  dashboardRendererFactory,
  compareCells,
  gridText,
  isDashboardSnapshot,
  DASHBOARD_MIME
} from './dashboard';
export { SessionsPanel, relativeTime, runMatches, sessionTitle, shortPath, sidebarCost } from './sidebar';
export { requestAPI, fetchRun, fetchSessions } from './handler';
export { SearchResults, fetchSearch, snippetNode } from './search';
export type { ISearchHit, ISearchResult } from './search';
export * from './types';
