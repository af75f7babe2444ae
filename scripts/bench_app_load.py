"""Load benchmark of the web app: N concurrent gradio_client users restoring 256x256 scans.

Each client thread uploads a 256 x 256 px scan and calls /restore; the app queues the requests
(STM_ZOO_APP_CONCURRENCY model runs at a time) and every one must succeed. Prints per-request
latency (from submission, so it includes the time spent waiting in the queue), the total wall time
and the throughput. Not part of CI.

    python scripts/bench_app_load.py                                  # in-process app, classical
    python scripts/bench_app_load.py --family fm --random-init        # the paper's small FM
                                                                      # network, random weights
    python scripts/bench_app_load.py --url http://127.0.0.1:7860/ --family fm   # a running app

`--random-init` writes random-init entries of the zoo's network presets into a temporary zoo, so
the cost of a trained model is measured before its weights exist (the cost does not depend on the
weights). The scan is the app's own simulated 256 x 256 px example unless --file is given.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from stm_zoo.registry import CLASSICAL  # noqa: E402

log = logging.getLogger("bench_app_load")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running app (default: start one in this process)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=1, help="requests per client")
    parser.add_argument("--file", type=Path, help="scan to upload (default: simulated 256x256)")
    parser.add_argument("--task", default="restore", choices=["restore", "sr2", "sr4"])
    parser.add_argument("--family", default=CLASSICAL)
    parser.add_argument("--size", default="small", choices=["small", "large"])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument(
        "--concurrency", type=int, help="model runs at a time (in-process app only)"
    )
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="serve random-init entries of the paper's networks (in-process app only)",
    )
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    return parser.parse_args()


def random_init_zoo(folder: Path, task: str, family: str, size: str) -> None:
    """Write one zoo entry with the family's real network preset and random weights."""
    import torch

    from stm_zoo.entry_format import EntryConfig, write_entry
    from stm_zoo.methods import get_method
    from stm_zoo.nn import UNet
    from stm_zoo.registry import SR_FACTOR

    torch.manual_seed(0)
    network = get_method(family).network_config(size)
    entry = EntryConfig(
        task=task,
        family=family,
        size=size,
        network=network,
        sr_factor=SR_FACTOR[task],
        training={"note": "random init, for load benchmarks only"},
    )
    card = "Random-init weights for load benchmarks; not a model."
    write_entry(folder / entry.key.subdir, entry, UNet(network).state_dict(), card)


def start_app(args: argparse.Namespace, work: Path) -> tuple[Any, str]:
    """Launch app.py in this process with its files under `work`; returns (demo, url)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ["GRADIO_TEMP_DIR"] = str(work / "gradio")
    os.environ["STM_ZOO_APP_TMP"] = str(work / "requests")
    if args.concurrency:
        os.environ["STM_ZOO_APP_CONCURRENCY"] = str(args.concurrency)
    if args.random_init:
        os.environ["STM_ZOO_DIR"] = str(work / "zoo")
        random_init_zoo(work / "zoo", args.task, args.family, args.size)
    spec = importlib.util.spec_from_file_location("stm_zoo_app", REPO_ROOT / "app.py")
    app = sys.modules["stm_zoo_app"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    demo = app.build_app()
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, **app.launch_options())
    return demo, url


def one_client(
    url: str, scan: Path, args: argparse.Namespace, download: Path, out: list[dict[str, Any]]
) -> None:
    """Run `args.requests` restores in sequence and record each outcome."""
    from gradio_client import Client, handle_file

    client = Client(url, download_files=str(download), verbose=False)
    for _ in range(args.requests):
        started = time.perf_counter()
        record: dict[str, Any] = {}
        try:
            *_, summary, files = client.predict(
                [handle_file(str(scan))],
                "Z",
                "forward",
                None,
                args.task,
                args.family,
                args.size,
                args.steps,
                args.device,
                0,
                args.samples,
                False,
                "gold",
                api_name="/restore",
            )
            record.update(ok=len(files) >= 3, summary=summary.splitlines()[0])
        except Exception as error:  # the benchmark counts failures instead of stopping
            record.update(ok=False, error=f"{type(error).__name__}: {error}")
        record["seconds"] = time.perf_counter() - started
        out.append(record)


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per file download otherwise
    with tempfile.TemporaryDirectory(prefix="stm_zoo_bench_") as tmp:
        work = Path(tmp)
        if args.file is None:
            os.environ.setdefault("STM_ZOO_APP_EXAMPLES", str(work / "examples"))
            from training.explorer import example_scans

            scan = example_scans()[0].path  # 256 x 256 px, 50 nm
        else:
            scan = args.file
        demo, url = (None, args.url) if args.url else start_app(args, work)
        results: list[dict[str, Any]] = []
        threads = [
            threading.Thread(target=one_client, args=(url, scan, args, work / f"c{i}", results))
            for i in range(args.clients)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        if demo is not None:
            demo.close()

    from stm_zoo.timing import Timing, load_average

    latency = Timing(tuple(r["seconds"] for r in results), load_average())
    ok = sum(r["ok"] for r in results)
    report = {
        "clients": args.clients,
        "requests": len(results),
        "succeeded": ok,
        "model": f"{args.task}/{args.family}-{args.size}, {args.steps} steps, {args.device}",
        "concurrency": None
        if args.url
        else args.concurrency or int(os.environ.get("STM_ZOO_APP_CONCURRENCY", 1)),
        "latency_s": {
            "min": round(latency.min, 2),
            "median": round(latency.median, 2),
            "max": round(latency.max, 2),
        },
        "wall_s": round(wall, 2),
        "requests_per_min": round(60 * len(results) / wall, 2),
        "cpu_threads": os.cpu_count(),
        "load_average": round(latency.load, 2),
    }
    for record in results:
        if not record["ok"]:
            log.error("failed: %s", record.get("error", record))
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if ok == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
