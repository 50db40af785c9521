"""Curation image features: bit-identical across calls and processes, EXIF orientation and
image modes applied, bad bytes named, phash hex form."""

import hashlib
import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataops_cv.lib.curation.features import (
    EMBEDDING_DIM,
    FEATURE_VERSION,
    ImageFeatureError,
    image_features,
    phash_from_hex,
    phash_to_hex,
)
from dataops_cv.lib.synthetic.config import DefectConfig, SceneConfig
from dataops_cv.lib.synthetic.frames import generate_day


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_features_are_bit_identical_across_calls_and_processes():
    frames = list(generate_day(SceneConfig(seed=5, sessions_per_day=1, frames_per_session=2,
                                           defects=DefectConfig.none()), "2024-06-09"))
    datas = [f.data for f in frames]
    ph1, emb1 = image_features(datas)
    ph2, emb2 = image_features(datas)
    assert ph1.tobytes() == ph2.tobytes() and emb1.tobytes() == emb2.tobytes()
    assert emb1.dtype == np.float16 and emb1.shape == (len(datas), EMBEDDING_DIM)
    assert np.allclose(np.linalg.norm(emb1.astype(np.float64), axis=1), 1.0, atol=1e-3)
    code = textwrap.dedent("""
        import hashlib, sys
        from dataops_cv.lib.curation.features import FEATURE_VERSION, image_features
        from dataops_cv.lib.synthetic.config import DefectConfig, SceneConfig
        from dataops_cv.lib.synthetic.frames import generate_day
        frames = generate_day(SceneConfig(seed=5, sessions_per_day=1, frames_per_session=2,
                                          defects=DefectConfig.none()), "2024-06-09")
        ph, emb = image_features([f.data for f in frames])
        print(FEATURE_VERSION, hashlib.sha256(ph.tobytes() + emb.tobytes()).hexdigest())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[3],
                         env={**os.environ, "OPENBLAS_NUM_THREADS": "1"}).stdout
    assert out.split() == [FEATURE_VERSION,
                           hashlib.sha256(ph1.tobytes() + emb1.tobytes()).hexdigest()]


def test_exif_orientation_and_image_modes_are_applied():
    frame = next(generate_day(SceneConfig(seed=6, sessions_per_day=1, frames_per_session=1,
                                          defects=DefectConfig.none()), "2024-06-10"))
    upright = Image.open(io.BytesIO(frame.data)).convert("RGB")
    sideways = upright.transpose(Image.Transpose.ROTATE_90)  # displayed upright by tag 6
    exif = Image.Exif()
    exif[0x0112] = 6
    datas = [frame.data, _encode(sideways, "JPEG", quality=95, exif=exif.tobytes()),
             _encode(upright.convert("P"), "PNG"), _encode(upright.convert("RGBA"), "PNG"),
             _encode(upright.convert("CMYK"), "JPEG", quality=95)]
    phash, emb = image_features(datas)
    cos = emb[1:] @ emb[0]
    assert np.all(cos >= 0.999), cos
    assert np.all(np.bitwise_count(phash[1:] ^ phash[0]) <= 6)


@pytest.mark.parametrize("data, reason", [
    (b"", "0 bytes"),
    (b"capture-rig status log\nstatus=ok\n", "not a readable image format"),
    (None, "cannot decode"),  # a PNG cut in half
])
def test_bad_bytes_raise_an_error_naming_the_image(data, reason):
    good = _encode(Image.new("RGB", (32, 24), (10, 200, 30)), "PNG")
    if data is None:
        data = _encode(Image.effect_noise((64, 48), 40).convert("RGB"), "PNG")[:400]
    with pytest.raises(ImageFeatureError, match=reason) as err:
        image_features([good, data])
    assert err.value.index == 1 and err.value.sha256 == hashlib.sha256(data).hexdigest()
    assert "image 1 of 2" in str(err.value)


def test_phash_hex_round_trips_and_rejects_bad_text():
    for value in (0, 1, 2 ** 64 - 1, 0x0123456789ABCDEF):
        text = phash_to_hex(np.uint64(value))
        assert len(text) == 16 and phash_from_hex(text) == np.uint64(value)
    for bad in ("", "123", "0123456789abcdeg", "0123456789abcdef0"):
        with pytest.raises(ValueError, match="16 hexadecimal digits"):
            phash_from_hex(bad)
    with pytest.raises(ValueError, match="unsigned 64-bit"):
        phash_to_hex(-1)
