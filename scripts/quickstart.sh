#!/usr/bin/env bash
# Set up what the quickstart needs (./.venv with the package and its notebook extra: no Node, no
# JupyterLab), then run notebooks/01_quickstart.ipynb offline (shell + replay providers, no API
# key, no network). Each cell and its output are printed here; the executed notebook and an HTML
# copy go to build/. A failing cell is printed with its error and the script exits non-zero.
#   bash scripts/quickstart.sh              set up, then run
#   bash scripts/quickstart.sh --no-setup   run only (after a set-up)
#   ASM_QUICKSTART_NOTEBOOK=path  ASM_QUICKSTART_OUT=dir   run another notebook / write elsewhere
# Open notebooks/01_quickstart.ipynb in JupyterLab (bash scripts/setup.sh installs it) for the
# live widgets.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" != "--no-setup" ]; then
  bash scripts/setup.sh quickstart
fi
. scripts/_python.sh
asm_use_python
# text rendering in a headless run (JupyterLab shows the live widget instead)
export ASM_DEFAULT_RENDERER=studio
"$PY" scripts/run_notebook.py "${ASM_QUICKSTART_NOTEBOOK:-notebooks/01_quickstart.ipynb}" "${ASM_QUICKSTART_OUT:-build}"
echo "quickstart ran offline"
