"""Print the JSON Schema of the wire models the browser shares with the backend.

`scripts/wire-types` turns it into `web/src/wire.generated.ts`; only public names of
`promptstream` are read, so the schema follows the package wherever its modules move.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import TypeAdapter

from promptstream import ErrorCode, ExecuteRequest

MODELS: dict[str, Any] = {"ExecuteRequest": ExecuteRequest, "ErrorCode": ErrorCode}


def _untitled(node: Any) -> Any:
    # pydantic titles every field ("Prompt Id"); the converter would make a type of each.
    if isinstance(node, dict):
        return {k: _untitled(v) for k, v in node.items() if k != "title" or not isinstance(v, str)}
    if isinstance(node, list):
        return [_untitled(v) for v in node]
    return node


def schema() -> dict[str, Any]:
    defs = {}
    for name, model in MODELS.items():
        one = _untitled(TypeAdapter(model).json_schema(mode="validation"))
        defs[name] = {**one, "title": name}
    return {"title": "Wire", "type": "object", "$defs": defs}


if __name__ == "__main__":
    json.dump(schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
