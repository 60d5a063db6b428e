"""Reusable pieces of the benchmark harness: servers, stacks, load generators, results."""
