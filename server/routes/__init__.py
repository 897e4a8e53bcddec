"""tapzone server/routes package."""
