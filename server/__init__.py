"""The bundled reference server: FastAPI on uvicorn, SQLAlchemy Core (async) storage."""

from server._app import create_app, sweep_once
from server._client import AdminApiError, AdminClient, ServerUnreachable
from server._run import RunningServer, run_in_thread, uvicorn_config
from server._security import load_admin_token

__all__ = [
    "AdminApiError",
    "AdminClient",
    "RunningServer",
    "ServerUnreachable",
    "create_app",
    "load_admin_token",
    "run_in_thread",
    "sweep_once",
    "uvicorn_config",
]
