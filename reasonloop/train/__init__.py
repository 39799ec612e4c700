"""reasonloop.train."""
