"""`framerelay serve`: run the daemon that owns the model, the job queue and the cache."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import signal
import sys
from typing import Any

from framerelay.engine.params import DEFAULT_MODEL
from framerelay.errors import InvalidSpecError
from framerelay.service.config import LOOPBACK, DaemonConfig, is_loopback


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve",
        help="run the local daemon (gRPC + HTTP/JSON on 127.0.0.1)",
        description="Run the daemon. Clients find it through the discovery file "
        "(daemon.json in the user config dir, or $FRAMERELAY_CONFIG_DIR).",
    )
    parser.add_argument("--host", default=LOOPBACK, help="address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="gRPC port; 0: any free port")
    parser.add_argument("--http-port", type=int, default=0, help="HTTP/JSON port; 0: any free port")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host that is not a loopback address (anyone reaching it with the token "
        "can read and write files as you)",
    )
    parser.add_argument(
        "--idle-unload",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="unload the model after this long without jobs (default: %(default)s)",
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help="default model: hub id or folder")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--dtype", choices=("fp32", "fp16", "bf16"))
    workers = parser.add_argument_group(
        "several GPUs or machines (docs/scale.md)",
        "Jobs run side by side, one per worker; the windows of a long job are analysed by the "
        "free workers while its own worker edits them in order.",
    )
    workers.add_argument(
        "--gpus",
        metavar="LIST",
        help="the GPUs to run a worker on each: all (default: every visible GPU), none, or "
        "numbers as nvidia-smi shows them, e.g. 0,2",
    )
    workers.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="run N worker processes on the CPU (where there is no GPU, or with --device cpu)",
    )
    workers.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="analyse windows on a Ray cluster: its address (HEAD:6379) or auto; needs "
        "framerelay[cluster]",
    )
    workers.add_argument(
        "--ray-gpus",
        type=float,
        default=1.0,
        metavar="N",
        help="GPUs each window task requests on the cluster (default: %(default)s; 0 for CPU "
        "workers)",
    )
    parser.add_argument(
        "--fake",
        action="store_true",
        help="run jobs without the model: outputs are test patterns (for plugin development)",
    )
    parser.add_argument("--fake-step-seconds", type=float, default=0.05, help=argparse.SUPPRESS)
    parser.add_argument(
        "--no-open",
        action="store_true",
        help="never open the image editor in round trips; only report the file to edit",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from framerelay.service.logsetup import setup_logging

    config = DaemonConfig.from_env(
        host=args.host,
        port=args.port,
        http_port=args.http_port,
        allow_remote=args.allow_remote,
        idle_unload_s=args.idle_unload,
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        no_open=args.no_open or None,
    ).validate()
    if not is_loopback(config.host):
        print(
            f"WARNING: listening on {config.host}, reachable from other machines. Anyone with "
            "the token can submit jobs that read and write files as you.",
            file=sys.stderr,
        )
    log_path = setup_logging(config.log_dir, args.verbose or args.debug)
    print(f"framerelay: logging to {log_path}", file=sys.stderr)
    asyncio.run(serve(config, make_executor(args, config)))
    return 0


def make_executor(args: argparse.Namespace, config: DaemonConfig | None):
    """The executor `serve` runs; `config` may be None with --fake. `--fake` alone is one fake
    worker in the daemon's process (it counts no GPUs); with --workers, --gpus or --ray, fake
    worker processes."""
    from framerelay.jobs.workers import WorkerPlan, worker_slots

    def given(option: str, default: object = None) -> Any:  # the pool's options are optional
        return getattr(args, option, default)

    fake = {"step_seconds": args.fake_step_seconds, "preview_phase": "edit"} if args.fake else None
    plan = WorkerPlan(
        device=config.device if config is not None else None,
        dtype=config.dtype if config is not None else None,
        model=config.model if config is not None else DEFAULT_MODEL,
        cache_dir=config.cache_dir if config is not None else None,
        gpus=given("gpus"),
        workers=given("workers"),
        ray=given("ray"),
        ray_gpus=given("ray_gpus", 1.0),
        fake=fake,
    )
    if plan.ray is not None and not args.fake and importlib.util.find_spec("ray") is None:
        raise InvalidSpecError(
            "--ray needs Ray, which is not installed.", "pip install 'framerelay[cluster]'"
        )
    slots = worker_slots(plan, [] if fake is not None and plan.gpus is None else None)
    if slots is not None:
        from framerelay.jobs.pool import PoolExecutor

        print(
            f"framerelay: {len(slots)} workers: {', '.join(s.name for s in slots)}", file=sys.stderr
        )
        return PoolExecutor(slots)
    if fake is not None:
        from framerelay.jobs.fake_executor import FakeExecutor

        return FakeExecutor(**fake)
    from framerelay.jobs.engine_executor import EngineExecutor

    assert config is not None
    return EngineExecutor(config.model, config.device, config.dtype, config.cache_dir)


async def serve(config: DaemonConfig, executor) -> None:
    from framerelay.service.app import Daemon
    from framerelay.service.discovery import discovery_path

    daemon = Daemon(config, executor)
    found = await daemon.start()
    print(
        f"framerelay daemon ready: gRPC {found.grpc_target}, HTTP {found.http_url}; "
        f"discovery file {discovery_path(config.config_dir)}",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl+C raises instead
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await daemon.stop()
