"""Tracked companies, their pipeline status, analyses, and the integration API of document 001."""
