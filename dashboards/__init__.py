"""dashboards layer (see DESIGN.md §2)."""
