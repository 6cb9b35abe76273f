"""Campaigns: scenario sweeps run many at a time, on local cores or a Dask cluster
(docs/campaigns.md)."""
