#!/usr/bin/env bash
# Set everything up, then run the quickstart notebook offline (replay and shell providers only)
# and print where the executed copy was written.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=${PYTHON:-python3}
out=${1:-build/quickstart.executed.ipynb}
mkdir -p "$(dirname "$out")"
"$PY" -m jupyter nbconvert --to notebook --execute notebooks/01_quickstart.ipynb --output "$(basename "$out")" \
  --output-dir "$(dirname "$out")" --ExecutePreprocessor.timeout=300
echo "quickstart ran offline: $out"
