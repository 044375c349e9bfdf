/**
 * The MIME renderer extension: JupyterLab draws every `application/vnd.asm.run+json` output
 * (what asm_nb's RunResult displays) with `RunRenderer`, ranked before the bundle's
 * `text/html` and `text/plain` fallbacks.
 */

import { IRenderMime } from '@jupyterlab/rendermime-interfaces';

import { rendererFactory } from './renderer';
import { RUN_MIME } from './types';

const extension: IRenderMime.IExtension = {
  id: 'asm-nb-extension:run-renderer',
  description: 'Renders asm_nb agent runs (application/vnd.asm.run+json).',
  rendererFactory,
  rank: 10,
  dataType: 'json',
  fileTypes: [
    {
      name: 'jp-asm-run',
      mimeTypes: [RUN_MIME],
      extensions: ['.asmrun.json']
    }
  ],
  documentWidgetFactoryOptions: {
    name: 'Agent run',
    primaryFileType: 'jp-asm-run',
    fileTypes: ['jp-asm-run'],
    defaultFor: ['jp-asm-run']
  }
};

export default extension;
