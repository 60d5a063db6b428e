"""One module per workload of docs/workloads.md; each exposes `run(options) -> int`."""
