"""socius benchmarks: `socius bench <workload>` (see docs/workloads.md and bench/README.md)."""
