"""tapzone server package."""
