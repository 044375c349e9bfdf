"""Hatch build hook: build the JupyterLab extension (extension/) into asm_nb/labextension/ when a
wheel or sdist is built from source, so `pip install .`, `pip install git+...`, `pip wheel .` and
`python -m build` all ship share/jupyter/labextensions/asm-nb-extension and a wheel installs with
no Node.js.

- From a source checkout: runs scripts/build_extension.sh (npm ci when node_modules is missing or
  older than package-lock.json, then tsc + @jupyter/builder); it does nothing when the output is
  newer than every source. Needs Node.js >= 20 and npm, and the npm registry the first time.
- From an unpacked sdist (PKG-INFO at the root): the sdist already carries the built extension
  (pyproject's sdist `artifacts`), so nothing is built and Node is not needed.
- ASM_SKIP_EXTENSION_BUILD=1 skips the build (the wheel then ships whatever is on disk; use it
  only for a Python-only editable install).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

OUT = Path("asm_nb") / "labextension"


def _built(root: Path) -> bool:
    out = root / OUT
    return (out / "package.json").is_file() and any((out / "static").glob("remoteEntry.*.js"))


class ExtensionBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        root = Path(self.root)
        if os.environ.get("ASM_SKIP_EXTENSION_BUILD") == "1":
            self.app.display_warning("asm_nb: ASM_SKIP_EXTENSION_BUILD=1, the JupyterLab extension is not built")
            return
        from_sdist = (root / "PKG-INFO").is_file() and not (root / ".git").exists()
        if from_sdist and _built(root):
            return
        if not (root / "extension" / "package.json").is_file():
            raise RuntimeError("asm_nb: extension/ sources are missing and no built extension is present")
        missing = [tool for tool in ("node", "npm", "bash") if shutil.which(tool) is None]
        if missing and not _built(root):
            raise RuntimeError(
                "asm_nb: building the JupyterLab extension needs Node.js >= 20 and npm "
                f"(not found: {', '.join(missing)}). Install Node.js 20+ (NodeSource, or the nodejs "
                "package of Debian 13 / Ubuntu 24.04+), or install a prebuilt asm_nb wheel.")
        if missing:  # a build is on disk and no Node here: ship it (the script would refuse)
            self.app.display_warning("asm_nb: Node.js not found; shipping the extension already built on disk")
            return
        env = {**os.environ, "ASM_EXT_LINK": "0"}  # no development link into the build environment
        self.app.display_info("asm_nb: building the JupyterLab extension (scripts/build_extension.sh)")
        subprocess.run(["bash", str(root / "scripts" / "build_extension.sh")], cwd=root, env=env, check=True)
        if not _built(root):
            raise RuntimeError(f"asm_nb: the extension build left no remoteEntry.*.js in {root / OUT / 'static'}")
