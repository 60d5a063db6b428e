"""A PNG next to the JSON: one panel per metric group, median bars, per-run dots, targets."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend
from matplotlib.axes import Axes

from bench.harness.results import RESULTS_DIR, Metric, Report

__all__ = ["write_plot"]


def _panel(ax: Axes, title: str, metrics: list[Metric]) -> None:
    labels = [m.label for m in metrics]
    ys = list(range(len(metrics)))[::-1]
    medians = [0.0 if math.isnan(m.median) else m.median for m in metrics]
    colors = ["#9aa5b1" if m.is_floor else "#3b6ea8" for m in metrics]
    ax.barh(ys, medians, color=colors, height=0.6)
    for y, m, bar in zip(ys, metrics, medians, strict=True):
        ax.scatter(m.values, [y] * len(m.values), color="black", s=12, zorder=3)
        if m.target is not None:
            ax.plot([m.target, m.target], [y - 0.4, y + 0.4], color="#d62728", lw=2, zorder=4)
        text = f"{bar:,.0f}" if bar >= 100 else f"{bar:.3g}"
        if m.total_errors:
            text += f"  ERRORS: {m.total_errors}"
        ax.annotate(
            text,
            (max([bar, *m.values]), y),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
            color="#d62728" if m.total_errors else "black",
        )
    ax.set_yticks(ys, labels, fontsize=9)
    ax.set_title(title, fontsize=10, loc="left")
    positive = [v for m in metrics for v in [*m.values, m.target or 0.0] if v > 0]
    if positive and max(positive) / min(positive) > 50:
        ax.set_xscale("log")
    ax.grid(axis="x", alpha=0.3)
    right = max(positive, default=1.0)
    ax.set_xlim(right=right * (3 if ax.get_xscale() == "log" else 1.25))


def write_plot(report: Report, directory: Path = RESULTS_DIR) -> Path:
    panels: dict[str, list[Metric]] = {}
    for m in report.metrics.values():
        panels.setdefault(m.panel, []).append(m)
    heights = [max(1.2, 0.45 * len(ms) + 0.6) for ms in panels.values()]
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=(10, sum(heights) + 1.6),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    for ax, (title, metrics) in zip(axes[:, 0], panels.items(), strict=True):
        _panel(ax, title, metrics)
    machine = report.machine
    ratios = "   ".join(f"{r.label}: {r.median:.2f}" for r in report.ratios.values())
    fig.suptitle(
        f"socius {report.workload} · {report.stack} · median of {report.config.get('runs')} "
        f"runs · {report.started_at:%Y-%m-%d %H:%M} UTC",
        fontsize=12,
        x=0.01,
        ha="left",
    )
    status = f"{report.total_errors} ERRORS" if report.total_errors else "0 errors"
    fig.text(
        0.01,
        0.005,
        f"{machine.get('cores')} cores {machine.get('cpu_model')}, "
        f"{machine.get('memory_gib')} GiB, shared by "
        f"load generator, server and database · {status}\nratios to floor: {ratios}\n"
        "bars: median; dots: runs; red ticks: targets (docs/workloads.md); grey: floors",
        fontsize=8,
        va="bottom",
    )
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{report.stem}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    """`python -m bench.harness.plot RESULT.json...`: draw the PNGs again from the JSON."""
    import sys

    for name in sys.argv[1:]:
        path = Path(name)
        print(write_plot(Report.from_json_file(path), path.parent))


if __name__ == "__main__":
    main()
