"""One module per workload of WORKLOADS.md; each exposes `run(options) -> int`."""
