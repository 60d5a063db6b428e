"""Bench results: metrics with per-run values and error counts, ratios to the floor,
the JSON file, and the Rich table printed at the end."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from bench.harness.stats import median

__all__ = ["RESULTS_DIR", "Metric", "Ratio", "Report"]

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"


@dataclass
class Metric:
    key: str
    label: str
    unit: str  # "req/s", "ms", "µs"
    panel: str  # which plot panel shows it
    values: list[float] = field(default_factory=list)  # one per run
    errors: list[int] = field(default_factory=list)  # one per run; every one must be 0
    target: float | None = None
    higher_is_better: bool = True
    is_floor: bool = False
    note: str = ""
    phase: str = ""  # metrics measured by the same load share its errors (counted once)

    def add(self, value: float, errors: int = 0) -> None:
        self.values.append(float(value))
        self.errors.append(int(errors))

    @property
    def median(self) -> float:
        return median(self.values)

    @property
    def total_errors(self) -> int:
        return sum(self.errors)

    @property
    def meets_target(self) -> bool | None:
        if self.target is None or math.isnan(self.median):
            return None
        if self.higher_is_better:
            return self.median >= self.target
        return self.median <= self.target

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "unit": self.unit,
            "median": self.median,
            "values": self.values,
            "errors": self.errors,
            "total_errors": self.total_errors,
            "target": self.target,
            "target_is_minimum": self.higher_is_better,
            "meets_target": self.meets_target,
            "is_floor": self.is_floor,
            "panel": self.panel,
            "phase": self.phase,
            "note": self.note,
        }


@dataclass
class Ratio:
    """metric ÷ floor, computed within each run (same machine state), then the median."""

    key: str
    label: str
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return median(self.values)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "median": self.median, "values": self.values}


def _fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "-"
    if unit == "req/s":
        return f"{value:,.0f} {unit}"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}"


def _guess_panel(label: str, unit: str) -> str:
    """Results written before metrics recorded their panel."""
    if unit == "req/s":
        return "throughput (requests/s)"
    if unit == "ms":
        return "latency (ms)"
    return (
        "server CPU per request (µs)"
        if label.startswith("server CPU")
        else f"in-process cost ({unit} per call)"
    )


def _guess_phase(key: str) -> str:
    """Results written before metrics recorded their phase: cpu_me, me_p99 -> me."""
    base = key.removeprefix("cpu_").split("_", 1)[0]
    return {"authenticate": "verify"}.get(base, base)


@dataclass
class Report:
    workload: str
    stack: str
    started_at: datetime
    machine: dict[str, Any]
    config: dict[str, Any]
    metrics: dict[str, Metric] = field(default_factory=dict)
    ratios: dict[str, Ratio] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)  # raw per-run details
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    finished_at: datetime | None = None

    def metric(self, key: str, label: str, unit: str, panel: str, **kw: Any) -> Metric:
        m = Metric(key, label, unit, panel, **kw)
        self.metrics[key] = m
        return m

    def ratio(self, key: str, label: str) -> Ratio:
        r = Ratio(key, label)
        self.ratios[key] = r
        return r

    @property
    def total_errors(self) -> int:
        by_phase = {m.phase or m.key: m.total_errors for m in self.metrics.values()}
        return sum(by_phase.values())

    @property
    def stem(self) -> str:
        stamp = self.started_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"{self.workload}-{self.stack}-{stamp}"

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "stack": self.stack,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "total_errors": self.total_errors,
            "machine": self.machine,
            "config": self.config,
            "summary": {k: m.to_json() for k, m in self.metrics.items()},
            "ratios": {k: r.to_json() for k, r in self.ratios.items()},
            "notes": self.notes,
            "warnings": self.warnings,
            "runs": self.runs,
        }

    @classmethod
    def from_json_file(cls, path: Path) -> Report:
        """A report read back from its JSON (to plot it again)."""
        data = json.loads(path.read_text())
        report = cls(
            workload=data["workload"],
            stack=data["stack"],
            started_at=datetime.fromisoformat(data["started_at"]),
            machine=data["machine"],
            config=data["config"],
            runs=data["runs"],
            notes=data.get("notes", []),
            warnings=data.get("warnings", []),
        )
        for key, m in data["summary"].items():
            report.metrics[key] = Metric(
                key,
                m["label"],
                m["unit"],
                m.get("panel") or _guess_panel(m["label"], m["unit"]),
                values=m["values"],
                errors=m["errors"],
                target=m["target"],
                higher_is_better=m["target_is_minimum"],
                is_floor=m["is_floor"],
                note=m.get("note", ""),
                phase=m.get("phase") or _guess_phase(key),
            )
        for key, r in data["ratios"].items():
            report.ratios[key] = Ratio(key, r["label"], values=r["values"])
        return report

    def write_json(self, directory: Path = RESULTS_DIR) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.stem}.json"
        path.write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n")
        return path

    def print(self, console: Console) -> None:
        runs = self.config.get("runs", "?")
        table = Table(
            title=f"{self.workload} · {self.stack} · median of {runs} runs",
            caption=f"{self.machine.get('cores')} cores ({self.machine.get('cpu_model')}), "
            "shared by load generator, server and database",
        )
        table.add_column("metric")
        table.add_column("median", justify="right")
        table.add_column("runs", justify="right")
        table.add_column("errors", justify="right")
        table.add_column("target", justify="right")
        table.add_column("", justify="center")
        for m in self.metrics.values():
            spread = " / ".join(_fmt(v, "").strip() for v in m.values)
            errors = f"[bold red]{m.total_errors}[/]" if m.total_errors else "0"
            if m.target is None:
                target, verdict = "", ""
            else:
                sign = "≥" if m.higher_is_better else "≤"
                target = f"{sign} {_fmt(m.target, m.unit)}"
                verdict = "[green]ok[/]" if m.meets_target else "[red]miss[/]"
            label = f"[dim]{m.label}[/]" if m.is_floor else m.label
            table.add_row(label, _fmt(m.median, m.unit), spread, errors, target, verdict)
        for r in self.ratios.values():
            spread = " / ".join(f"{v:.3f}" for v in r.values)
            table.add_row(r.label, f"{r.median:.3f}", spread, "", "", "")
        console.print(table)
        for warning in self.warnings:
            console.print(f"[bold yellow]warning:[/] {warning}")
        if self.total_errors:
            bad = ", ".join(
                f"{m.label}: {m.total_errors}" for m in self.metrics.values() if m.total_errors
            )
            console.print(
                Panel(
                    f"[bold]{self.total_errors} ERRORS[/] — these figures are not valid: {bad}",
                    style="bold red",
                )
            )
        else:
            console.print("[green]0 errors in every figure.[/]")
