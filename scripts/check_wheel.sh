#!/usr/bin/env bash
# Prove that a wheel built from a clean clone ships the JupyterLab extension and works without
# Node.js (CI runs this from .ci/run):
#   1. clone the committed HEAD into a temporary folder and `pip wheel --no-deps` it (the hatch
#      build hook in hatch_build.py runs the npm build);
#   2. check the wheel holds share/jupyter/labextensions/asm-nb-extension/static/remoteEntry.*.js;
#   3. install it with its `lab` extra and ipykernel into an empty venv and, with only that venv
#      on PATH (no node, no npm), check `jupyter labextension list`, `jupyter server extension
#      list` and `%load_ext asm_nb` + a `%%asm -p shell` cell in a real kernel.
# extension/node_modules of this checkout is hard-linked into the clone when present (same lock
# file, saves the download); ASM_WHEEL_FRESH_NPM=1 makes the clone run `npm ci` itself.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
export PIP_DISABLE_PIP_VERSION_CHECK=1
t0=$(date +%s)
say() { echo "== check_wheel: $* ($(( $(date +%s) - t0 ))s)"; }
fail() { echo "check_wheel: FAILED: $*" >&2; exit 1; }
# pip's notes about this machine's extra index folders are noise; the command's status is kept
quiet_pip() { "$@" 2> >(grep -v "is ignored: it is neither" >&2); }

work=$(mktemp -d "${TMPDIR:-/tmp}/asm-wheelcheck-XXXXXX")
RM=$(command -v rm)
trap '"$RM" -rf "$work"' EXIT

say "clone HEAD"
git clone -q --no-hardlinks "$ROOT" "$work/src"
if [ "${ASM_WHEEL_FRESH_NPM:-0}" != "1" ] && [ -d extension/node_modules ] && [ ! -L extension/node_modules ]; then
  cp -al extension/node_modules "$work/src/extension/node_modules" 2>/dev/null \
    || cp -a extension/node_modules "$work/src/extension/node_modules"
  touch "$work/src/extension/node_modules"
fi

say "pip wheel --no-deps (builds the extension)"
quiet_pip "$PY" -m pip wheel -q --no-deps "$work/src" -w "$work/dist"
wheel=$(ls "$work"/dist/asm_nb-*.whl)
"$PY" - "$wheel" <<'PY' || fail "the wheel has no prebuilt JupyterLab extension"
import re, sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
need = [r"\.data/data/share/jupyter/labextensions/asm-nb-extension/static/remoteEntry\.[0-9a-f]+\.js$",
        r"\.data/data/share/jupyter/labextensions/asm-nb-extension/package\.json$",
        r"\.data/data/etc/jupyter/jupyter_server_config\.d/asm_nb\.json$"]
missing = [p for p in need if not any(re.search(p, n) for n in names)]
print("check_wheel: wheel entries:", len(names), "missing:", missing or "none")
sys.exit(1 if missing else 0)
PY

say "empty venv + pip install wheel[lab] ipykernel"
"$PY" -m venv "$work/venv"
# [lab] (JupyterLab, jupyter_server) and a kernel: what the three checks need; the notebook extra's
# data stack (pandas, polars, pyarrow, plotly) is not involved and would only add minutes.
quiet_pip "$work/venv/bin/python" -m pip install -q "$wheel[lab]" "ipykernel>=6.29"
"$work/venv/bin/python" -c "import asm_nb, jupyterlab, ipykernel" || fail "the wheel did not install"
mkdir -p "$work/home"

say "checks with no Node on PATH"
mkdir -p "$work/tools"  # the few shell tools this script uses, and nothing else
for t in grep rm mkdir cat date; do ln -s "$(command -v "$t")" "$work/tools/$t"; done
export PATH="$work/venv/bin:$work/tools" HOME="$work/home" ASM_HOME="$work/asm_home" JUPYTER_PLATFORM_DIRS=1
unset JUPYTER_PATH JUPYTER_CONFIG_DIR JUPYTER_DATA_DIR PYTHONPATH
if command -v node >/dev/null 2>&1 || command -v npm >/dev/null 2>&1; then fail "node is still on PATH"; fi
labext=$(jupyter labextension list 2>&1)
echo "$labext" | grep -E "asm-nb-extension v[0-9.]+ .*enabled.*OK" \
  || { echo "$labext"; fail "jupyter labextension list does not show asm-nb-extension enabled OK"; }
srvext=$(jupyter server extension list 2>&1)
echo "$srvext" | grep -E "asm_nb(\.server_ext)? .*enabled" >/dev/null && echo "$srvext" | grep -E "asm_nb(\.server_ext)? .*OK" \
  || { echo "$srvext"; fail "jupyter server extension list does not show asm_nb enabled OK"; }
python -c "
from importlib.resources import files
for name in ('rungrid.js', 'rungrid.css'):  # the dashboard grid's front end, read at import
    assert (files('asm_nb.notebook') / name).is_file(), name
" || fail "the wheel lacks the dashboard grid's rungrid.js / rungrid.css"
python - <<'PY' || fail "%load_ext asm_nb / %%asm in a kernel"
from jupyter_client.manager import start_new_kernel

km, kc = start_new_kernel(kernel_name="python3", startup_timeout=120)
try:
    out = []

    def keep(msg):
        c = msg["content"]
        if msg["msg_type"] == "stream":
            out.append(c["text"])
        elif msg["msg_type"] in ("execute_result", "display_data"):
            out.append(c["data"].get("text/plain", ""))
        elif msg["msg_type"] == "error":
            out.append("ERROR " + c["ename"] + ": " + c["evalue"])

    for code in ("%load_ext asm_nb", "%%asm -p shell\necho wheel-check-ok"):
        reply = kc.execute_interactive(code, timeout=120, output_hook=keep)
        if reply["content"]["status"] != "ok":
            raise SystemExit(f"cell failed: {code!r}: {''.join(out)}")
    text = "".join(out)
    assert "wheel-check-ok" in text, text
    print("check_wheel: kernel: %load_ext asm_nb and a %%asm shell cell ran")
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
PY
say "ok"
