"""The ports of one stack: README's fixed ones, or a set of free ones for tests.

firebase-tools picks its other ports itself when they are not in firebase.json
(the Firestore websocket 9150, Eventarc 9299, Cloud Tasks 9499): it moves on to a
free one if the default is taken, so they are left out here on purpose.
"""

from __future__ import annotations

import dataclasses
import socket
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Ports:
    functions: int = 5001
    firestore: int = 8080
    auth: int = 9099
    hub: int = 4400
    logging: int = 4500
    fake_openrouter: int = 8788
    web: int = 5173

    @classmethod
    def free(cls) -> Ports:
        """Distinct ports that are free right now on 127.0.0.1."""
        # All sockets stay open until every port is picked, so none repeats.
        sockets: list[socket.socket] = []
        try:
            for _ in dataclasses.fields(cls):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.bind(("127.0.0.1", 0))
                sockets.append(sock)
            return cls(*(sock.getsockname()[1] for sock in sockets))
        finally:
            for sock in sockets:
                sock.close()

    @property
    def is_default(self) -> bool:
        return self == Ports()

    def busy(self) -> list[str]:
        """Names of the ports that something already listens on."""
        taken = []
        for field in dataclasses.fields(self):
            port = getattr(self, field.name)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.2)
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    taken.append(f"{field.name} ({port})")
        return taken
