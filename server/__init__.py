"""The bundled reference server: FastAPI on uvicorn, SQLAlchemy Core (async) storage."""

from server._app import create_app, sweep_once
from server._client import AdminApiError, AdminClient, ServerUnreachable
from server._db import database_url
from server._migrations import Migrated, MigrationError, migrate_database, migration_sql
from server._run import ReadyServer, RunningServer, run_in_thread, uvicorn_config
from server._security import load_admin_token
from server._workers import Supervisor, serve_worker

__all__ = [
    "AdminApiError",
    "AdminClient",
    "Migrated",
    "MigrationError",
    "ReadyServer",
    "RunningServer",
    "ServerUnreachable",
    "Supervisor",
    "create_app",
    "database_url",
    "load_admin_token",
    "migrate_database",
    "migration_sql",
    "run_in_thread",
    "serve_worker",
    "sweep_once",
    "uvicorn_config",
]
