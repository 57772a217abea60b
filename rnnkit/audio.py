"""Speech front end in NumPy: WAV files -> 16 kHz samples -> log-mel filterbank features.

    x[n] <- x[n] - 0.97 x[n-1]                 pre-emphasis (lifts the weak high formants)
    frame k: 25 ms (400 samples) from k * 10 ms, Hamming window, |FFT_512|^2
    mel(f) = 2595 log10(1 + f / 700)           M triangular filters, evenly spaced in mel
                                               between 20 Hz and 8 kHz, peak 1 at their centre
    feature[k, m] = ln(filter_m . power_k + 1e-10)

Per-utterance normalisation makes each mel channel zero-mean, unit-variance over the
utterance (loudness and channel colour differ between recordings). SpecAugment (Park et al.
2019) masks random bands of channels and runs of frames while training.
"""
from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np

from rnnkit.errors import RnnkitError, check_array, fail

RATE = 16000
WIN, HOP, NFFT = 400, 160, 512          # 25 ms, 10 ms at 16 kHz
PRE_EMPHASIS = 0.97
LOG_FLOOR = 1e-10


# --- reading and resampling -----------------------------------------------------------------
def read_wav(path: str | Path, rate: int = RATE) -> np.ndarray:
    """A 16-bit PCM WAV file (mono, or channels averaged) -> float32 samples in [-1, 1] at
    `rate` Hz."""
    path = Path(path)
    if not path.is_file():
        fail("wav", "a WAV file", f"{str(path)!r} (no such file)")
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, fs = w.getnchannels(), w.getsampwidth(), w.getframerate()
            data = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as e:
        raise RnnkitError(f"{path}: expected a 16-bit PCM WAV file, got one the wave module "
                          f"cannot read ({e})") from None
    if width != 2:
        fail(str(path), "16-bit PCM samples", f"{8 * width}-bit samples")
    if not 4000 <= fs <= 192000:
        fail(str(path), "a sample rate in [4000, 192000] Hz", f"{fs} Hz")
    x = np.frombuffer(data[:len(data) - len(data) % (2 * channels)], "<i2")
    x = x.reshape(-1, channels).astype(np.float32).mean(axis=1) / np.float32(32768)
    if x.size == 0:
        fail(str(path), "at least one sample", "an empty recording")
    return resample(x, fs, rate)


