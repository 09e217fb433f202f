"""The few shapes the envs' ``rgb_array`` frames are drawn with, in NumPy (no pygame)."""

from __future__ import annotations

import numpy as np


def canvas(height: int, width: int) -> np.ndarray:
    return np.full((height, width, 3), 255, dtype=np.uint8)


def _grid(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres with y pointing up (image row 0 is the top)."""
    height, width = frame.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width]
    return xs + 0.5, height - ys - 0.5


def segment(frame: np.ndarray, p0, p1, half_width: float, color) -> None:
    """A thick line from p0 to p1 (pixel coordinates, y up)."""
    xs, ys = _grid(frame)
    (x0, y0), (x1, y1) = p0, p1
    dx, dy = x1 - x0, y1 - y0
    length_sq = dx * dx + dy * dy
    t = np.zeros_like(xs) if length_sq == 0 else np.clip(((xs - x0) * dx + (ys - y0) * dy) / length_sq, 0.0, 1.0)
    dist_sq = (xs - (x0 + t * dx)) ** 2 + (ys - (y0 + t * dy)) ** 2
    frame[dist_sq <= half_width * half_width] = color


def disk(frame: np.ndarray, centre, radius: float, color) -> None:
    xs, ys = _grid(frame)
    frame[(xs - centre[0]) ** 2 + (ys - centre[1]) ** 2 <= radius * radius] = color


def polyline(frame: np.ndarray, points: np.ndarray, half_width: float, color) -> None:
    for p0, p1 in zip(points[:-1], points[1:]):
        segment(frame, p0, p1, half_width, color)
