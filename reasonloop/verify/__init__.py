"""reasonloop.verify."""
