"""The reference registry: companies that entity resolution matches against, each with a stable kernel_id."""
