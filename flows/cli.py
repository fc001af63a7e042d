"""The installed ``resistomics`` command: the library CLI plus the Prefect-backed
commands ``serve`` and ``demo`` (the library itself never imports Prefect)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from resistomics.cli import app, fail
from resistomics.errors import ConfigError, error_line

__all__ = ["app", "main"]


@app.command()
def demo(
    root: Annotated[
        Path,
        typer.Option(
            help="Folder for the demo's data, Prefect database and plots: new, empty, or "
            "an earlier demo's (which is wiped first)."
        ),
    ] = Path(".resistomics-demo"),
    cells_per_sample: Annotated[int, typer.Option(help="Cells per generated sample.")] = 500,
    keep_serving: Annotated[
        bool, typer.Option(help="Keep the Prefect server and deployments up until Ctrl-C.")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="Wipe --root even if it is not an earlier demo's folder.")
    ] = False,
) -> None:
    """Run the main job on the embedded default: Prefect server, local Dask cluster,
    landing-zone events driving ingest -> validation -> analyse.

    Example: resistomics demo --keep-serving
    """
    from flows.demo import run_demo

    try:
        code = run_demo(
            root, cells_per_sample=cells_per_sample, keep_serving=keep_serving, force=force
        )
    except ConfigError as exc:
        fail(error_line(exc))
    if code:
        raise typer.Exit(code)


@app.command()
def serve(
    prefect_home: Annotated[
        Path | None,
        typer.Option(help="PREFECT_HOME for a server started here (default: <data root>/prefect)."),
    ] = None,
    port: Annotated[int, typer.Option(help="Port of a server started here.")] = 4200,
    host: Annotated[
        str,
        typer.Option(
            help="Interface the Prefect server, the Dask scheduler, workers and dashboard "
            "listen on. Loopback by default: anyone who reaches the scheduler can run code "
            "on the workers, so open it (0.0.0.0) only behind a firewall or with TLS.",
        ),
    ] = "127.0.0.1",
    limit: Annotated[int, typer.Option(help="Most flow runs at once.")] = 2,
    dashboard: Annotated[
        bool, typer.Option(help="Start the Dask dashboard (needs bokeh).")
    ] = False,
) -> None:
    """Serve the deployments (triggers + schedules) with a local Dask cluster.

    Uses the Prefect server in PREFECT_API_URL if set; otherwise starts one on
    HOST:PORT (127.0.0.1 unless --host) with its database under --prefect-home. Every
    port of the local Dask cluster is on HOST too. Blocks until Ctrl-C.

    Example: resistomics serve --port 4200
    """
    from distributed import LocalCluster

    from flows._server import client_env, prefect_server
    from resistomics.config import load_settings

    settings = load_settings()
    home = Path(prefect_home or (settings.local_root / "prefect")).absolute()
    os.environ.setdefault("PREFECT_HOME", str(home))
    # Prefect is imported only after these are set (it reads its settings at import).
    os.environ["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "false"
    # Worker processes ignore Ctrl-C (the disposition survives their spawn): the serving
    # process shuts them down cleanly instead of each printing a KeyboardInterrupt.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        cluster = LocalCluster(
            n_workers=settings.cluster.n_workers,
            threads_per_worker=settings.cluster.threads_per_worker,
            memory_limit=settings.cluster.memory_limit,
            processes=True,
            host=host,
            # bokeh's dashboard server cannot be stopped cleanly from a synchronous close
            # (off unless asked); the HTTP port is a free one either way, or distributed
            # binds 8787 and warns when another cluster holds it. On HOST: ":0" would
            # listen on every interface.
            dashboard_address=f"{host}:0",
            scheduler_kwargs={"dashboard": dashboard},
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    with cluster:
        os.environ["RESISTOMICS_CLUSTER__KIND"] = "address"
        os.environ["RESISTOMICS_CLUSTER__ADDRESS"] = cluster.scheduler_address
        typer.echo(f"Dask scheduler: {cluster.scheduler_address}")
        if dashboard:
            typer.echo(f"Dask dashboard: {cluster.dashboard_link}")
        if os.environ.get("PREFECT_API_URL"):
            _serve(limit)
            return
        try:
            with prefect_server(home, port=port, host=host) as server:
                os.environ.update(client_env(home, server.api_url))
                typer.echo(f"Prefect UI: {server.ui_url}")
                _serve(limit)
        except (RuntimeError, TimeoutError) as exc:
            fail(f"prefect server ({home}): [server-start] {exc}")


def _serve(limit: int) -> None:
    from flows.serve import serve_all

    with contextlib.suppress(KeyboardInterrupt):
        serve_all(limit=limit)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())


if __name__ == "__main__":
    main()
