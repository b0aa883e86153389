"""What a run leaves: its summary, pictures, fit diagnosis, logger extras, report across runs."""
