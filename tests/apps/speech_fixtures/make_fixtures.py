"""Makes the committed speech fixtures (tests/apps/test_speech.py uses them where espeak-ng is
not installed): six short digit strings spoken by espeak-ng, stored at 8 kHz (small files;
reading them also exercises the resampling to 16 kHz).

    PYTHONPATH=$PWD python tests/apps/speech_fixtures/make_fixtures.py
"""
import subprocess
import tempfile
from pathlib import Path

from rnnkit.apps.speech_corpus import write_manifest
from rnnkit.audio import read_wav, write_wav

HERE = Path(__file__).resolve().parent
UTTERANCES = [("one two", "en-us", 170), ("oh nine", "en-gb", 190), ("three", "en-us+f2", 200),
              ("five zero", "en-gb-scotland", 180), ("seven six", "en-us+m3", 200),
              ("eight four", "en-029", 190)]

rows = []
with tempfile.TemporaryDirectory() as tmp:
    for i, (text, voice, speed) in enumerate(UTTERANCES):
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text],
                       check=True)
        x = read_wav(raw, 8000)
        write_wav(HERE / f"{i}.wav", x[(x ** 2 > 1e-6).argmax():], 8000)   # lead silence off
        rows.append((f"{i}.wav", text, f"espeak-ng:{voice}"))
write_manifest(HERE, rows)
