"""The dashboard: server-rendered screens over the domain services, with session sign-in.

It calls the domains' services directly (never the HTTP APIs) in the request's one transaction, like the API
routes do; its templates, CSS and the vendored htmx are shipped inside this package.
"""
