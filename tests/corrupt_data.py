"""Corrupted data files and ONNX graphs (tests/corrupt.py's outcomes).

Data files (sentiment CSV, time-series CSV, CoNLL, MNIST npz, translation TSV, text):
truncated, bit-flipped, or replaced by something foreign (a PNG, random bytes, an empty
file, a folder, NUL bytes, another loader's file, wrong columns). A data file has no
checksum, so a corrupted one that still parses is simply other data: the outcomes are
``clear`` (one RnnkitError that names the file, or --data), ``unnamed`` (an RnnkitError that
does not: a defect), ``loaded`` (parsed as other data) and ``raw`` (a defect).

ONNX graphs: truncated, bit-flipped (a flip inside an initializer's raw data is a
different valid model: "weights-bytes"), foreign bytes, and valid ONNX of other graphs (an
unsupported operator, a model of other sizes); loaded and run on the good graph's feeds.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from rnnkit.errors import RnnkitError

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))


def data_loaders(data: dict) -> dict:
    """name -> (good file or folder, load(path))."""
    from rnnkit.apps import char_lm, forecast, mnist, sentiment, words
    from rnnkit.data.conll import read_conll
    from rnnkit.data.parallel import read_pairs
    return {
        "sentiment CSV": (data["sentiment"], lambda p: sentiment.read_rows(str(p), "text",
                                                                            "label")),
        "time-series CSV": (data["forecast"], lambda p: forecast.read_series(
            forecast.ForecastConfig(data=str(p)))),
        "CoNLL": (data["ner"] / "train.txt", read_conll),
        "MNIST npz": (data["mnist"], lambda p: mnist.load_images(str(p))),
        "translation TSV": (data["translate"], lambda p: read_pairs(str(p), "en")),
        "text (char)": (data["text"], lambda p: char_lm._read_text(
            char_lm.CharLMConfig(text=str(p)))),
        "text (words)": (data["words"], lambda p: words.read_tokens(
            words.WordsConfig(data=str(p)))),
    }


def _foreign(good: Path, others: list) -> list:
    """(description, bytes or "folder") that are not this loader's format."""
    rng = np.random.default_rng(0)
    out = [("a PNG", PNG), ("random bytes", rng.integers(0, 256, 2000, np.uint8).tobytes()),
           ("an empty file", b""), ("a folder", "folder"), ("NUL bytes", b"\x00" * 300),
           ("wrong columns", b"a,b;c\n1,2;3\n4,5;6\n"),
           ("one line without a newline", good.read_bytes()[:40].split(b"\n")[0])]
    out += [(f"{o.name} instead", o.read_bytes()) for o in others if o != good and o.is_file()]
    return out


def classify_data(load, path: Path) -> str:
    try:
        load(path)
    except RnnkitError as e:
        text = str(e)
        return "clear" if (str(path) in text or path.name in text or "--data" in text or
                           text.startswith(("data:", "text:"))) else "unnamed"
    except Exception as e:          # noqa: BLE001 (this is what the harness measures)
        return f"raw:{type(e).__name__}"
    return "loaded"


def data_cases(folder: Path, rng: random.Random, limit: int):
    """(loader, description, content, good file, load, -, -, kind) for every data loader."""
    from tiny_runs import make_data
    loaders = data_loaders(make_data(folder / "data"))
    others = [g for g, _ in loaders.values()]
    for name, (good, load) in loaders.items():
        raw = good.read_bytes()
        for desc, mutated in _mutations(raw, rng, limit):
            yield name, desc, mutated, good, load, None, None, "data-bytes"
        for desc, content in _foreign(good, others):
            yield name, desc, content, good, load, None, None, "data-foreign"


