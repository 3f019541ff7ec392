"""List building: search the registry and add the companies that fit to a project (docs/list-building.md)."""
