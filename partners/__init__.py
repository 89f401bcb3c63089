"""partners layer (docs/architecture.md, "Layers")."""