def _mutations(raw: bytes, rng: random.Random, limit: int):
    for _ in range(max(1, limit // 3)):
        at = rng.randrange(len(raw))
        yield f"truncated at {at}/{len(raw)}", raw[:at]
    for _ in range(max(1, limit - limit // 3)):
        at, bit = rng.randrange(len(raw)), rng.randrange(8)
        b = bytearray(raw)
        b[at] ^= 1 << bit
        yield f"bit {bit} of byte {at} flipped", bytes(b)


def _place(content, path: Path) -> Path:
    """Put a case's content at `path` (bytes, or "folder" for an empty folder), replacing
    what the case before left there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        path.rmdir()
    elif path.exists():
        path.unlink()
    if content == "folder":
        path.mkdir()
    else:
        path.write_bytes(content)
    return path


def data_outcome(case, work: Path) -> str:
    name, desc, content, good, load = case[:5]
    return classify_data(load, _place(content, work / good.name))


# --- ONNX --------------------------------------------------------------------------------------
def onnx_cases(folder: Path, rng: random.Random, limit: int):
    """(loader, description, bytes or "folder", -, feeds, -, reference, kind)."""
    import onnx
    from onnx import TensorProto, helper

    import rnnkit
    import rnnkit.onnx
    folder.mkdir(parents=True, exist_ok=True)
    model = rnnkit.models.SequenceModel(input_size=3, hidden_size=4, cell="lstm",
                                        output_size=2, seed=0)
    good = folder / "good.onnx"
    rnnkit.onnx.export(model, good)
    feeds = {i.name: np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
             for i in onnx.load(str(good)).graph.input[:1]}
    reference = rnnkit.onnx.run(good, feeds)
    raw = good.read_bytes()
    weights = []
    for init in onnx.load(str(good)).graph.initializer:
        at = raw.find(init.raw_data) if init.raw_data else -1
        if at >= 0:
            weights.append((at, at + len(init.raw_data)))

    def kind_at(at):
        return "weights-bytes" if any(a <= at < b for a, b in weights) else "onnx-bytes"
    for _ in range(max(1, limit // 3)):
        at = rng.randrange(len(raw))
        yield "rnnkit.onnx", f"truncated at {at}/{len(raw)}", raw[:at], None, feeds, None, \
            reference, "onnx-bytes"
    for _ in range(max(1, limit - limit // 3)):
        at, bit = rng.randrange(len(raw)), rng.randrange(8)
        b = bytearray(raw)
        b[at] ^= 1 << bit
        yield "rnnkit.onnx", f"bit {bit} of byte {at} flipped", bytes(b), None, feeds, None, \
            reference, kind_at(at)
    for desc, content in (("a PNG", PNG), ("random bytes", bytes(rng.randrange(256)
                                                                 for _ in range(500))),
                          ("an empty file", b""), ("a folder", "folder"),
                          ("a text file", b"not a model\n")):
        yield "rnnkit.onnx", desc, content, None, feeds, None, reference, "onnx-foreign"
    x = helper.make_tensor_value_info(next(iter(feeds)), TensorProto.FLOAT, [2, 5, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, 3])
    conv = helper.make_model(helper.make_graph([helper.make_node("Conv", [x.name, x.name], ["y"])],
                                               "other", [x], [y]))
    yield "rnnkit.onnx", "a valid ONNX of another operator (Conv)", conv.SerializeToString(), \
        None, feeds, None, reference, "onnx-foreign"
    other = rnnkit.models.SequenceModel(input_size=7, hidden_size=4, cell="gru", output_size=2,
                                        seed=1)
    rnnkit.onnx.export(other, folder / "other.onnx")
    yield "rnnkit.onnx", "a valid ONNX of another model (input size 7)", \
        (folder / "other.onnx").read_bytes(), None, feeds, None, reference, "onnx-foreign"


def onnx_outcome(case, work: Path) -> str:
    import rnnkit.onnx
    _, _, content, _, feeds, _, reference, _ = case
    path = _place(content, work / "model.onnx")
    try:
        got = rnnkit.onnx.run(path, feeds)
    except RnnkitError:
        return "clear"
    except Exception as e:          # noqa: BLE001
        return f"raw:{type(e).__name__}"
    same = len(got) == len(reference) and all(
        a.shape == b.shape and np.array_equal(a, b, equal_nan=True) for a, b in zip(got, reference))
    return "same" if same else "changed"
