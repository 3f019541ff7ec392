"""Accounts, API keys and the authentication dependency."""
