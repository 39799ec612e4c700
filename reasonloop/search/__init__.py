"""reasonloop.search."""
