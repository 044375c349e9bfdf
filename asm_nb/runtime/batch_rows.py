"""A batch's rows: input rows (a list of prompts or dicts, a pandas/polars frame) into the
picklable item dicts, one finished run into one result row (``RESULT_COLUMNS``), the unit of
work an executor ships (``run_batch_item``), and the join of the input rows with their results.

Split out of ``runtime/batch.py``, which re-exports every name.
"""

from __future__ import annotations

import string
from typing import Any, Callable, Iterable, Mapping

from ..core.errors import AsmError

RESULT_COLUMNS = ["prompt", "run_id", "session_id", "status", "output", "error_code", "error_message",
                  "input_tokens", "output_tokens", "cost_usd", "duration_ms", "provider", "model"]


# ------------------------------------------------------------------------------------------
# input rows → items


def _rows(prompts_or_rows: Any) -> tuple[list[dict[str, Any]], Any, str]:
    """(row dicts, the original frame or None, kind) for a list / pandas / polars input."""
    mod = type(prompts_or_rows).__module__
    if mod.startswith("pandas"):
        import pandas as pd

        if isinstance(prompts_or_rows, pd.Series):
            return [{"prompt": v} for v in prompts_or_rows.tolist()], prompts_or_rows.to_frame("prompt"), "pandas"
        return [dict(r) for r in prompts_or_rows.to_dict("records")], prompts_or_rows, "pandas"
    if mod.startswith("polars"):
        import polars as pl

        if isinstance(prompts_or_rows, pl.Series):
            return [{"prompt": v} for v in prompts_or_rows.to_list()], prompts_or_rows.to_frame("prompt"), "polars"
        return prompts_or_rows.to_dicts(), prompts_or_rows, "polars"
    if isinstance(prompts_or_rows, (str, bytes)) or not isinstance(prompts_or_rows, Iterable):
        raise AsmError("validation_error", "batch needs a list of prompts, a list of dicts or a DataFrame, "
                                           f"got {type(prompts_or_rows).__name__}")
    out = []
    for x in prompts_or_rows:
        if isinstance(x, Mapping):
            out.append(dict(x))
        elif isinstance(x, str):
            out.append({"prompt": x})
        else:
            raise AsmError("validation_error", f"batch items must be prompts (str) or dicts, got {x!r}")
    return out, None, "list"


def _prompt_of(row: Mapping[str, Any], prompt: Any) -> Any:
    if callable(prompt):
        return prompt(row)
    if isinstance(prompt, str) and "{" in prompt:
        fields = [f for _, f, _, _ in string.Formatter().parse(prompt) if f]
        missing = [f for f in fields if f.split(".")[0].split("[")[0] not in row]
        if missing:
            raise AsmError("validation_error", f"prompt template refers to missing column(s) {missing}; "
                                               f"row has {sorted(row)}")
        return prompt.format_map(row)
    if isinstance(prompt, str):
        if prompt not in row:
            raise AsmError("validation_error", f"prompt column {prompt!r} not in row {sorted(row)}")
        return row[prompt]
    if "prompt" in row:
        return row["prompt"]
    if len(row) == 1:
        return next(iter(row.values()))
    raise AsmError("validation_error", "say which column holds the prompt: prompt='column' or a '{column}' template")


def build_items(prompts_or_rows: Any, *, prompt: Any = None,
                row_options: Callable[[Any], Mapping[str, Any] | None] | str | None = None,
                base: Mapping[str, Any] | None = None) -> tuple[list[dict[str, Any]], Any, str]:
    """The picklable item dicts of a batch: ``{index, prompt, options, **base}``."""
    rows, frame, kind = _rows(prompts_or_rows)
    items = []
    for i, row in enumerate(rows):
        p = _prompt_of(row, prompt)
        if p is None or (isinstance(p, str) and not p.strip()):
            raise AsmError("validation_error", f"row {i} has an empty prompt")
        if callable(row_options):
            opts = dict(row_options(row) or {})
        elif isinstance(row_options, str):
            opts = dict(row.get(row_options) or {})
        elif row_options is None:
            opts = {}
        else:
            raise AsmError("validation_error", "row_options must be a callable(row) -> dict or a column name")
        items.append({**(base or {}), "index": i, "prompt": p, "options": opts})
    return items, frame, kind


