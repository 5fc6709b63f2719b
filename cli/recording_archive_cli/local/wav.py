"""Real WAV bytes for the demo: a 440 Hz tone, 8 kHz, 16-bit, mono (a Plivo `.wav` recording's
format), written with the standard library's `wave` module."""

from __future__ import annotations

import io
import math
import struct
import wave

SAMPLE_RATE = 8000
TONE_HZ = 440.0
# About half of full scale: audible, never clipped.
AMPLITUDE = 12000


def tone_wav(seconds: float = 3.0, *, rate: int = SAMPLE_RATE, hz: float = TONE_HZ) -> bytes:
    """`seconds` of a sine tone as a complete WAV file (RIFF header included)."""
    if seconds <= 0 or rate <= 0:
        raise ValueError("seconds and rate must be positive")
    frames = int(seconds * rate)
    samples = (int(AMPLITUDE * math.sin(2 * math.pi * hz * n / rate)) for n in range(frames))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack(f"<{frames}h", *samples))
    return out.getvalue()
