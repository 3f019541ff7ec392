"""Every domain's models in one metadata, beside the migrations that Alembic compares it with."""

from dossier.accounts import models as accounts_models
from dossier.api import models as api_models
from dossier.db.base import Base
from dossier.enrichment.registry import models as registry_models
from dossier.jobs import models as jobs_models
from dossier.lists import models as lists_models
from dossier.pipeline import models as pipeline_models
from dossier.projects import models as projects_models
from dossier.queue import models as queue_models
from dossier.webhooks import models as webhooks_models

metadata = Base.metadata

__all__ = [
    "accounts_models",
    "api_models",
    "jobs_models",
    "lists_models",
    "metadata",
    "pipeline_models",
    "projects_models",
    "queue_models",
    "registry_models",
    "webhooks_models",
]
