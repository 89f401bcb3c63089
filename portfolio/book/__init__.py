"""The book's services over the store: tape ingestion, analytics, pools, calibration and
pricing."""
