"""A real redis-server on 127.0.0.1 for the cluster tests (benchmarks/redis_process.py)."""

from __future__ import annotations

from benchmarks.redis_process import REDIS_SERVER, RedisProcess, free_tcp_port

__all__ = ["REDIS_SERVER", "RedisProcess", "free_tcp_port"]
