"""Command-line binaries (thin absl mains)."""
