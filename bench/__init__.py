"""socius benchmarks: `socius bench <workload>` (see WORKLOADS.md and bench/README.md)."""
