"""Audio decoding to SPEC section 2's form, and the batched torch log-mel against librosa."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from sed.audio.features import LogMel, logmel_to_mel, mel_filterbank
from sed.audio.io import load_audio, read_audio
from sed.core.constants import DEFAULT_FEATURES, FeatureSpec
from sed.core.errors import DataError

SR = DEFAULT_FEATURES.sample_rate


def _tone(sr: int, seconds: float, hz: float = 1000.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    x = 0.5 * np.sin(2 * np.pi * hz * t).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 44100, 48000])
def test_any_rate_becomes_10s_at_22050(tmp_path, sr):
    p = tmp_path / "a.wav"
    sf.write(p, _tone(sr, 3.0), sr)
    x = load_audio(p)
    assert x.shape == (220500,) and x.dtype == np.float32
    # the tone keeps its pitch: spectral peak at 1 kHz after resampling
    spec = np.abs(np.fft.rfft(x[:SR]))
    assert np.fft.rfftfreq(SR, 1 / SR)[spec.argmax()] == pytest.approx(1000.0, abs=2.0)
    assert np.all(x[int(3.05 * SR):] == 0)  # padded with silence after 3 s


@pytest.mark.parametrize(("subtype", "fmt", "ext"), [("PCM_16", "WAV", "wav"), ("PCM_24", "WAV", "wav"),
                                                      ("PCM_32", "WAV", "wav"), ("FLOAT", "WAV", "wav"),
                                                      ("PCM_16", "FLAC", "flac"), ("VORBIS", "OGG", "ogg")])
def test_formats_and_stereo(tmp_path, subtype, fmt, ext):
    p = tmp_path / f"a.{ext}"
    sf.write(p, _tone(SR, 12.0, channels=2), SR, subtype=subtype, format=fmt)
    x = load_audio(p)
    assert x.shape == (220500,)  # truncated to 10 s
    # mono mix of two equal channels keeps the level (RMS of a 0.5 sine; Vorbis is lossy)
    assert np.sqrt(np.mean(x ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.03)


def test_mono_mixdown_averages_channels(tmp_path):
    st = np.stack([np.full(SR, 0.2, np.float32), np.full(SR, 0.6, np.float32)], axis=1)
    sf.write(tmp_path / "s.wav", st, SR, subtype="FLOAT")
    x, sr = read_audio(tmp_path / "s.wav")
    assert sr == SR and np.allclose(x, 0.4)


def test_bad_audio_files(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("this is not audio")
    sf.write(tmp_path / "zero.wav", np.zeros((0,), np.float32), SR)
    bad = _tone(SR, 1.0)
    bad[100] = np.nan
    sf.write(tmp_path / "nan.wav", bad, SR, subtype="FLOAT")
    cases = {"missing.wav": "audio file not found", "empty.wav": "empty file",
             "text.wav": "cannot decode audio", "zero.wav": "zero-length", "nan.wav": "NaN"}
    for name, message in cases.items():
        with pytest.raises(DataError) as e:
            load_audio(tmp_path / name)
        assert str(e.value).startswith(str(tmp_path / name)) and message in str(e.value)


def test_logmel_shape_and_librosa_agreement():
    rng = np.random.default_rng(0)
    clips = (rng.standard_normal((3, 220500)) * np.linspace(0.01, 1, 220500)).astype(np.float32)
    front = LogMel()
    with torch.no_grad():
        batch = front(torch.from_numpy(clips)).numpy()
        power = front.mel_power(torch.from_numpy(clips)).numpy()
    assert batch.shape == (3, 640, 64)
    for i in range(3):
        ref = librosa.feature.melspectrogram(y=clips[i], sr=SR, n_fft=2048, hop_length=345, n_mels=64).T
        assert np.allclose(power[i], ref, rtol=1e-3, atol=1e-4 * ref.max())
        assert np.allclose(batch[i], np.log(ref + 1e-8), atol=2e-3)
    # batched == one at a time
    with torch.no_grad():
        one = front(torch.from_numpy(clips[1:2])).numpy()
    assert np.allclose(one[0], batch[1], atol=1e-5)


def test_logmel_to_mel_inverts_the_log():
    front = LogMel()
    x = torch.randn(1, 220500)
    with torch.no_grad():
        p = front.mel_power(x)
        back = logmel_to_mel(front(x))
    assert torch.allclose(back, p, rtol=1e-4, atol=1e-6)
    assert np.allclose(logmel_to_mel(np.log(np.array([2.0]) + 1e-8)), 2.0)


def test_filterbank_follows_spec():
    fb = mel_filterbank(FeatureSpec())
    assert fb.shape == (64, 1025)
    assert np.allclose(fb, librosa.filters.mel(sr=22050, n_fft=2048, n_mels=64))


def test_written_out_stft_equals_torch_stft():
    """The frontend frames and FFTs itself (2x faster on CPU); it must equal torch.stft(center=True)."""
    front = LogMel()
    x = torch.randn(2, 220500)
    s = torch.stft(x, 2048, 345, window=torch.hann_window(2048), center=True, pad_mode="constant",
                   return_complex=True)
    ref = torch.matmul(s.abs().square().transpose(1, 2), torch.from_numpy(mel_filterbank()).T)
    with torch.no_grad():
        assert torch.allclose(front.mel_power(x), ref, rtol=1e-4, atol=1e-4 * float(ref.max()))
