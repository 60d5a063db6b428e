"""The end of every workload run: the report as JSON and a plot in bench/results/, the
table on the terminal, and where all of it came from and went."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console

from bench.harness.plot import write_plot
from bench.harness.results import Report
from bench.harness.source import Source

__all__ = ["publish"]


def publish(
    report: Report,
    source: Source,
    *,
    width: int,
    more: Callable[[Console], None] | None = None,
) -> None:
    """Write the report's JSON and plot, print its table (``width`` columns when the output
    is not a terminal), then ``more`` (extra tables), then the paths."""
    json_path = report.write_json()
    png_path = write_plot(report)
    out = Console()
    if not out.is_terminal:
        out = Console(width=width)
    report.print(out)
    if more is not None:
        more(out)
    out.print(f"measured: {source.description}\nresults:  {json_path}\nplot:     {png_path}")
