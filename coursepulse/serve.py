"""Running the HTTP server: one process, or several sharing one port (SO_REUSEPORT)."""

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
from types import FrameType

from aiohttp import web
from prometheus_client import multiprocess

from coursepulse import telemetry
from coursepulse.app import create_app
from coursepulse.logging_setup import configure_logging
from coursepulse.memory import settle_after_start
from coursepulse.settings import Settings
from coursepulse.web.metrics import MULTIPROCESS_DIR

log = logging.getLogger("coursepulse")

SHUTDOWN_TIMEOUT_SECONDS = 10


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it is installed (it is on Linux and macOS), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def serve_forever(
    settings: Settings, *, reuse_port: bool = False, migrate_first: bool = False
) -> None:
    """Serve until SIGINT or SIGTERM, then close websockets (1001) and stop cleanly.

    `migrate_first`: the database did not answer yet; migrate it once it does.
    """
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    telemetry.start_from_environment()  # before the app: its HTTP spans are set up with it
    app = create_app(settings, migrate_first=migrate_first)
    app.on_startup.append(_settle_memory)
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            print=None,
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
            reuse_port=reuse_port or None,
            loop=loop,
        )
    finally:
        telemetry.stop()


async def _settle_memory(_app: web.Application) -> None:
    """Once everything start-up builds exists (the last start-up hook)."""
    settle_after_start()


def _worker(settings: Settings, number: int, migrate_first: bool) -> None:
    configure_logging(settings.log_level, settings.log_format, settings.log_flush_seconds)
    log.info("worker %d (pid %d) serving", number, os.getpid())
    serve_forever(settings, reuse_port=True, migrate_first=migrate_first)


def serve_workers(settings: Settings, workers: int, *, migrate_first: bool = False) -> int:
    """Run `workers` processes on one port; the kernel spreads connections between them.

    Returns the exit status: 0 when every worker stopped cleanly. The workers keep their
    metrics in one folder (prometheus-client's multiprocess mode, a temporary folder unless
    PROMETHEUS_MULTIPROC_DIR names one), so a scrape of any of them sees them all.
    """
    metrics_dir = os.environ.get(MULTIPROCESS_DIR)
    made = metrics_dir is None
    if metrics_dir is None:
        metrics_dir = tempfile.mkdtemp(prefix="coursepulse-metrics-")
        os.environ[MULTIPROCESS_DIR] = metrics_dir  # the spawned workers inherit it
    try:
        return _run_workers(settings, workers, metrics_dir, migrate_first=migrate_first)
    finally:
        if made:
            del os.environ[MULTIPROCESS_DIR]
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_workers(settings: Settings, workers: int, metrics_dir: str, *, migrate_first: bool) -> int:
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=_worker, args=(settings, number, migrate_first), name=f"coursepulse-{number}"
        )
        for number in range(1, workers + 1)
    ]
    for process in processes:
        process.start()

    def forward(signum: int, _frame: FrameType | None) -> None:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    for process in processes:
        process.join()
        status = status or (process.exitcode or 0)
        if process.pid is not None:
            multiprocess.mark_process_dead(process.pid, metrics_dir)
    return status


def supports_reuse_port() -> bool:
    return sys.platform.startswith(("linux", "freebsd", "darwin"))
