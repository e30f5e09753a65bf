"""Built-in policy files."""
