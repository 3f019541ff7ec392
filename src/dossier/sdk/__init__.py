"""Client-side helpers for Dossier. Nothing here may import the server: receivers install it on its own.

``dossier.sdk.receiver`` verifies webhooks with the standard library only.
"""
