"""reasonloop.sources."""
