"""The server's edge, measured on raw sockets against a function served as deployed
(docs/adr/0306-server-edge.md): what one connection makes the worker take in after an
answer that does not read the body, a request smuggled behind both lengths, a head over
the limit in one send, the cost of idle keep-alive connections, and the keep-alive race
with node's http agent (the Functions emulator's proxy) or through the emulator itself.

    functions/venv/bin/python -m bench.edge flood|send-first|smuggle|head|idle [N]
    functions/venv/bin/python -m bench.edge agent-race KEEP_ALIVE LO_MS HI_MS REPS
    functions/venv/bin/python -m devstack exec --only functions --no-seed -- \\
        functions/venv/bin/python -m bench.edge emulator-race LO_S HI_S STEP_S REPS

The tree measured is the one this file is in: to measure an older one, ``git archive`` it
to a directory, copy this file into its ``bench/`` and ``tests/support/__init__.py`` into
its ``tests/support/``, link ``functions/venv`` and ``node_modules``, and run the same
command there.
"""

from __future__ import annotations

import argparse
import http.client
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "functions")]

from support import FunctionServer, auth, read_to_close, worker_pids  # noqa: E402

MIB = 1 << 20


def _server(env: dict[str, str] | None = None) -> FunctionServer:
    # Neither Firestore nor the upstream is reached by anything measured here.
    return FunctionServer("execute_prompt_stream", "127.0.0.1:1", "http://127.0.0.1:1/v1", env)


def flood(seconds: float) -> None:
    """Per path: the answer, and the MiB the server took after it within ``seconds``."""
    cases = [("OPTIONS", "/"), ("GET", "/"), ("PUT", "/"), ("GET", "/__/health")]
    cases += [("GET", "/robots.txt"), ("TRACE", "/")]
    with _server() as server:
        for method, path in cases:
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(
                f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000000\r\n\r\n".encode()
            )
            sock.setblocking(False)
            piece, answer, sent, at_answer = b"x" * MIB, b"", 0, 0
            ended, reading = "open", [sock]
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                readable, writable, _ = select.select(reading, [sock], [], 0.1)
                try:
                    if readable:
                        data = sock.recv(65536)
                        if not data:  # the server's FIN; a lingering close still takes bytes
                            ended, reading = "FIN", []
                        at_answer = at_answer or sent
                        answer += data
                    if writable:
                        sent += sock.send(piece)
                except OSError as exc:
                    ended += f", then {type(exc).__name__}"
                    break
            sock.close()
            status = answer.split(b"\r\n", 1)[0].decode()
            close = b"\r\nconnection: close" in answer.lower()
            print(
                f"{method} {path}: {status!r}, Connection: close {close}, "
                f"{(sent - at_answer) / MIB:.0f} MiB taken after the answer until refused, {ended}"
            )


def send_first(tries: int) -> None:
    """http.client sending a GET with a body of each size before it reads: the outcomes."""
    with _server() as server:
        for size in (100_000, 1_000_000, 4_000_000, 16_000_000):
            outcomes: Counter[str] = Counter()
            for _ in range(tries):
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                try:
                    conn.request("GET", "/", body=b"x" * size)
                    outcomes[str(conn.getresponse().status)] += 1
                except OSError as exc:
                    outcomes[type(exc).__name__] += 1
                finally:
                    conn.close()
            print(f"GET with a {size:,} B body: {dict(outcomes)}")


