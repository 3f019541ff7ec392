"""The Reconciliation Service API 0.2 (OpenRefine and other data tools) over the registry."""
