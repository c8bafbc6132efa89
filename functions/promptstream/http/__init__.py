"""The ASGI edge: body reading, the endpoints' order of steps, the service that wires
the layers below. Imports everything below it.

The layers: docs/architecture.md."""