def smuggle() -> None:
    """A signed-in POST with Content-Length and chunked, a GET behind the terminator."""
    token = auth()["Authorization"]
    with _server() as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(
            f"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 5\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            "GET /__/health HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
        received = read_to_close(sock, 3)
    answers = [line.decode() for line in received.split(b"\r\n") if b"HTTP/1.1 " in line]
    print(f"answers: {answers}")


def head(tries: int) -> None:
    """Heads of 60 KB, 120 KB and 200 KB, each in one send: the statuses."""
    with _server() as server:
        for size in (60_000, 120_000, 200_000):
            statuses = []
            for _ in range(tries):
                sock = socket.create_connection(("127.0.0.1", server.port))
                pad = b"a" * size
                sock.sendall(b"GET /__/health HTTP/1.1\r\nHost: x\r\nX-Big: " + pad + b"\r\n\r\n")
                statuses.append(read_to_close(sock, 3)[9:12].decode() or "reset")
                sock.close()
            print(f"{size:,} B head in one send: {dict(Counter(statuses))}")


def idle(n: int) -> None:
    """The worker's RSS before and with ``n`` idle keep-alive connections."""

    def rss(pid: int) -> float:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(pid)

    with _server() as server:
        [worker] = worker_pids(server)
        request = b"OPTIONS / HTTP/1.1\r\nHost: x\r\n\r\n"
        time.sleep(1)
        before = rss(worker)
        socks = []
        for _ in range(n):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(request)
            sock.recv(1000)
            socks.append(sock)
        time.sleep(3)
        after = rss(worker)
        for sock in socks:
            sock.close()
    print(f"{n} idle connections: worker RSS {before:.1f} -> {after:.1f} MB")


_AGENT = r"""
const http = require("http");  // http.globalAgent: keepAlive, as the emulator's proxy
const [port, lo, hi, reps] = process.argv.slice(2).map(Number);
const call = () => new Promise((resolve) => {
  const req = http.request({ host: "127.0.0.1", port, method: "OPTIONS", path: "/" }, (res) => {
    res.resume();
    res.on("end", () => resolve(String(res.statusCode)));
  });
  req.on("error", (err) => resolve(err.code || String(err)));
  req.end();
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  const tally = {};
  for (let gap = lo; gap <= hi; gap++) for (let i = 0; i < reps; i++) {
    await call();
    await sleep(gap);
    const got = await call();
    tally[got] = (tally[got] || 0) + 1;
    if (got !== "204") console.log(`gap ${gap} ms: ${got}`);
  }
  console.log(JSON.stringify(tally));
})();
"""


def agent_race(keep_alive: str, lo_ms: int, hi_ms: int, reps: int) -> None:
    """Two OPTIONS through node's global agent ``gap`` ms apart, for each gap; the worker's
    KEEP_ALIVE_SECONDS set to ``keep_alive`` (``default``: left alone)."""
    env = {} if keep_alive == "default" else {"KEEP_ALIVE_SECONDS": keep_alive}
    with _server(env) as server, tempfile.NamedTemporaryFile("w", suffix=".js") as script:
        script.write(_AGENT)
        script.flush()
        args = [str(server.port), str(lo_ms), str(hi_ms), str(reps)]
        subprocess.run(["node", script.name, *args], check=True, timeout=3600)


def emulator_race(lo: float, hi: float, step: float, reps: int) -> None:
    """Two GETs through the Functions emulator (a running devstack) ``gap`` s apart, each
    on a fresh client connection without ``Connection: close`` (which the emulator would
    forward), so that the emulator's agent may reuse its connection to the worker."""
    url = urllib.parse.urlsplit(os.environ["E2E_FUNCTIONS_BASE_URL"] + "/execute_prompt_stream")

    def call() -> str:
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
        try:
            conn.request("GET", url.path)
            resp = conn.getresponse()
            body = resp.read()
            return "405" if resp.status == 405 else f"{resp.status} {body[:80]!r}"
        finally:
            conn.close()

    tally: Counter[str] = Counter()
    gap = lo
    while gap <= hi + 1e-9:
        for _ in range(reps):
            call()
            time.sleep(gap)
            got = call()
            tally[got] += 1
            if got != "405":
                print(f"gap {gap:.4f} s: {got}", flush=True)
        gap += step
    print(dict(tally))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.edge", description=__doc__)
    parser.add_argument(
        "what",
        choices=["flood", "send-first", "smuggle", "head", "idle", "agent-race", "emulator-race"],
    )
    parser.add_argument("args", nargs="*")
    ns = parser.parse_args()
    a = ns.args
    if ns.what == "flood":
        flood(float(a[0]) if a else 3.0)
    elif ns.what == "send-first":
        send_first(int(a[0]) if a else 5)
    elif ns.what == "smuggle":
        smuggle()
    elif ns.what == "head":
        head(int(a[0]) if a else 5)
    elif ns.what == "idle":
        idle(int(a[0]) if a else 1000)
    elif ns.what == "agent-race":
        agent_race(a[0], int(a[1]), int(a[2]), int(a[3]))
    else:
        emulator_race(float(a[0]), float(a[1]), float(a[2]), int(a[3]))


if __name__ == "__main__":
    main()
