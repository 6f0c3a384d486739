"""The ``spoken-digits`` task: "zero".."nine" spoken by the espeak-ng speech engine.

How a split is made:

- The rows of a split are cut into blocks of 30 (block ``(split number, row // 30)``). A block holds each
  digit three times ("takes"), in a seeded order (:func:`block_order`), all spoken by one voice drawn
  from ``(task seed, block)``: an English espeak-ng language (en-us, en-gb, en-gb-scotland,
  en-gb-x-rp, en-029, ... whichever are installed), a voice variant (m1..m8, f1..f5, klatt*, named
  variants, or none), speed ``-s`` 130..200 words/min and pitch ``-p`` 25..75; every take has its
  own SSML prosody (rate 80-125 %, pitch 85-120 %), so no two utterances are the same.
- One espeak-ng call per block speaks its 30 words, separated by 600 ms SSML breaks; the waveform
  is resampled to the task's sample rate (``scipy.signal.resample_poly``) and cut at the silences
  (if that does not give exactly 30 words, each word is synthesised on its own instead). Calls run
  in a thread pool.
- Each word, trimmed of silence, is peak-normalised to 0.3-0.9, placed at a random offset in the
  fixed-length clip (centre-cropped in the rare case it is longer) and mixed with white noise
  (std 0.001-0.02).

Voices are drawn independently per block, so train, val and test share the pool of voices (not the
same utterances: speed, pitch and the random draws differ); splits are disjoint by index only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from math import gcd

import numpy as np
from scipy.signal import resample_poly
from tqdm import tqdm

from ..errors import DataError
from .common import MASK63, MAX_SPLIT_SIZE, example_rng, split_indices, task_seed
from .config import WorldConfig
from .digits import DIGIT_NAMES

CLASS_NAMES = {"spoken-digits": list(DIGIT_NAMES)}
SPEECH_SALT = 0x5BEEC
TAKES = 3  # takes of each digit per voice block (different SSML rate and pitch)
BLOCK = 10 * TAKES
BREAK_MS = 600
MIN_GAP_S = 0.25
INSTALL_HINT = "spoken-digits needs the espeak-ng speech engine; install it with `apt-get install espeak-ng`"

PREFERRED_LANGUAGES = (
    "en", "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
    "en-029", "en-us-nyc",
)  # fmt: skip
PREFERRED_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "klatt4", "Andy", "Annie", "Denis", "Gene", "Jacky", "Lee", "Mike",
    "max", "paul", "rob", "steph", "zac", "john", "david", "edward", "linda", "belinda", "caleb",
    "norbert", "robert", "travis", "victor",
)  # fmt: skip


def espeak_path() -> str | None:
    return shutil.which("espeak-ng")


def espeak_available() -> bool:
    """True when the ``espeak-ng`` executable is on the PATH and runs."""
    return _espeak_version() is not None


@lru_cache(maxsize=1)
def _espeak_version() -> str | None:
    exe = espeak_path()
    if exe is None:
        return None
    try:
        res = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def _voice_table(arg: str) -> list[list[str]]:
    res = subprocess.run([espeak_path() or "espeak-ng", arg], capture_output=True, text=True, timeout=20)
    return [line.split() for line in res.stdout.splitlines()[1:] if line.split()]


@lru_cache(maxsize=1)
def espeak_voices() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(languages, variants)``: the preferred English languages and voice variants this espeak-ng
    installation has (MBROLA voices are left out). ``""`` stands for "no variant"."""
    langs = {row[1] for row in _voice_table("--voices=en") if len(row) >= 5 and not row[4].startswith("mb/")}
    variants = {row[4][3:] for row in _voice_table("--voices=variant") if len(row) >= 5 and row[4].startswith("!v/")}
    languages = tuple(lang for lang in PREFERRED_LANGUAGES if lang in langs) or ("en",)
    return languages, ("",) + tuple(v for v in PREFERRED_VARIANTS if v in variants)


def speech_fingerprint() -> str:
    langs, variants = espeak_voices()
    return f"{_espeak_version()}|{','.join(langs)}|{','.join(variants)}"


