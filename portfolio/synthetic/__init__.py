"""The synthetic book: a Jiebei-like originator's loans and their monthly performance,
generated from known parameters.

From the ground up: ``params`` (``GeneratorParams`` and the truth they imply, for calibration)
→ ``originations`` (the loans as arrays) → ``performance`` (the monthly performance simulator)
→ ``tables`` (the store's columns) → ``generate`` (``simulate_book``, ``generate_book``: the
request, the seeds, the writes through the store)."""
