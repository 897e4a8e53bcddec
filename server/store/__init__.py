"""tapzone server/store package."""
