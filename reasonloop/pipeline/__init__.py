"""reasonloop.pipeline."""
