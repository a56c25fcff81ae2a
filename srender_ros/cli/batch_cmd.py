"""`srender batch`: render many jobs on Ray (a local cluster, or join one with --address)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("batch", help="render many jobs on a Ray cluster",
                       description="Render the jobs of a YAML file (each like `srender render`) on Ray. Each job "
                                   "writes OUT/<job>/metrics.json and OUT/<job>/frames/, published only when complete.")
    p.add_argument("--jobs", required=True, help="jobs file (YAML list of {prompt, trajectory, ...}; docs/agents.md)")
    p.add_argument("--out", required=True, help="output folder (one subfolder per job)")
    p.add_argument("--world-dir", default=None,
                   help="world store shared by all jobs (default $SRENDER_WORLD_DIR or ~/.cache/srender/worlds)")
    p.add_argument("--address", default=None,
                   help="join this Ray cluster (HOST:PORT, ray://HOST:PORT or auto); default: start a local one")
    p.add_argument("--workers", type=int, default=None,
                   help="jobs in parallel (default: 2 locally, the cluster's CPUs with --address)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from srender_ros.batch.jobs import load_jobs
    from srender_ros.batch.ray_runner import check_reachable, run_batch, summary_table
    from srender_ros.cli.outputs import write_json

    jobs = load_jobs(args.jobs)  # the whole file is checked before anything starts
    if args.address is not None:
        check_reachable(args.address)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    worlds = len({j.world_id for j in jobs})
    where = args.address or f"a local Ray cluster ({args.workers or 2} workers)"
    print(f"srender batch: {len(jobs)} jobs in {worlds} worlds on {where}")
    bar = tqdm(total=len(jobs), unit="job", desc="batch", disable=args.no_progress)

    def done(rec: dict[str, object]) -> None:
        bar.set_postfix_str(f"{rec['name']}: {rec['status']}")
        bar.update(1)

    try:
        records = run_batch(jobs, out, args.world_dir, args.address, args.workers, on_done=done)
    finally:
        bar.close()
    write_json(out / "summary.json", {"jobs": records})
    print(summary_table(records))
    failed = [r["name"] for r in records if r["status"] != "ok"]
    if failed:
        print(f"srender batch: {len(failed)} of {len(records)} jobs failed: {', '.join(failed)} "
              f"(details in {out / 'summary.json'})")
        return 1
    print(f"srender batch: all {len(records)} jobs done; outputs in {out}")
    return 0


