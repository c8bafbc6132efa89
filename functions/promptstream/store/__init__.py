"""Storage: Firestore over REST, its codec, and the typed reads and commits of the
service's documents. Imports the core only.

The layers: docs/architecture.md."""
