"""Writes the tabular datasets scikit-learn ships inside its PyPI package as CSV files.

    .cache/py/bin/python tools/sklearn_tabular.py OUT_DIR [wine breast_cancer]

Each file is `<name>.csv`: a header of scikit-learn's feature names then `target` (the class
index), one row per sample in scikit-learn's order, values printed with repr() (shortest exact
decimal). The tests and bench/tabular.ts write them at run time; the data is never committed.
Features span several orders of magnitude (wine: proline ~1000, hue ~1; breast_cancer: area
~1000, smoothness ~0.1), which is what the `normalize` param of the csv dataset is for.
"""
import csv
import os
import sys

from sklearn import datasets

LOADERS = {"wine": datasets.load_wine, "breast_cancer": datasets.load_breast_cancer}


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    out = sys.argv[1]
    names = sys.argv[2:] or sorted(LOADERS)
    os.makedirs(out, exist_ok=True)
    for name in names:
        if name not in LOADERS:
            raise SystemExit(f"unknown dataset {name!r}: expected one of {sorted(LOADERS)}")
        d = LOADERS[name]()
        columns = [str(c).replace(" ", "_") for c in d.feature_names]
        with open(os.path.join(out, f"{name}.csv"), "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow([*columns, "target"])
            for x, y in zip(d.data, d.target):
                w.writerow([*(repr(float(v)) for v in x), int(y)])
        print(f"{name}: {d.data.shape[0]} rows, {d.data.shape[1]} features")


if __name__ == "__main__":
    main()