def write_wav(path: str | Path, x: np.ndarray, rate: int = RATE) -> None:
    """float samples in [-1, 1] -> a mono 16-bit PCM WAV file (clipped)."""
    pcm = np.clip(np.round(np.asarray(x, np.float64) * 32768), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(pcm.tobytes())


def resample(x: np.ndarray, rate_in: int, rate_out: int, half_taps: int = 16) -> np.ndarray:
    """Band-limited resampling: output sample n is the input convolved with a Hann-windowed
    sinc whose cutoff is the lower Nyquist frequency (no aliasing when going down), centred
    at the input time n q / p (p / q = rate_out / rate_in in lowest terms). Its offset from
    the nearest earlier sample is (n q mod p) / p, so p rows of weights serve every n."""
    x = np.asarray(x, np.float32)
    rate_in, rate_out = int(rate_in), int(rate_out)
    if rate_in == rate_out:
        return x
    g = math.gcd(rate_in, rate_out)
    p, q = rate_out // g, rate_in // g
    cutoff = min(1.0, p / q)                       # of the input's Nyquist frequency
    width = half_taps / cutoff                     # in input samples, either side
    k = np.arange(-int(np.ceil(width)), int(np.ceil(width)) + 1)
    d = np.arange(p)[:, None] / p - k[None, :]                       # (p, taps) offsets
    table = (cutoff * np.sinc(cutoff * d) * np.where(
        np.abs(d) < width, 0.5 + 0.5 * np.cos(np.pi * d / width), 0.0)).astype(np.float32)
    out = np.empty(len(x) * p // q, np.float32)
    padded = np.pad(x, (len(k), len(k)))
    for s in range(0, len(out), 8192):             # blocks bound the (n, taps) matrices
        n = np.arange(s, min(s + 8192, len(out)))
        base = n * q // p
        out[s:s + len(n)] = np.einsum("nk,nk->n", padded[base[:, None] + k[None, :] + len(k)],
                                      table[n * q % p])
    return out


# --- features -------------------------------------------------------------------------------
def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, rate: int = RATE, n_fft: int = NFFT, f_min: float = 20.0,
                   f_max: float | None = None) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters over the FFT bins' frequencies."""
    f_max = rate / 2 if f_max is None else f_max
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    f = np.arange(n_fft // 2 + 1) * rate / n_fft
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise, fall = (f - lo) / (mid - lo), (hi - f) / (hi - mid)
    return np.maximum(0.0, np.minimum(rise, fall))


def frames(x: np.ndarray, win: int = WIN, hop: int = HOP) -> np.ndarray:
    """(1 + (len - win) // hop, win) overlapping frames (a short input is zero-padded to one)."""
    if len(x) < win:
        x = np.pad(x, (0, win - len(x)))
    n = 1 + (len(x) - win) // hop
    return np.lib.stride_tricks.as_strided(x, (n, win), (x.strides[0] * hop, x.strides[0]),
                                           writeable=False)


def log_mel(x: np.ndarray, n_mels: int = 40, rate: int = RATE) -> np.ndarray:
    """Samples at `rate` -> float32 log-mel features (frames, n_mels)."""
    x = check_array("samples", np.asarray(x, np.float64), ndim=1)
    if not 8 <= n_mels <= 128:
        fail("n_mels", "an integer in [8, 128]", repr(n_mels))
    x = np.append(x[:1], x[1:] - PRE_EMPHASIS * x[:-1])
    f = frames(x) * np.hamming(WIN)
    power = np.abs(np.fft.rfft(f, NFFT, axis=1)) ** 2                # (K, NFFT/2 + 1)
    return np.log(power @ mel_filterbank(n_mels, rate).T + LOG_FLOOR).astype(np.float32)


def normalise(features: np.ndarray) -> np.ndarray:
    """Each channel to zero mean and unit variance over the utterance's frames."""
    mu = features.mean(axis=0, keepdims=True)
    sd = features.std(axis=0, keepdims=True)
    return ((features - mu) / (sd + 1e-5)).astype(np.float32)


def stack_frames(features: np.ndarray, k: int) -> np.ndarray:
    """(K, M) -> (ceil(K / k), k * M): k neighbouring frames side by side, so the recurrent
    layers run k times fewer steps (the last group padded with its final frame)."""
    if k == 1:
        return features
    K, M = features.shape
    pad = -K % k
    if pad:
        features = np.concatenate([features, np.repeat(features[-1:], pad, axis=0)])
    return features.reshape(-1, k * M)


def features_of(x: np.ndarray, n_mels: int = 40, stack: int = 1) -> np.ndarray:
    """16 kHz samples -> the model's inputs: normalised log-mels, `stack` frames a step."""
    return stack_frames(normalise(log_mel(x, n_mels)), stack)


def spec_augment(features: np.ndarray, rng: np.random.Generator, freq_masks: int = 2,
                 freq_width: int = 6, time_masks: int = 2, time_width: int = 10) -> np.ndarray:
    """A copy with `freq_masks` bands of up to `freq_width` channels and `time_masks` runs of
    up to `time_width` frames (at most a fifth of the utterance) set to zero, the mean of
    normalised features."""
    out = np.array(features, copy=True)
    K, M = out.shape
    for _ in range(freq_masks):
        w = int(rng.integers(0, freq_width + 1))
        f0 = int(rng.integers(0, max(M - w, 0) + 1))
        out[:, f0:f0 + w] = 0
    for _ in range(time_masks):
        w = int(rng.integers(0, min(time_width, K // 5) + 1))
        t0 = int(rng.integers(0, max(K - w, 0) + 1))
        out[t0:t0 + w] = 0
    return out
