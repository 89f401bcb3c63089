"""The synthetic book: a Jiebei-like originator's loans and their monthly performance,
generated from known parameters."""
