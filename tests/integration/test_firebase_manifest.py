"""What `firebase deploy` discovers in functions/main.py: the three endpoints, each declared
exactly as `https_fn.on_request` would declare it with the same options, although they
are coroutine functions served on functions-framework's ASGI path; and the scheduled
sweep of silent streams (docs/adr/0601-leases-that-prove-alive.md).

Run in a fresh interpreter from functions/, as the Firebase CLI runs discovery.
"""

from __future__ import annotations

import json
import subprocess
import sys

from support import FUNCTIONS

DISCOVER = r"""
import inspect, json
import yaml
from firebase_functions import https_fn
from firebase_functions.private import serving

functions = serving.get_functions()
found = yaml.safe_load(serving.functions_as_yaml(functions))

# The options main.py declares, for a reference declared the classic way. Importing
# main.py again declares its secret again: clear the registry of params first.
from firebase_functions import params
params._params.clear()
import main
from functions_framework import _function_registry

@https_fn.on_request(**main._options)
def reference(req):
    return None

expected = yaml.safe_load(serving.functions_as_yaml({"reference": reference}))
print(json.dumps({
    "found": found,
    "expected": expected["endpoints"]["reference"],
    "coroutines": {n: inspect.iscoroutinefunction(f) for n, f in functions.items()},
    "asgi": sorted(_function_registry.ASGI_FUNCTIONS),
}))
"""


def discover() -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", DISCOVER],
        cwd=FUNCTIONS,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_deploy_discovers_the_three_async_endpoints_with_on_requests_declaration() -> None:
    result = discover()
    found = result["found"]
    assert isinstance(found, dict)
    endpoints = dict(found["endpoints"])
    sweep = endpoints.pop("sweep_silent_streams")
    assert sweep["scheduleTrigger"]["schedule"] == "every 1 minutes"
    assert sweep["timeoutSeconds"] == 120
    assert sorted(endpoints) == ["execute_prompt", "execute_prompt_stream", "ingest_document"]
    expected = dict(result["expected"])  # type: ignore[call-overload]
    for name, endpoint in endpoints.items():
        assert endpoint == {**expected, "entryPoint": name}
    # The options the product runs with, as the manifest states them.
    one = endpoints["execute_prompt_stream"]
    assert one["concurrency"] == 1000
    assert one["cpu"] == 1
    assert one["availableMemoryMb"] == 1024
    assert one["timeoutSeconds"] == 3600
    assert one["secretEnvironmentVariables"] == [{"key": "OPENROUTER_API_KEY"}]
    assert one["httpsTrigger"] == {"invoker": ["public"]}
    assert [p["name"] for p in found["params"]] == ["OPENROUTER_API_KEY"]
    # Served natively: coroutine functions, registered for functions-framework's ASGI app.
    assert result["coroutines"] == {
        "execute_prompt": True,
        "execute_prompt_stream": True,
        "ingest_document": True,
        "sweep_silent_streams": False,  # a plain handler: it runs its own loop
    }
    assert result["asgi"] == ["execute_prompt", "execute_prompt_stream", "ingest_document"]
