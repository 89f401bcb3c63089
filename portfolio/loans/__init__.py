"""Loan values: repayment types and codes, the column arrays of a pool (LoanArrays) and
repayment schedules in cents. The ground floor of the book: no I/O, no randomness."""