def _parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """16-bit mono PCM from espeak-ng's ``--stdout`` (its header's sizes are not filled in)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise DataError("espeak-ng did not return a WAV stream", espeak_path())
    rate = int.from_bytes(data[24:28], "little")
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if chunk == b"data":
            body = data[pos + 8 :]
            body = body[: len(body) // 2 * 2]
            return np.frombuffer(body, dtype="<i2").astype(np.float32) / 32768.0, rate
        pos += 8 + size
    raise DataError("espeak-ng WAV stream has no data chunk", espeak_path())


def _speak(text: str, voice: str, speed: int, pitch: int, ssml: bool) -> tuple[np.ndarray, int]:
    exe = espeak_path()
    if exe is None:
        raise DataError(INSTALL_HINT)
    cmd = [exe, "--stdout", "-v", voice, "-s", str(speed), "-p", str(pitch)] + (["-m"] if ssml else []) + [text]
    res = subprocess.run(cmd, capture_output=True, timeout=60)
    if res.returncode != 0 or len(res.stdout) < 100:
        raise DataError(f"espeak-ng failed ({' '.join(cmd)}): {res.stderr.decode(errors='replace').strip()}", exe)
    return _parse_wav(res.stdout)


def _frame_rms(x: np.ndarray, frame: int) -> np.ndarray:
    n = len(x) // frame
    return np.sqrt((x[: n * frame].reshape(n, frame) ** 2).mean(axis=1))


def _segments(x: np.ndarray, rate: int, min_gap_s: float = MIN_GAP_S) -> list[tuple[int, int]]:
    """Sample ranges of the sounds in ``x`` separated by silences of at least ``min_gap_s``."""
    frame = max(1, rate // 100)  # 10 ms
    rms = _frame_rms(x, frame)
    if len(rms) == 0 or rms.max() <= 0:
        return []
    loud = np.flatnonzero(rms > max(1.5e-3 * rms.max(), 2e-4))
    if len(loud) == 0:
        return []
    min_gap = int(round(min_gap_s * 100))
    breaks = np.flatnonzero(np.diff(loud) > min_gap)
    starts = np.concatenate([[loud[0]], loud[breaks + 1]])
    ends = np.concatenate([loud[breaks], [loud[-1]]])
    return [(int(s) * frame, min(len(x), (int(e) + 1) * frame)) for s, e in zip(starts, ends)]


def _trim(x: np.ndarray, rate: int) -> np.ndarray:
    segs = _segments(x, rate, min_gap_s=10.0)
    return x[segs[0][0] : segs[-1][1]] if segs else x


def _resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return x.astype(np.float32)
    g = gcd(rate, target)
    return resample_poly(x, target // g, rate // g).astype(np.float32)


def block_of(index: int) -> tuple[tuple[int, int], int]:
    """``(block, position)`` of a global index; blocks start at each split's first index."""
    split_no, local = divmod(int(index), MAX_SPLIT_SIZE)
    return (split_no, local // BLOCK), local % BLOCK


def block_voice(seed: int, block: tuple[int, int]) -> dict:
    """The voice of ``block`` (language+variant, speed, pitch), the SSML rate/pitch of each item and
    the speaking order (:func:`block_order`)."""
    langs, variants = espeak_voices()
    rng = np.random.default_rng((SPEECH_SALT, int(seed) & MASK63, *block))
    lang = langs[int(rng.integers(len(langs)))]
    variant = variants[int(rng.integers(len(variants)))]
    return {
        "voice": f"{lang}+{variant}" if variant else lang,
        "speed": int(rng.integers(130, 201)),
        "pitch": int(rng.integers(25, 76)),
        "rate_pct": rng.integers(80, 126, size=BLOCK).tolist(),  # per item, SSML prosody
        "pitch_pct": rng.integers(85, 121, size=BLOCK).tolist(),
        "order": block_order(seed, block),
    }


def block_order(seed: int, block: tuple[int, int]) -> list[int]:
    """``order[j]``: the item spoken ``j``-th in ``block``, which is also the item of the block's
    ``j``-th index (item ``k`` = digit ``k // TAKES``, take ``k % TAKES``)."""
    return np.random.default_rng((SPEECH_SALT, int(seed) & MASK63, *block, 1)).permutation(BLOCK).tolist()


def block_labels(seed: int, indices: np.ndarray) -> np.ndarray:
    """Digit labels of global ``indices``: every block of ``BLOCK`` indices holds each digit
    ``TAKES`` times."""
    orders: dict[tuple[int, int], list[int]] = {}
    out = np.empty(len(indices), dtype=np.int64)
    for row, index in enumerate(np.asarray(indices).tolist()):
        block, pos = block_of(index)
        if block not in orders:
            orders[block] = block_order(seed, block)
        out[row] = orders[block][pos] // TAKES
    return out


def speak_block(seed: int, block: tuple[int, int], sample_rate: int) -> list[np.ndarray]:
    """The ``BLOCK`` spoken items of ``block`` (index = item), trimmed, at ``sample_rate``."""
    v = block_voice(seed, block)
    brk = f' <break time="{BREAK_MS}ms"/> '
    said = [
        f'<prosody rate="{v["rate_pct"][k]}%" pitch="{v["pitch_pct"][k]}%">{DIGIT_NAMES[k // TAKES]}</prosody>'
        for k in v["order"]
    ]
    x, rate = _speak("<speak>" + brk.join(said) + "</speak>", v["voice"], v["speed"], v["pitch"], ssml=True)
    x = _resample(x, rate, sample_rate)
    segs = _segments(x, sample_rate)
    if len(segs) == BLOCK:
        words: list[np.ndarray] = [np.empty(0, np.float32)] * BLOCK
        for (s, e), k in zip(segs, v["order"]):
            words[k] = x[s:e]
        return words
    # fall back to one call per item
    words = []
    for k in range(BLOCK):
        text = f'<speak><prosody rate="{v["rate_pct"][k]}%" pitch="{v["pitch_pct"][k]}%">{DIGIT_NAMES[k // TAKES]}</prosody></speak>'
        w, rate_w = _speak(text, v["voice"], v["speed"], v["pitch"], ssml=True)
        words.append(_trim(_resample(w, rate_w, sample_rate), sample_rate))
    return words


def generate_spoken_digits(name: str, seed: int, split: str, n: int, cfg: WorldConfig) -> dict[str, np.ndarray]:
    if not espeak_available():
        raise DataError(INSTALL_HINT, "espeak-ng")
    ts = task_seed(seed, name)
    idx = split_indices(split, n)
    labels = block_labels(ts, idx)
    blocks = sorted({block_of(i)[0] for i in idx.tolist()})
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        jobs = pool.map(lambda b: speak_block(ts, b, cfg.sample_rate), blocks)
        bar = tqdm(jobs, total=len(blocks), desc=f"{name}/{split} (espeak-ng)", disable=not cfg.progress)
        spoken = dict(zip(blocks, list(bar)))
    orders = {b: block_order(ts, b) for b in blocks}
    S = cfg.num_samples
    audio = np.empty((n, S), dtype=np.float32)
    for row, (index, label) in enumerate(zip(idx.tolist(), labels.tolist())):
        rng = example_rng(ts, index)
        block, pos = block_of(index)
        word = spoken[block][orders[block][pos]]  # an utterance of digit `label`
        if len(word) > S:
            start = (len(word) - S) // 2
            word = word[start : start + S]
        peak = float(np.max(np.abs(word))) if len(word) else 0.0
        gain = rng.uniform(0.3, 0.9) / peak if peak > 0 else 0.0
        offset = int(rng.integers(0, S - len(word) + 1))
        x = rng.standard_normal(S).astype(np.float32) * np.float32(rng.uniform(0.001, 0.02))
        x[offset : offset + len(word)] += word * np.float32(gain)
        audio[row] = np.clip(x, -1.0, 1.0)
    return {"audio": audio, "label": labels}
