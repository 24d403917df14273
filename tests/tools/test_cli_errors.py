"""The command line as a new user meets it when things go wrong: one readable line saying
what happened and what to do, the documented exit code, never a traceback."""

from __future__ import annotations

import os
import re
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest

from server import RunningServer, run_in_thread
from tests.server.conftest import make_settings
from tests.server.server_process import free_port
from tools import main

REPO = Path(__file__).parents[2]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[RunningServer]:
    with run_in_thread(make_settings(), tmp_path / "srv") as running:
        yield running


def _admin(url: str, token: str, tmp_path: Path, *args: str) -> list[str]:
    return ["admin", *args, "--server", url, "--token", token, "--data-dir", str(tmp_path / "cli")]


def _one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("signage: ")
    return lines[0]


def test_server_down_is_one_line_and_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(_admin(url, "t", tmp_path, "devices")) == 3
    line = _one_line(capsys.readouterr().err)
    assert line == (
        f'signage: cannot reach the server at {url} (connection refused): is "signage server" '
        "running, and is this its address?"
    )


class _NotSignage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html><body>It works!</body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


def test_another_web_server_on_that_port_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    httpd = HTTPServer(("127.0.0.1", 0), _NotSignage)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        assert main(_admin(url, "t", tmp_path, "devices")) == 3
    finally:
        httpd.shutdown()
        httpd.server_close()
    line = _one_line(capsys.readouterr().err)
    assert "is not a signage server" in line and "404" in line and url in line


