/**
 * The JupyterLab plugin: adds the "Agent sessions" sidebar (left area) and the command that
 * opens a stored run's transcript in the main area, drawn by the run MIME renderer.
 */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget } from '@jupyterlab/apputils';
import { IRenderMimeRegistry, MimeModel } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { dashboardRendererFactory } from './dashboard';
import { fetchRun } from './handler';
import { SessionsPanel } from './sidebar';
import { RUN_MIME } from './types';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
  '<g class="jp-icon3" fill="#616161">' +
  '<path d="M4 4h16a2 2 0 0 1 2 2v9a2 2 0 0 1-2 2h-7l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm2 4v2h12V8H6zm0 4v2h8v-2H6z"/>' +
  '</g></svg>';

export const agentIcon = new LabIcon({ name: 'asm-nb:agent', svgstr: ICON_SVG });

export namespace CommandIDs {
  export const openRun = 'asm-nb:open-run';
  export const showSessions = 'asm-nb:show-sessions';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'asm-nb-extension:sessions',
  description: 'The "Agent sessions" sidebar of asm_nb.',
  autoStart: true,
  requires: [IRenderMimeRegistry],
  optional: [ICommandPalette, ILayoutRestorer, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    rendermime: IRenderMimeRegistry,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    settings: ISettingRegistry | null
  ) => {
    const openRuns = new Map<string, MainAreaWidget>();

    app.commands.addCommand(CommandIDs.openRun, {
      label: 'Open Agent Run',
      describedBy: {
        args: {
          type: 'object',
          properties: { runId: { type: 'string', description: 'The run id (run_…)' } },
          required: ['runId']
        }
      },
      execute: async args => {
        const runId = String(args.runId ?? '');
        const existing = openRuns.get(runId);
        if (existing && !existing.isDisposed) {
          app.shell.activateById(existing.id);
          return;
        }
        const content = new Widget();
        content.addClass('jp-asm-run-view');
        const widget = new MainAreaWidget({ content });
        widget.id = `jp-asm-run-${runId}`;
        widget.title.label = `Run ${runId.slice(4, 12)}`;
        widget.title.icon = agentIcon;
        widget.title.closable = true;
        openRuns.set(runId, widget);
        widget.disposed.connect(() => openRuns.delete(runId));
        app.shell.add(widget, 'main');
        app.shell.activateById(widget.id);
        try {
          const bundle = await fetchRun(runId);
          const renderer = rendermime.createRenderer(RUN_MIME);
          await renderer.renderModel(new MimeModel({ data: { [RUN_MIME]: bundle as any }, trusted: false }));
          content.node.appendChild(renderer.node);
          widget.title.label = `${bundle.run.provider || 'Run'}: ${(bundle.prompt || runId).slice(0, 24)}`;
          widget.disposed.connect(() => renderer.dispose());
        } catch (error) {
          content.node.textContent = `Could not load run ${runId}: ${(error as Error).message}`;
        }
      }
    });

    // the dashboard snapshot: the live widget while its kernel holds it, else a sortable grid
    rendermime.addFactory(
      dashboardRendererFactory({
        lookup: modelId => {
          for (const w of Array.from(app.shell.widgets('main'))) {
            const doc = w as any;
            const kernel = doc.sessionContext?.session?.kernel;
            if (kernel && typeof kernel.hasComm === 'function' && kernel.hasComm(modelId) && doc.content?.rendermime) {
              return doc.content.rendermime as IRenderMimeRegistry;
            }
          }
          return null;
        },
        openRun: runId => void app.commands.execute(CommandIDs.openRun, { runId })
      })
    );

    const panel = new SessionsPanel({
      openRun: runId => void app.commands.execute(CommandIDs.openRun, { runId })
    });
    panel.title.icon = agentIcon;
    if (settings) {
      // the refresh interval from Settings > Agent sessions (seconds; 0 = no periodic refresh)
      void settings
        .load(plugin.id)
        .then(loaded => {
          const apply = () => panel.setPollInterval(1000 * Number(loaded.get('refreshInterval').composite ?? 10));
          apply();
          loaded.changed.connect(apply);
        })
        .catch(reason => console.warn('asm-nb: could not load the sidebar settings', reason));
    }
    app.shell.add(panel, 'left', { rank: 650 });
    if (restorer) {
      restorer.add(panel, 'asm-nb-sessions');
    }

    app.commands.addCommand(CommandIDs.showSessions, {
      label: 'Show Agent Sessions',
      execute: () => {
        app.shell.activateById(panel.id);
        void panel.refresh();
      }
    });
    if (palette) {
      palette.addItem({ command: CommandIDs.showSessions, category: 'Agent sessions' });
    }
  }
};

export default plugin;
