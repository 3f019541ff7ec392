"""Projects (tables of companies), their columns, rows and cells: the enterprise API of 000."""
