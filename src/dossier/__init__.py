"""Dossier: self-hosted company data enrichment."""

__version__ = "0.1.0"
