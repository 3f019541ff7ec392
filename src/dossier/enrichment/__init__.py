"""Enrichment: the tool protocol, the tools, the engine that runs tool cells, and the reference registry."""
