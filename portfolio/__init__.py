"""The loan book: schema, store, ingestion, synthetic originations, schedules, analytics,
pools, assumptions and the Monte Carlo projection."""
