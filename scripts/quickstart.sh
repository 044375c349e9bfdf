#!/usr/bin/env bash
# Set everything up, then run the quickstart notebook offline (shell + replay providers, no API
# key, no network): its outputs are printed here, and the executed notebook and an HTML copy are
# written under build/. Open notebooks/01_quickstart.ipynb in JupyterLab for the live widgets.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=${PYTHON:-python3}
mkdir -p build
# text rendering in a headless run (JupyterLab shows the live widget instead)
export ASM_DEFAULT_RENDERER=studio
"$PY" -m jupyter nbconvert --to notebook --execute notebooks/01_quickstart.ipynb \
  --output quickstart.executed.ipynb --output-dir build --ExecutePreprocessor.timeout=300 2>/dev/null
"$PY" -m jupyter nbconvert --to html build/quickstart.executed.ipynb --output-dir build 2>/dev/null
"$PY" - <<'PY'
import nbformat

nb = nbformat.read("build/quickstart.executed.ipynb", 4)
for cell in nb.cells:
    if cell.cell_type != "code":
        continue
    print("\n>>> " + cell.source.replace("\n", "\n... "))
    for out in cell.outputs:
        if out.output_type == "stream":
            print(out.text, end="")
        elif "data" in out and out["data"].get("text/plain"):
            print(out["data"]["text/plain"])
PY
echo
echo "quickstart ran offline: build/quickstart.executed.ipynb, build/quickstart.executed.html"
