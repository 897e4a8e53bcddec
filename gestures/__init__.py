"""tapzone gestures package."""
