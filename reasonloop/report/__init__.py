"""reasonloop.report."""
