"""Run checked jobs as Ray tasks: a local cluster or a real one, same-world jobs one after another.

Scheduling (in the driver): jobs of one world form a chain in file order; a job is submitted only
after the previous job of its world finished, so a world's keyframes are generated once (the
first job saves the world, the next ones load it and find it covered) and no two workers ever
write the same world at once. Different worlds run in parallel, at most ``workers`` at a time.
A worker process that dies is retried by Ray (``max_retries``); a job that fails is reported
and the rest go on.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from srender_ros.batch.jobs import Job
from srender_ros.batch.run_job import run_job
from srender_ros.errors import BackendUnavailableError, InputError, SrenderError

#: Ray retries of a job whose worker process died (our own errors are not retried).
MAX_RETRIES = 2


class ClusterUnreachableError(SrenderError):
    """The Ray address given cannot be reached."""


def check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Fail fast (one line) when a ``host:port`` or ``ray://host:port`` address does not answer.

    ``auto`` and ``local`` are left to Ray. Raises ClusterUnreachableError.
    """
    if address in ("auto", "local"):
        return
    parsed = urlparse(address if "://" in address else f"ray://{address}")
    host, port = parsed.hostname, parsed.port
    if not host or not port:
        raise InputError(f"--address {address!r}: expected HOST:PORT or ray://HOST:PORT (or 'auto')")
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ClusterUnreachableError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from exc


def connect(address: str | None, workers: int) -> Any:
    """ray.init: a new local cluster with ``workers`` CPUs (address None), else join ``address``."""
    try:
        import ray
    except ImportError as exc:
        raise BackendUnavailableError(f"srender batch needs Ray: pip install ray ({exc})") from exc
    if address is None:
        # Each worker runs the CPU renderer; give it its share of the cores, not all of them.
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        env = {"NUMBA_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
        if os.environ.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        ray.init(address="local", num_cpus=workers, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False, runtime_env={"env_vars": env})
    else:
        check_reachable(address)
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, RuntimeError, TimeoutError) as exc:
            raise ClusterUnreachableError(f"cannot join the Ray cluster at {address}: {exc}") from exc
    return ray


def world_chains(jobs: list[Job]) -> list[deque[Job]]:
    """Jobs grouped by world, file order kept inside each group (groups in order of first job)."""
    chains: dict[str, deque[Job]] = {}
    for job in jobs:
        chains.setdefault(job.world_id, deque()).append(job)
    return list(chains.values())


def run_batch(jobs: list[Job], out_dir: Path, world_dir: str | None, address: str | None, workers: int | None,
              on_done: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run every job on Ray; returns one record per job (see run_job), in file order.

    Args:
        workers: parallel jobs (local cluster: its CPU count; default 2 locally, the cluster's CPUs
            when joining one).
        on_done: called with each record as its job finishes (progress display).
    Raises:
        ClusterUnreachableError / BackendUnavailableError: no cluster to run on (nothing ran).
    """
    if workers is not None and workers < 1:
        raise InputError(f"--workers {workers}: must be >= 1")
    ray = connect(address, workers or 2)
    try:
        slots = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(run_job)
        ready = deque((c.popleft(), c) for c in world_chains(jobs))
        running: dict[Any, tuple[Job, deque[Job]]] = {}
        records: dict[str, dict[str, Any]] = {}
        out = str(out_dir)
        while ready or running:
            while ready and len(running) < slots:
                job, chain = ready.popleft()
                running[task.remote(job, out, world_dir)] = (job, chain)
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                job, chain = running.pop(ref)
                try:
                    rec = ray.get(ref)
                except Exception as exc:  # the worker died MAX_RETRIES + 1 times, or Ray failed
                    rec = {"name": job.name, "world_id": job.world_id, "status": "failed", "host": "?", "pid": 0,
                           "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                           "frames": 0, "keyframes": 0, "gaussians": 0, "seconds": 0.0}
                records[job.name] = rec
                if on_done is not None:
                    on_done(rec)
                if chain:  # the next job of this world may start now
                    ready.append((chain.popleft(), chain))
        return [records[j.name] for j in jobs]
    finally:
        ray.shutdown()


def summary_table(records: list[dict[str, Any]]) -> str:
    """A text table: job, status, world, frames, keyframes, seconds, where it ran, error."""
    header = ["job", "status", "world", "frames", "keyframes", "seconds", "ran on", "error"]
    rows = [[r["name"], r["status"], r["world_id"], str(r["frames"]), str(r["keyframes"]), f"{r['seconds']:.1f}",
             f"{r['host']}:{r['pid']}", (r.get("error") or "")[:100]] for r in records]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)
