"""reasonloop.evaluate."""
