"""Geohash cells of many positions at once (the fused table's ``geo_cell``), vectorised."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

GEOHASH_ALPHABET = "0123456789bcdefghjkmnpqrstuvwxyz"


def _geohash_bytes(lat: np.ndarray, lon: np.ndarray, precision: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(N×precision uint8 characters, valid mask)."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    valid = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    bits = 5 * precision
    lon_bits, lat_bits = (bits + 1) // 2, bits // 2  # interleaving starts with longitude
    # Quantising to 2^n cells equals geohash's bisection (value >= midpoint -> 1) at every level.
    lon_q = np.clip(np.floor((np.where(valid, lon, 0) + 180.0) / 360.0 * 2.0**lon_bits),
                    0, 2**lon_bits - 1).astype(np.int64)
    lat_q = np.clip(np.floor((np.where(valid, lat, 0) + 90.0) / 180.0 * 2.0**lat_bits),
                    0, 2**lat_bits - 1).astype(np.int64)
    code = np.zeros(len(lat), dtype=np.int64)
    for j in range(bits):
        if j % 2 == 0:
            bit = (lon_q >> (lon_bits - 1 - j // 2)) & 1
        else:
            bit = (lat_q >> (lat_bits - 1 - j // 2)) & 1
        code = (code << 1) | bit
    alphabet = np.frombuffer(GEOHASH_ALPHABET.encode(), dtype=np.uint8)
    shifts = 5 * np.arange(precision - 1, -1, -1)
    chars = alphabet[(code[:, None] >> shifts[None, :]) & 31]
    return chars, valid


def geohash(lat: np.ndarray, lon: np.ndarray, precision: int) -> list[str | None]:
    """Geohash cells of many positions at once.

    Args:
        lat, lon: degrees WGS84; NaN (a null converted by pyarrow) or out of range gives None.
        precision: characters, 1..12.

    Raises:
        ValueError: precision outside 1..12 or lat/lon of different lengths.
    """
    return geohash_array(lat, lon, precision).to_pylist()


def geohash_array(lat: np.ndarray, lon: np.ndarray, precision: int) -> pa.Array:
    """:func:`geohash` as a string array (null where the position is invalid)."""
    if not 1 <= precision <= 12:
        raise ValueError(f"geohash precision must be 1..12 characters, got {precision}")
    if len(lat) != len(lon):
        raise ValueError(f"lat and lon differ in length: {len(lat)} and {len(lon)}")
    chars, valid = _geohash_bytes(lat, lon, precision)
    text = np.ascontiguousarray(chars).view(f"S{precision}").ravel().astype(str)
    return pa.array(text, pa.string(), mask=~valid)
