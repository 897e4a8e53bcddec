"""tapzone targets package."""