# ------------------------------------------------------------------------------------------
# one item → one row


def _row_from_run(run: Any, prompt: Any, error: AsmError | None = None) -> dict[str, Any]:
    out = run.output or {}
    content = out.get("content")
    if content is not None and not isinstance(content, str):
        content = str(content)
    err = run.error or {}
    if error is not None and not err:
        err = {"code": error.code, "message": error.message}
    usage = run.token_usage or {}
    return {"prompt": prompt, "run_id": run.id, "session_id": run.session_id, "status": run.status.value,
            "output": content, "error_code": err.get("code"), "error_message": err.get("message"),
            "input_tokens": usage.get("input_tokens"), "output_tokens": usage.get("output_tokens"),
            "cost_usd": run.cost_usd, "duration_ms": run.duration_ms, "provider": run.provider,
            "model": (run.provider_metadata or {}).get("model")}


def _row_error(prompt: Any, error: BaseException, **ids: Any) -> dict[str, Any]:
    err = error if isinstance(error, AsmError) else AsmError.from_exception(error)
    row: dict[str, Any] = {c: None for c in RESULT_COLUMNS}
    row.update(prompt=prompt, status="cancelled" if err.code == "cancelled" else "failed", error_code=err.code,
               error_message=err.message, **ids)
    return row


def run_batch_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Run one batch item and return its result row (the unit of work an executor ships).

    ``item``: ``index``, ``prompt``, ``provider`` (a registered name), ``adapter_options``,
    ``options`` (per-row adapter options), ``store`` (a path or URL: opened here, in the
    worker), ``session_id`` (the batch session), ``policy``, ``timeout``. Never raises for a
    failed run: the row says ``status`` failed with the error.
    """
    from ..stores import resolve_store
    from .oneshot import run_once

    prompt = item.get("prompt")
    try:
        store = resolve_store(item["store"])
        opts = {**(item.get("adapter_options") or {}), **(item.get("options") or {})}
        kwargs: dict[str, Any] = {"store": store, "continuation": False}
        if item.get("session_id"):
            kwargs["session"] = item["session_id"]
        if item.get("policy") is not None:
            kwargs["policy"] = item["policy"]
        if item.get("timeout") is not None:
            kwargs["timeout"] = item["timeout"]
        result = run_once(prompt, provider=item.get("provider"), **kwargs, options=opts)
        row = _row_from_run(store.get_run(result.run_id), prompt, result.error)
    except Exception as exc:  # a caller mistake or a broken store: reported in the row
        row = _row_error(prompt, exc, session_id=item.get("session_id"))
    row["index"] = item.get("index")
    return row


def _beside(left: Any, right: Any) -> Any:
    """``left.join(right, rsuffix="_result")`` for two frames on the same unique index, without
    the ``lsuffix``/``rsuffix`` keywords pandas 3.1 deprecates (``suffixes`` is not in pandas 2)."""
    import pandas as pd

    clash = set(left.columns)
    right = right.rename(columns={c: f"{c}_result" for c in right.columns if c in clash})
    return pd.concat([left, right], axis=1)


def _join(frame: Any, kind: str, rows: list[dict[str, Any]], backend: str, items: list[dict]) -> Any:
    if backend == "records":
        return rows
    import pandas as pd

    results = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    if kind == "pandas":
        base = frame.reset_index(drop=True) if not frame.index.equals(pd.RangeIndex(len(frame))) else frame
        results.index = base.index
        if "prompt" in base.columns:
            results = results.drop(columns=["prompt"])
        out = _beside(base, results)
        if base is not frame:
            out.index = frame.index
    elif kind == "polars":
        base = frame.to_pandas()
        out = _beside(base, results.drop(columns=["prompt"]) if "prompt" in base.columns else results)
    else:
        inputs = pd.DataFrame([{k: v for k, v in _original(it).items()} for it in items])
        if "prompt" in inputs.columns:
            inputs = inputs.drop(columns=["prompt"])
        out = _beside(inputs, results) if len(inputs.columns) else results
    if backend == "polars":
        import polars as pl

        return pl.from_pandas(out)
    return out


def _original(item: Mapping[str, Any]) -> dict[str, Any]:
    return dict(item.get("row") or {})

