"""SPEC §5 class and direction rules, as lookup tables indexed by packed condition bits."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validate import Float64Array
from .constants import (
    DIRECTION_COMPLEX,
    DIRECTION_DOWN,
    DIRECTION_LEFT,
    DIRECTION_NONE,
    DIRECTION_RIGHT,
    DIRECTION_UP,
    GESTURE_AMBIGUOUS,
    GESTURE_CANCELLED,
    GESTURE_DRAG,
    GESTURE_FLICK,
    GESTURE_INVALID,
    GESTURE_LONG_PRESS,
    GESTURE_TAP,
    Thresholds,
)

Codes = np.ndarray[Any, np.dtype[np.int8]]
Flags = np.ndarray[Any, np.dtype[np.bool_]]

_SHORT, _NEAR, _LONG, _FAST, _CANCELLED, _INVALID = (1 << i for i in range(6))


def _gesture_table() -> Codes:
    table = np.empty(64, dtype=np.int8)
    for bits in range(64):
        if bits & _INVALID:
            code = GESTURE_INVALID
        elif bits & _CANCELLED:
            code = GESTURE_CANCELLED
        elif bits & _SHORT:  # distance < tap max
            code = GESTURE_LONG_PRESS if bits & _LONG else GESTURE_TAP
        elif bits & _NEAR:  # distance <= ambiguous max
            code = GESTURE_AMBIGUOUS
        else:
            code = GESTURE_FLICK if bits & _FAST else GESTURE_DRAG
        table[bits] = code
    return table


_COMPLEX, _HORIZONTAL, _LEFTWARD, _UPWARD, _SWIPE = (1 << i for i in range(5))


def _direction_table() -> Codes:
    table = np.empty(32, dtype=np.int8)
    for bits in range(32):
        if not bits & _SWIPE:
            code = DIRECTION_NONE
        elif bits & _COMPLEX:
            code = DIRECTION_COMPLEX
        elif bits & _HORIZONTAL:
            code = DIRECTION_LEFT if bits & _LEFTWARD else DIRECTION_RIGHT
        else:
            code = DIRECTION_UP if bits & _UPWARD else DIRECTION_DOWN
        table[bits] = code
    return table


GESTURE_TABLE = _gesture_table()
DIRECTION_TABLE = _direction_table()


def _bits(*flags: tuple[Flags, int]) -> np.ndarray[Any, np.dtype[np.uint8]]:
    packed = np.zeros(flags[0][0].shape, dtype=np.uint8)
    for flag, bit in flags:
        packed |= flag.view(np.uint8) * np.uint8(bit)
    return packed


def gesture_codes(
    distance_dp: Float64Array,
    duration_ms: Float64Array,
    velocity_dps: Float64Array,
    cancelled: Flags,
    valid: Flags,
    th: Thresholds,
) -> Codes:
    """Gesture code of each stroke: the first matching row of the SPEC's class table."""
    packed = _bits(
        (distance_dp < th.tap_max_distance_dp, _SHORT),
        (distance_dp <= th.ambiguous_max_distance_dp, _NEAR),
        (duration_ms > th.tap_max_duration_ms, _LONG),
        (velocity_dps > th.flick_min_velocity_dps, _FAST),
        (cancelled, _CANCELLED),
        (~valid, _INVALID),
    )
    return GESTURE_TABLE.take(packed)


def direction_codes(
    dx_dp: Float64Array, dy_dp: Float64Array, path_dp: Float64Array, gesture: Codes,
    th: Thresholds,
) -> Codes:
    """Direction code (fd) of each stroke; 0 unless it is a drag or a flick."""
    displacement = np.sqrt(dx_dp * dx_dp + dy_dp * dy_dp)
    packed = _bits(
        (displacement < th.complex_direction_ratio * path_dp, _COMPLEX),
        (np.abs(dx_dp) >= np.abs(dy_dp), _HORIZONTAL),
        (dx_dp < 0, _LEFTWARD),
        (dy_dp < 0, _UPWARD),
        ((gesture == GESTURE_DRAG) | (gesture == GESTURE_FLICK), _SWIPE),
    )
    return DIRECTION_TABLE.take(packed)
