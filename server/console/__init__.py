"""The web console: server-rendered pages over the admin API, for installers and operators."""

from server.console._install import install_console
from server.console._session import COOKIE as SESSION_COOKIE

__all__ = ["SESSION_COOKIE", "install_console"]
