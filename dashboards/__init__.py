"""dashboards layer (docs/architecture.md, "Layers")."""
