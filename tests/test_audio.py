"""The speech front end: WAV reading, resampling, mel filters, features, SpecAugment."""
import wave

import numpy as np
import pytest

from rnnkit.audio import (HOP, RATE, WIN, features_of, hz_to_mel, log_mel, mel_filterbank,
                          mel_to_hz, normalise, read_wav, resample, spec_augment,
                          stack_frames, write_wav)
from rnnkit.errors import RnnkitError


def _tone(freq, rate, seconds=0.5, amp=0.5):
    return amp * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def _write(path, samples_int16, rate, channels=1, width=2):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples_int16).tobytes())


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 16000])
def test_read_wav_resamples_a_tone_to_16k(tmp_path, rate):
    path = tmp_path / "a.wav"
    _write(path, np.round(_tone(440, rate) * 32767).astype("<i2"), rate)
    x = read_wav(path)
    assert x.dtype == np.float32 and len(x) == int(0.5 * rate) * RATE // rate
    inner = slice(400, len(x) - 400)           # away from the edges' half-filled taps
    np.testing.assert_allclose(x[inner], _tone(440, RATE)[inner], atol=2e-3)


def test_stereo_channels_are_averaged(tmp_path):
    left, right = np.full(1600, 1000, "<i2"), np.full(1600, 3000, "<i2")
    _write(tmp_path / "s.wav", np.stack([left, right], 1).reshape(-1), RATE, channels=2)
    np.testing.assert_allclose(read_wav(tmp_path / "s.wav"), 2000 / 32768, rtol=1e-6)


def test_write_then_read_is_exact_at_16k(tmp_path):
    x = np.random.default_rng(0).uniform(-0.9, 0.9, 3000)
    write_wav(tmp_path / "w.wav", x)
    np.testing.assert_allclose(read_wav(tmp_path / "w.wav"), x, atol=1 / 32767)


def test_downsampling_removes_what_the_new_rate_cannot_hold():
    x = _tone(7000, 44100, seconds=0.3) + _tone(300, 44100, seconds=0.3)
    y = resample(x, 44100, 8000)                 # 7 kHz is above the 4 kHz Nyquist
    inner = slice(200, len(y) - 200)
    np.testing.assert_allclose(y[inner], _tone(300, 8000, seconds=0.3)[inner], atol=0.02)


@pytest.mark.parametrize("make, match", [
    (lambda p: _write(p, np.zeros(100, "u1"), RATE, width=1), "16-bit"),
    (lambda p: p.write_bytes(b"RIFF not really a wave file"), "16-bit PCM WAV"),
    (lambda p: _write(p, np.zeros(0, "<i2"), RATE), "empty"),
    (lambda p: _write(p, np.zeros(100, "<i2"), 1000), "sample rate"),
    (lambda p: None, "no such file"),
])
def test_unreadable_files_raise_a_clear_error(tmp_path, make, match):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(RnnkitError, match=match):
        read_wav(path)


def test_mel_scale_and_filters():
    assert hz_to_mel(1000) == pytest.approx(1000, rel=1e-3)      # the scale's anchor
    np.testing.assert_allclose(mel_to_hz(hz_to_mel([0, 440, 8000])), [0, 440, 8000])
    fb = mel_filterbank(40)
    assert fb.shape == (40, 257) and fb.min() >= 0 and fb.max() <= 1
    centres = np.argmax(fb, axis=1)
    assert (np.diff(centres) >= 0).all()                # ordered in frequency
    # every bin between the first and last centre is covered by the filters, summing to 1
    inside = slice(centres[0] + 1, centres[-1])
    np.testing.assert_allclose(fb[:, inside].sum(axis=0), 1.0, atol=1e-9)


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0, 6000.0])
def test_a_pure_tone_peaks_in_its_mel_band(freq):
    feats = log_mel(_tone(freq, RATE), n_mels=40)
    assert feats.shape == (1 + (len(_tone(freq, RATE)) - WIN) // HOP, 40)
    band = int(np.argmax(feats[10]))
    edges = mel_to_hz(np.linspace(hz_to_mel(20), hz_to_mel(8000), 42))
    nearest = int(np.argmin(np.abs(edges[1:-1] - freq)))      # filter centred closest
    assert abs(band - nearest) <= 1


def test_log_mel_is_the_formula_on_one_frame():
    x = np.random.default_rng(1).normal(size=WIN)
    emph = np.append(x[:1], x[1:] - 0.97 * x[:-1])
    power = np.abs(np.fft.rfft(emph * np.hamming(WIN), 512)) ** 2
    expected = np.log(mel_filterbank(64) @ power + 1e-10)
    np.testing.assert_allclose(log_mel(x, 64)[0], expected, rtol=1e-5)


def test_normalise_stack_and_features():
    f = np.random.default_rng(2).normal(3, 5, size=(50, 40)).astype(np.float32)
    n = normalise(f)
    np.testing.assert_allclose(n.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(n.std(0), 1, atol=1e-3)
    s = stack_frames(n, 3)
    assert s.shape == (17, 120)
    np.testing.assert_array_equal(s[1, 40:80], n[4])
    np.testing.assert_array_equal(s[-1, 80:], n[-1])          # padded with the last frame
    assert features_of(_tone(500, RATE), 40, 2).shape == (24, 80)


def test_spec_augment_masks_bands_and_runs_only():
    f = np.ones((100, 40), np.float32)
    out = spec_augment(f, np.random.default_rng(3), freq_masks=1, freq_width=5,
                       time_masks=1, time_width=8)
    zero_cols = np.flatnonzero((out == 0).all(axis=0))
    zero_rows = np.flatnonzero((out == 0).all(axis=1))
    assert len(zero_cols) <= 5 and len(zero_rows) <= 8
    assert ((out == 0) | (out == 1)).all() and (f == 1).all()          # a copy
    zero = out == 0
    assert (zero == (np.isin(np.arange(40), zero_cols)[None, :] |
                     np.isin(np.arange(100), zero_rows)[:, None])).all()
    masked = [spec_augment(f, np.random.default_rng(s)).sum() for s in range(5)]
    assert min(masked) < f.sum()                                         # masks do happen
