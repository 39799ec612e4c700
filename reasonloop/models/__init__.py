"""reasonloop.models."""
