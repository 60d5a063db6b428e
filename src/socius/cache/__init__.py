"""Implementations of the cache port: in-process (embedded) and Redis (clustered)."""
