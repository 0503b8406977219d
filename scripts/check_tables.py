"""Downstream check: every table of a run opens in pandas (pyarrow) and polars with no options,
row counts agree with manifest.json, and every file carries its `circuitry` provenance JSON.

Run: python scripts/check_tables.py OUTPUT_DIR   (needs pandas, pyarrow, polars)"""
import json
import pathlib
import sys

import pandas as pd
import polars as pl
import pyarrow.parquet as pq

out = pathlib.Path(sys.argv[1])
manifest = json.loads((out / "manifest.json").read_text())
assert manifest["tables"], "the run wrote no tables"
for entry in manifest["tables"]:
    path = out / entry["path"]
    pdf = pd.read_parquet(path)
    plf = pl.read_parquet(path)
    assert len(pdf) == len(plf) == entry["rows"], (path, len(pdf), len(plf), entry["rows"])
    assert list(pdf.columns) == plf.columns, (path, list(pdf.columns), plf.columns)
    assert pdf.columns[0] == "model" or "model" in pdf.columns, (path, list(pdf.columns))
    meta = pq.read_metadata(path).metadata or {}
    provenance = json.loads(meta[b"circuitry"])
    assert provenance["experiment"] == manifest["experiment"], provenance
    assert provenance["experiment_hash"] == manifest["experiment_hash"], provenance
    assert provenance["runs"], provenance
    print(f"ok  {entry['path']:40} {entry['rows']:>8} rows  {len(pdf.columns)} columns: {', '.join(pdf.columns)}")
print(f"{len(manifest['tables'])} tables read with pandas {pd.__version__} and polars {pl.__version__}")
