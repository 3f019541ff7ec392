"""Running Dossier: metrics and probes (`/metrics`, `/healthz`, `/readyz`), and automatic retention.

Above the domains: it reads the queue's and the webhook engine's tables and prunes every domain's history;
nothing imports it but the entry points (``app``, ``cli``) and the worker's task modules.
"""