class _Garbage(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")


def test_a_port_that_does_not_speak_http_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socketserver.TCPServer(("127.0.0.1", 0), _Garbage) as tcp:
        threading.Thread(target=tcp.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{tcp.server_address[1]}"
        try:
            assert main(_admin(url, "t", tmp_path, "devices")) == 3
        finally:
            tcp.shutdown()
    line = _one_line(capsys.readouterr().err)
    assert "does not speak HTTP" in line and url in line


def test_missing_files_are_one_line(
    live: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.png"
    for action in ("upload", "playlist", "layout", "schedule"):
        assert main(_admin(live.url, live.admin_token, tmp_path, action, str(missing))) == 1
        line = _one_line(capsys.readouterr().err)
        assert line == f"signage: cannot read {missing}: no such file or directory", line


def test_bad_json_is_one_line_with_the_place(
    live: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "playlist.json"
    path.write_text('{"id": "p", "items": [}\n')
    assert main(_admin(live.url, live.admin_token, tmp_path, "playlist", str(path))) == 1
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"signage: {path} is not valid JSON: ") and "line 1" in line


def test_permission_denied_is_one_line(live: RunningServer) -> None:
    """A real EACCES: as root the file is read by an unprivileged user (setpriv)."""
    directory = Path(tempfile.mkdtemp())
    try:
        directory.chmod(0o755)
        secret = directory / "playlist.json"
        secret.write_text('{"id": "p", "items": []}')
        secret.chmod(0o000)
        prefix = []
        if os.geteuid() == 0:
            prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        command = [sys.executable, "-m", "tools", *_admin(live.url, "t", directory, "playlist")]
        command.insert(command.index("--server"), str(secret))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAGE_")}
        env["HOME"] = str(directory)
        done = subprocess.run(
            [*prefix, *command], capture_output=True, text=True, cwd=REPO, env=env, timeout=60
        )
    finally:
        subprocess.run(["rm", "-rf", str(directory)], check=False)
    assert done.returncode == 1, done.stderr
    line = _one_line(done.stderr)
    assert line.startswith(f"signage: cannot read {secret}: permission denied")


def test_every_422_field_is_listed(
    live: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_admin(live.url, live.admin_token, tmp_path, "pair", "12", "--name", "x" * 80)) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[0] == "signage: the server refused the request: 2 invalid field(s):"
    assert any(re.search(r"^  body\.code: String should match pattern", line) for line in lines)
    assert any(line.startswith("  body.name: String should have at most 64") for line in lines)


def test_an_empty_file_is_not_uploaded(
    live: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert main(_admin(live.url, live.admin_token, tmp_path, "upload", str(empty))) == 1
    line = _one_line(capsys.readouterr().err)
    assert line == f"signage: {empty} is empty (0 bytes): nothing to upload"


def test_the_lockout_says_when_to_retry(
    live: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _admin(live.url, live.admin_token, tmp_path, "pair", "000000", "--name", "x")
    for _ in range(5):
        assert main(args) == 1
    capsys.readouterr()
    assert main(args) == 1
    line = _one_line(capsys.readouterr().err)
    assert "too many wrong codes" in line
    assert re.search(r"try again in 1[45] min( \d+ s)? \(at \d\d:\d\d\)", line), line


def test_wrong_admin_token_says_where_the_token_is(
    live: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_admin(live.url, "wrong", tmp_path, "devices")) == 1
    line = _one_line(capsys.readouterr().err)
    assert "admin token was refused" in line and "SIGNAGE_ADMIN_TOKEN" in line


def test_control_characters_never_reach_the_terminal(
    live: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = {"Authorization": f"Bearer {live.admin_token}"}
    created = httpx.post(
        f"{live.url}/api/v1/pairings", json={"hardware_id": "hw", "name": "\x1b[2J\x1b]0;pwned\x07"}
    ).json()
    httpx.post(
        f"{live.url}/api/v1/admin/pairings/claim", json={"code": created["code"]}, headers=admin
    )
    assert main(_admin(live.url, live.admin_token, tmp_path, "devices")) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b[2J\\x1b]0;pwned\\x07" in out
    device_id = out.splitlines()[1].split()[0]
    assert main(_admin(live.url, live.admin_token, tmp_path, "revoke", "\x1b[31m" + device_id)) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\\x1b[31m" in err


def test_an_unexpected_error_is_one_line_that_says_it_is_a_bug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import tools.cli._version as version

    def boom(args: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(version, "_run", boom)
    assert main(["version"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("signage: internal error: RuntimeError: boom")
    assert "SIGNAGE_DEBUG=1" in line
    monkeypatch.setenv("SIGNAGE_DEBUG", "1")
    assert main(["version"]) == 1
    assert "Traceback" in capsys.readouterr().err


def _hanging_server() -> tuple[socket.socket, int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    return listener, listener.getsockname()[1]


def test_ctrl_c_is_one_line_and_exit_130() -> None:
    """A real SIGINT while the command waits on a server that never answers."""
    listener, port = _hanging_server()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAGE_")}
    command = [sys.executable, "-m", "tools", "admin", "devices"]
    command += ["--server", f"http://127.0.0.1:{port}", "--token", "t"]
    with listener, tempfile.TemporaryDirectory() as home:
        env["HOME"] = home
        child = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
        try:
            conn, _ = listener.accept()  # the command is now waiting for an answer
            time.sleep(0.2)
            child.send_signal(signal.SIGINT)
            _, err = child.communicate(timeout=30)
            conn.close()
        finally:
            if child.poll() is None:
                child.kill()
    assert child.returncode == 130
    assert _one_line(err) == "signage: interrupted"


def test_a_closed_pipe_is_not_a_traceback() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAGE_")}
    code = "import sys; from tools import main; sys.exit(main(['config', 'show']))"
    with subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env=env,
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        child.stdout.close()  # as `signage config show | head -0` does
        err = child.stderr.read().decode()
        child.wait(timeout=30)
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_a_server_whose_port_is_taken_says_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAGE_")}
        command = [sys.executable, "-m", "tools", "server", "--port", str(port)]
        done = subprocess.run(
            [*command, "--data-dir", str(tmp_path / "srv")],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
            timeout=60,
        )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "address already in use" in done.stderr


@pytest.mark.parametrize("command", [[], ["admin"], ["server"]])
def test_help_lists_the_exit_codes(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    out = capsys.readouterr().out
    for line in (
        "  1    failed",
        "  2    wrong command-line",
        "  3    the server cannot be reached",
    ):
        assert line in out
    assert "  130  interrupted" in out
