"""The nginx site of docs/server.md, run by a real nginx on 127.0.0.1 in front of servers on
loopback: for ``signage bench server --replicas`` (a replica killed behind it) and the tests
that check the documented site (tests/server/test_nginx.py, test_replicas.py).

The site is the documentation's own text with only ports, certificate and upstream servers
substituted, so what is measured and tested is what an operator deploys.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tools.bench._engines import EngineUnavailable, free_port
from tools.bench._processes import stop

DOC = Path(__file__).parents[2] / "docs" / "server.md"
START_TIMEOUT_S = 20.0
# Each header names the replica that answered: how the bench knows which devices a kill cuts.
UPSTREAM_HEADER = "x-bench-upstream"


def documented_site() -> str:
    match = re.search(r"^```nginx\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)
    if match is None:
        raise RuntimeError("docs/server.md has no nginx site")
    return match.group(1)


def _substitute(site: str, replacements: list[tuple[str, str]]) -> str:
    for pattern, replacement in replacements:
        site, count = re.subn(pattern, replacement, site, flags=re.M)
        if not count:
            raise RuntimeError(f"the documented nginx site no longer has {pattern!r}")
    return site


@dataclass
class Proxy:
    url: str
    cert: Path
    pid: int

    @property
    def trust(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for 127.0.0.1 (the key type certbot issues by default)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "1", "-keyout", str(key), "-out", str(cert),
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def _main_conf(directory: Path, workers: str, connections: int) -> str:
    temp = {name: directory / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    # Each proxied connection holds two descriptors (client and upstream); no more than this
    # machine allows (nginx would refuse to raise it and say so).
    files = min(2 * connections + 64, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    return f"""
{"user root root;" if os.geteuid() == 0 else ""}
worker_processes {workers};
worker_rlimit_nofile {files};
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    add_header {UPSTREAM_HEADER} $upstream_addr always;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    include {directory}/site.conf;
}}
"""


@contextlib.contextmanager
def nginx(
    upstream: int | list[int],
    directory: Path,
    *,
    workers: str = "1",
    connections: int = 512,
) -> Iterator[Proxy]:
    """The documented site on free ports, in front of the server on ``upstream`` (a port, or
    the ports of several replicas); ``workers``: nginx's ``worker_processes`` (``auto`` is
    Debian's default), ``connections`` its ``worker_connections``."""
    import httpx

    program = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(program).exists():
        raise EngineUnavailable("nginx is not installed (Debian package nginx)")
    directory.mkdir(parents=True)
    cert, key = _certificate(directory)
    tls_port, plain_port = free_port(), free_port()
    ports = [upstream] if isinstance(upstream, int) else upstream
    servers = "\n    ".join(f"server 127.0.0.1:{port};" for port in ports)
    site = _substitute(
        documented_site(),
        [
            (r"server 127\.0\.0\.1:8080;", servers),
            (r"listen 443 ssl http2;", f"listen 127.0.0.1:{tls_port} ssl http2;"),
            (r"listen 80;", f"listen 127.0.0.1:{plain_port};"),
            (r"^\s*listen \[::\]:\d+.*\n", ""),
            (r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};"),
            (r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};"),
        ],
    )
    (directory / "site.conf").write_text(site)
    (directory / "nginx.conf").write_text(_main_conf(directory, workers, connections))
    command = [program, "-p", str(directory), "-c", str(directory / "nginx.conf")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    if checked.returncode != 0:
        raise RuntimeError(f"nginx refused the site: {checked.stderr.strip()}")
    process = subprocess.Popen([*command, "-g", "daemon off;"], stderr=subprocess.PIPE, text=True)
    proxy = Proxy(f"https://127.0.0.1:{tls_port}", cert, process.pid)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited: {process.communicate()[1].strip()}")
            try:
                httpx.get(f"{proxy.url}/healthz", verify=proxy.trust, timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("nginx did not start") from None
                time.sleep(0.1)
        yield proxy
    finally:
        stop(process)
