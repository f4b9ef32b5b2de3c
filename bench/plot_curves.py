#!/usr/bin/env python3
"""Plots the curves.csv written by `virl experiment ablation|h0` into a PNG.

usage: python3 bench/plot_curves.py CURVES.csv OUT.png [TITLE]
(needs matplotlib: pip install matplotlib)
"""
import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def smooth(xs, k=9):
    out = []
    for i in range(len(xs)):
        w = [x for x in xs[max(0, i - k + 1) : i + 1] if x is not None]
        out.append(sum(w) / len(w) if w else None)
    return out


def main():
    src, dst = sys.argv[1], sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else src
    runs = defaultdict(list)
    for row in csv.DictReader(open(src)):
        runs[row["run"]].append(row)
    panels = [("reward", "mean reward"), ("acc_ans", "Acc_ans"), ("acc_rat", "Acc_rat"), ("zooms", "zooms / trajectory")]
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for ax, (key, label) in zip(axes, panels):
        for name, rows in runs.items():
            it = [int(r["iteration"]) for r in rows]
            ys = [float(r[key]) if r[key] != "" else None for r in rows]
            ax.plot(it, smooth(ys), label=name)
        warm = [int(r["iteration"]) for r in next(iter(runs.values())) if r["warmup"] == "true"]
        if warm:
            ax.axvspan(0, max(warm) + 1, color="0.9", label="imitation warm-up")
        ax.set_title(label)
        ax.set_xlabel("iteration")
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(dst, dpi=80)


if __name__ == "__main__":
    main()
