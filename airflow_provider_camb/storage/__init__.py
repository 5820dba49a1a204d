"""Writing audio to storage, whole or not at all, and reporting what was written."""
