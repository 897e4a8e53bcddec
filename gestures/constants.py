"""Codes and thresholds of gesture classification (SPEC §5)."""

from __future__ import annotations

from typing import NamedTuple

# Action codes of the optional ``actions`` array (Android MotionEvent order).
ACTION_DOWN = 0
ACTION_MOVE = 1
ACTION_UP = 2
ACTION_CANCEL = 3
ACTION_NAMES = ("down", "move", "up", "cancel")

# Gesture codes of ``StrokeResult.gesture``; GESTURE_NAMES[code] is the wire name.
GESTURE_TAP = 0
GESTURE_LONG_PRESS = 1
GESTURE_DRAG = 2
GESTURE_FLICK = 3
GESTURE_AMBIGUOUS = 4
GESTURE_CANCELLED = 5
GESTURE_INVALID = 6
GESTURE_NAMES = ("tap", "long_press", "drag", "flick", "ambiguous", "cancelled", "invalid")
# Event action (`ea`) of each gesture code; -1 where the stroke is not stored as an event.
GESTURE_EA = (6, 8, 9, 10, -1, -1, -1)

# Direction codes (`fd`); 0 where no direction applies (not a drag or a flick).
DIRECTION_NONE = 0
DIRECTION_UP = 1
DIRECTION_DOWN = 2
DIRECTION_LEFT = 3
DIRECTION_RIGHT = 4
DIRECTION_COMPLEX = 5
DIRECTION_NAMES = ("", "up", "down", "left", "right", "complex")

# Thresholds, with the SPEC defaults.
TAP_MAX_DURATION_MS = 500.0
"""A short stroke lasting longer than this is a long press."""
TAP_MAX_DISTANCE_DP = 24.0
"""Strokes whose max excursion is below this are taps or long presses."""
AMBIGUOUS_MAX_DISTANCE_DP = 48.0
"""Excursions from TAP_MAX_DISTANCE_DP up to this (inclusive) are ambiguous."""
FLICK_MIN_VELOCITY_DPS = 100.0
"""A long stroke released faster than this is a flick, else a drag."""
VELOCITY_HORIZON_MS = 100.0
"""Release window: no sample older than this before the last sample."""
VELOCITY_MAX_GAP_MS = 40.0
"""Release window: stops at the first gap longer than this between two samples."""
VELOCITY_MAX_SAMPLES = 20
"""Release window: at most this many samples (distinct timestamps)."""
COMPLEX_DIRECTION_RATIO = 0.7
"""Direction is complex when |displacement| < ratio x path length."""
FIT_MIN_DETERMINANT = 1e-9
"""The quadratic release fit falls back to a line when the determinant of its normal
matrix, with times scaled to [-1, 0] over the window, is at most this (three or more
distinct times that nearly coincide relative to the window span)."""


class Thresholds(NamedTuple):
    """Every threshold of the classifier; ``Thresholds()`` holds the SPEC defaults."""

    tap_max_duration_ms: float = TAP_MAX_DURATION_MS
    tap_max_distance_dp: float = TAP_MAX_DISTANCE_DP
    ambiguous_max_distance_dp: float = AMBIGUOUS_MAX_DISTANCE_DP
    flick_min_velocity_dps: float = FLICK_MIN_VELOCITY_DPS
    velocity_horizon_ms: float = VELOCITY_HORIZON_MS
    velocity_max_gap_ms: float = VELOCITY_MAX_GAP_MS
    velocity_max_samples: int = VELOCITY_MAX_SAMPLES
    complex_direction_ratio: float = COMPLEX_DIRECTION_RATIO
    fit_min_determinant: float = FIT_MIN_DETERMINANT


DEFAULT_THRESHOLDS = Thresholds()
