"""reasonloop.sources.templates."""
