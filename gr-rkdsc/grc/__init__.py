"""GRC block definitions (YAML), shipped as package data."""
