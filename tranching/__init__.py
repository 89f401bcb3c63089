"""tranching layer (docs/architecture.md, "Layers")."""
