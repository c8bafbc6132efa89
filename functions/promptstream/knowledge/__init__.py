"""Documents as knowledge: ingestion (extract, chunk, embed), search and context.
Imports upstream, store and the core.

The layers: docs/architecture.md."""
