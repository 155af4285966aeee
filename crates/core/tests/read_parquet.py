"""Independent reader for the tests: pyarrow reads Parquet files sluice wrote.

Usage: python read_parquet.py FILE...
Prints one JSON object: the Parquet schema of the first file (physical and logical type per
column) and every row of every file, with dates/timestamps as ISO text and decimals as text.
"""
import json
import sys

import pyarrow.parquet as pq


def plain(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if hasattr(v, "isoformat"):
        return v.isoformat(sep=" ") if hasattr(v, "hour") else v.isoformat()
    return str(v)


files = sys.argv[1:]
meta = pq.ParquetFile(files[0]).schema
schema = [
    {
        "name": meta.column(i).name,
        "physical": meta.column(i).physical_type,
        "logical": str(meta.column(i).logical_type),
        "max_definition_level": meta.column(i).max_definition_level,
    }
    for i in range(len(meta))
]
rows = []
for f in files:
    for r in pq.read_table(f).to_pylist():
        rows.append({k: plain(v) for k, v in r.items()})
print(json.dumps({"schema": schema, "rows": rows}))
