"""Eval spec files (TOML or YAML) for ``asm eval FILE`` and :func:`run_spec`.

A spec (paths are relative to the spec file)::

    name = "fix-bugs"                 # results are stored under it; a re-run resumes
    repeats = 1
    concurrency = 4
    budget = 1.00                     # USD for the eval's new runs
    cassettes = "cassettes"           # record once, then replay offline (record = "once"|"none"|"all")

    [dataset]
    path = "items.jsonl"              # .jsonl or .csv; or items = [{input = "...", expected = "..."}]
    input = "Fix {bug}"               # optional template over the item's fields
    workspace = "fixtures/{fixture}"  # optional per-item workspace fixture

    [agents.shell-fix]
    provider = "shell"
    [agents.claude]
    provider = "claude"
    model = "claude-sonnet-4-5"

    [[scorers]]
    type = "command"
    command = "python -m pytest -q"

    [thresholds]                      # every agent must meet them, else exit status 1
    pass_rate = 0.8
    mean_score = 0.5
    max_cost_usd = 2.0
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from ..core.errors import AsmError

__all__ = ["load_spec", "run_spec", "SPEC_KEYS"]

SPEC_KEYS = {"name", "store", "repeats", "concurrency", "budget", "cassettes", "record", "timeout", "dataset",
             "agents", "scorers", "thresholds"}


def load_spec(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a ``.toml`` / ``.yaml`` / ``.yml`` spec; unknown top-level keys are an error."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AsmError("not_found", f"eval spec not found: {p}") from None
    if p.suffix == ".toml":
        import tomllib

        try:
            spec = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise AsmError("invalid_format", f"{p}: invalid TOML ({exc})") from None
    elif p.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as exc:  # pragma: no cover - pyyaml ships with the notebook extra
            raise AsmError("dependency_not_available", "YAML specs need PyYAML: pip install 'asm_nb[eval]'") from exc
        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise AsmError("invalid_format", f"{p}: invalid YAML ({str(exc).splitlines()[0]})") from None
    else:
        raise AsmError("validation_error", f"eval spec must be .toml, .yaml or .yml, got {p.name}")
    if not isinstance(spec, Mapping):
        raise AsmError("invalid_format", f"{p}: the spec must be a table/mapping")
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise AsmError("validation_error", f"{p}: unknown key(s) {unknown}; expected some of {sorted(SPEC_KEYS)}")
    for key in ("dataset", "agents"):
        if key not in spec:
            raise AsmError("validation_error", f"{p}: the spec needs a [{key}] section")
    return dict(spec)


def _rel(base: Path, value: Any) -> Any:
    if isinstance(value, str) and value and not os.path.isabs(value):
        return str((base / value).resolve())
    return value


def run_spec(path: str | os.PathLike, *, store: Any = None, name: str | None = None, progress: bool = False,
             concurrency: int | None = None) -> tuple[Any, list[str]]:
    """Run the eval a spec describes; returns ``(EvalResult, failed thresholds)``."""
    from .agents import Agent
    from .dataset import Dataset
    from .runner import evaluate
    from .scorers import scorer_from_spec

    p = Path(path).resolve()
    spec = load_spec(p)
    base = p.parent
    ds_spec = dict(spec["dataset"]) if isinstance(spec["dataset"], Mapping) else {"items": spec["dataset"]}
    opts = {k: ds_spec.pop(k) for k in ("input", "expected", "workspace", "id") if k in ds_spec}
    if "path" in ds_spec:
        dpath = _rel(base, ds_spec.pop("path"))
        if str(dpath).endswith(".csv"):
            dataset = Dataset.from_csv(dpath, **opts)
        else:
            dataset = Dataset.from_jsonl(dpath, **opts)
    elif "items" in ds_spec:
        dataset = Dataset.from_records(ds_spec.pop("items"), base_dir=base, **opts)
    else:
        raise AsmError("validation_error", f"{p}: [dataset] needs path = FILE or items = [...]")
    if ds_spec:
        raise AsmError("validation_error", f"{p}: [dataset] unknown key(s) {sorted(ds_spec)}")
    agents_spec = spec["agents"]
    if isinstance(agents_spec, Mapping):
        pairs = list(agents_spec.items())
    elif isinstance(agents_spec, list):
        pairs = [(a.get("name"), a) for a in agents_spec if isinstance(a, Mapping)]
    else:
        raise AsmError("validation_error", f"{p}: agents must be a table of agents or a list")
    agents = []
    for agent_name, given in pairs:
        a: dict[str, Any] = {"provider": given} if isinstance(given, str) else dict(given)
        options = dict(a.get("options") or {})
        for k in ("cassette", "cwd"):
            if k in options:
                options[k] = _rel(base, options[k])
        a["options"] = options
        agents.append(Agent.from_spec(agent_name, a))
    scorers = [scorer_from_spec(s, base_dir=str(base)) for s in spec.get("scorers") or []]
    if not scorers:
        raise AsmError("validation_error", f"{p}: the spec needs at least one [[scorers]] entry")
    cassettes = _rel(base, spec.get("cassettes")) if spec.get("cassettes") else None
    store_target = store if store is not None else (_rel(base, spec["store"]) if spec.get("store") else None)
    result = evaluate(dataset, agents=agents, scorers=scorers, repeats=int(spec.get("repeats", 1)),
                      concurrency=int(concurrency or spec.get("concurrency", 4)), budget=spec.get("budget"),
                      name=name or spec.get("name") or p.stem, store=store_target, cassettes=cassettes,
                      record=str(spec.get("record", "once")), timeout=spec.get("timeout"), progress=progress)
    thresholds = dict(spec.get("thresholds") or {})
    return result, result.thresholds(**thresholds)
