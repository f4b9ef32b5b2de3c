"""``virl import --format hrbench FILE.parquet``: HR-Bench's parquet as the
TSV the engine reads (same columns: index, question, A-D, answer, category,
cycle_category, image as base64). Written with pyarrow, tab-separated and
quoted as pandas quotes.
"""

from __future__ import annotations

import argparse
import csv
import sys
from typing import Optional

from .verl.importer import read_parquet


def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(prog="virl import --format hrbench", description=__doc__.split("\n\n")[0])
    p.add_argument("--parquet", required=True)
    p.add_argument("--out", required=True, help="the TSV file to write")
    a = p.parse_args(argv)
    table = read_parquet(a.parquet)
    if table is None:
        return 1
    cols = table.column_names
    with open(a.out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(cols)
        for row in table.to_pylist():
            w.writerow(["" if row[c] is None else row[c] for c in cols])
    return 0


if __name__ == "__main__":
    sys.exit(main())
