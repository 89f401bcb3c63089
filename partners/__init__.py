"""partners layer (see DESIGN.md §2)."""
