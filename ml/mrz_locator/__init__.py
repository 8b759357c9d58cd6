"""MRZ locator: where the machine-readable zone is in a document photo (issue 24)."""
