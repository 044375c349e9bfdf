"""Datasets: every input form, templates, expected values, fixtures and the item hash."""

from __future__ import annotations

import json

import pandas as pd
import polars as pl
import pytest

from asm_nb.core.errors import AsmError
from asm_nb.evaluation.dataset import Dataset, as_dataset


def test_list_of_prompts_and_dicts():
    ds = as_dataset(["a", {"input": "b", "expected": "B", "id": "second"}])
    assert [it.input for it in ds] == ["a", "b"]
    assert [it.id for it in ds] == ["0", "second"]
    assert ds[1].expected == "B" and ds[0].expected is None


def test_template_and_expected_column_from_pandas_and_polars():
    rows = [{"q": "2+2", "answer": "4"}, {"q": "3+3", "answer": "6"}]
    for frame in (pd.DataFrame(rows), pl.DataFrame(rows)):
        ds = as_dataset(frame, input="What is {q}?", expected="answer")
        assert [it.input for it in ds] == ["What is 2+2?", "What is 3+3?"]
        assert [it.expected for it in ds] == ["4", "6"]
        assert ds[0].vars["q"] == "2+2"


def test_jsonl_and_csv_with_relative_workspace(tmp_path):
    fx = tmp_path / "fixtures" / "proj"
    fx.mkdir(parents=True)
    (fx / "a.py").write_text("x = 1\n")
    (tmp_path / "items.jsonl").write_text(json.dumps({"input": "fix", "workspace": "fixtures/proj"}) + "\n\n")
    (tmp_path / "items.csv").write_text("id,input,expected,fx\nk1,hello,HI,proj\n")
    j = as_dataset(str(tmp_path / "items.jsonl"))
    assert j[0].workspace == str(fx.resolve())
    c = as_dataset(str(tmp_path / "items.csv"), workspace="fixtures/{fx}")
    assert c[0].id == "k1" and c[0].expected == "HI" and c[0].workspace == str(fx.resolve())


def test_item_hash_follows_fixture_content(tmp_path):
    fx = tmp_path / "fx"
    fx.mkdir()
    (fx / "a.py").write_text("x = 1\n")
    h1 = as_dataset([{"input": "go", "workspace": str(fx)}])[0].hash
    assert as_dataset([{"input": "go", "workspace": str(fx)}])[0].hash == h1
    (fx / "a.py").write_text("x = 2\n")
    assert as_dataset([{"input": "go", "workspace": str(fx)}])[0].hash != h1
    assert as_dataset([{"input": "go", "expected": "x"}])[0].hash != as_dataset([{"input": "go"}])[0].hash


@pytest.mark.parametrize("data, opts, needle", [
    ([{"q": 1}], {"input": "{missing}"}, "missing variable"),
    ([{"q": 1}], {}, "has no input"),
    ([{"input": "a", "id": "x"}, {"input": "b", "id": "x"}], {}, "unique"),
    ([{"input": "a", "workspace": "/nonexistent/fixture"}], {}, "is not a folder"),
    ("items.txt", {}, ".jsonl or .csv"),
    (42, {}, "dataset must be"),
])
def test_bad_datasets_say_what_is_wrong(data, opts, needle):
    with pytest.raises(AsmError) as exc:
        as_dataset(data, **opts)
    assert needle in exc.value.message


def test_missing_file_is_not_found(tmp_path):
    with pytest.raises(AsmError) as exc:
        Dataset.from_jsonl(tmp_path / "nope.jsonl")
    assert exc.value.code == "not_found"
