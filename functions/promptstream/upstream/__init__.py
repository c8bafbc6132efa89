"""The upstream (OpenRouter or any OpenAI-compatible server): transport, chat stream,
embeddings, routing and fallback. Imports the core only.

The layers: docs/architecture.md."""
