"""What uvicorn's HTTP/1.1 implementations cost per streamed write, alone.

A bare ASGI app sends N small SSE-sized body messages; a raw socket reads them on
loopback; the server process's CPU time per write is reported (best of three), with
uvicorn's h11 and httptools protocols and with ours on each (``BoundedH11Protocol``,
``BoundedHttpToolsProtocol``: docs/adr/1004-the-server-on-httptools.md). Loopback only,
bounded.

    functions/venv/bin/python -m bench.server_write [--writes 100000]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APP = '''
N = int(__import__("os").environ["WRITES"])
CHUNK = b'id: 1\\ndata: {"content": "hello world this is a token", "finish_reason": null}\\n\\n'
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream")]})
    for _ in range(N):
        await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
'''


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Ours are classes, which uvicorn's command line does not take.
OURS = {
    "ours-h11": "BoundedH11Protocol",
    "ours-httptools": "BoundedHttpToolsProtocol",
}
RUN_OURS = """
import sys, uvicorn
from promptstream.http import _server
uvicorn.run("app:app", http=getattr(_server, sys.argv[1]), loop="uvloop", host="127.0.0.1",
            port=int(sys.argv[2]), log_level="error")
"""


def one(http: str, writes: int, folder: str) -> float:
    port = _port()
    env = {**os.environ, "WRITES": str(writes)}
    if http in OURS:
        functions = str(Path(__file__).resolve().parents[1] / "functions")
        env["PYTHONPATH"] = os.pathsep.join([folder, functions])
        command = [sys.executable, "-c", RUN_OURS, OURS[http], str(port)]
    else:
        command = [sys.executable, "-m", "uvicorn", "app:app", "--http", http, "--loop",
                   "uvloop", "--host", "127.0.0.1", "--port", str(port), "--log-level", "error"]
    proc = subprocess.Popen(command, cwd=folder, env=env)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        best = float("inf")
        for _ in range(3):
            before = _cpu(proc.pid)
            with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                while data := sock.recv(1 << 20):
                    if data.endswith(b"0\r\n\r\n"):
                        break
            best = min(best, _cpu(proc.pid) - before)
        return best / writes * 1e6
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "app.py").write_text(APP)
        for http in ("h11", "httptools", *OURS):
            try:
                __import__(http.removeprefix("ours-"))
            except ImportError:
                print(f"{http}: not installed")
                continue
            print(f"{http}: {one(http, args.writes, folder):.2f} µs of server CPU per write")


if __name__ == "__main__":
    main()
