"""One execution's business: admission and limits, the request model, executions and
their records. Imports knowledge, upstream, store and the core.

The layers: docs/architecture.md."""
