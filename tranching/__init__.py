"""tranching layer (see DESIGN.md §2)."""
