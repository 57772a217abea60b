"""`rnnkit trace`: the step tables of a cell (forward, and BPTT backward) and, with --flow,
the gradient flow through time of RNN vs LSTM vs GRU (rnnkit.diagnostics).

    rnnkit trace --example note000            note 000's worked example
    rnnkit trace --example note004            note 004's stock prices (hidden size 2)
    rnnkit trace --cell rnn --x 1 2 3 --W_xh 0.5 --W_hh 0.3 --b_h 0.1 --W_hy 0.4 --b_y 0.2
    rnnkit trace --model MODEL --x ...        a saved model (rnnkit.models.save) on features
    rnnkit trace --run RUN --text "To be"     a run of `rnnkit text` on a string
    rnnkit trace --flow --length 100 --png flow.png
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from rnnkit import cells
from rnnkit.diagnostics.trace import LOSSES, trace_cell, trace_model
from rnnkit.errors import check_output_file, fail
from rnnkit.serialize import save_json

SUMMARY = "step tables of a cell forward and back (BPTT), and gradient flow through time"

EXAMPLES = {
    "note000": dict(
        title="note 000: h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h), y_t = W_hy h_t + b_y; "
              "W_xh = 0.5, W_hh = 0.3, b_h = 0.1, W_hy = 0.4, b_y = 0.2, h_0 = 0, X = [1, 2, 3]"
              "\n# (the note carries h_2 = 0.85 forward, writing h_2 = 0.850 and y_2 = 0.540; "
              "tanh(1.261) = 0.8514, so h_2 = 0.851 and y_2 = 0.541)\n# backward: "
              "L = y_1 + y_2 + y_3",
        cell="rnn", x=[[1.0], [2.0], [3.0]],
        params={"W_xh": [[0.5]], "W_hh": [[0.3]], "b_xh": [0.1], "b_hh": [0.0]},
        head={"W_hy": [[0.4]], "b_y": [0.2]}, loss="sum", targets=None, readout="steps"),
    "note004": dict(
        title="note 004: stock prices of days 1-5, hidden size 2, tanh; W_x = 0.5 and "
              "W_h = 0.2 (every entry), W_y = b_h = b_y = 0, h_0 = 0\n# y = the day-6 "
              "prediction; backward: L = (y - 110)^2, 110 continuing the trend (the note "
              "leaves day 6 as '?')",
        cell="rnn", x=[[100.0], [102.0], [104.0], [106.0], [108.0]],
        params={"W_xh": np.full((2, 1), 0.5), "W_hh": np.full((2, 2), 0.2),
                "b_xh": np.zeros(2), "b_hh": np.zeros(2)},
        head={"W_hy": np.zeros((1, 2)), "b_y": np.zeros(1)}, loss="mse", targets=[110.0],
        readout="last"),
}


def _param_names() -> list:
    names = []
    for spec in cells.CELLS.values():
        names += [n for n in spec.params(1, 1, **spec.defaults()) if n not in names]
    return names


def add_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_argument_group("what to trace (one of)")
    what.add_argument("--example", choices=sorted(EXAMPLES), help="a worked example of the notes")
    what.add_argument("--model", help="a saved model (folder or .safetensors of "
                      "rnnkit.models.save) or a bare recurrent layer; input from --x or --ids")
    what.add_argument("--run", help="a run folder of `rnnkit text`; input from --text")
    what.add_argument("--flow", action="store_true", help="gradient flow through time of "
                      "--cells at initialisation on --length steps: table and PNG (--png)")
    scalars = p.add_argument_group("a cell from numbers (a single number fills every entry; "
                                   "otherwise all entries in row-major order)")
    scalars.add_argument("--cell", default="rnn", choices=sorted(cells.CELLS))
    scalars.add_argument("--hidden-size", type=int, help="H (default 1; 32 with --flow)")
    scalars.add_argument("--input-size", type=int, default=1, help="D: --x holds T x D values")
    scalars.add_argument("--output-size", type=int, default=1, help="O of W_hy (O, H)")
    for name in _param_names() + ["b_h", "W_hy", "b_y"]:
        scalars.add_argument(f"--{name}", type=float, nargs="+", metavar="V",
                             help="the notes' single bias: b_xh = b_h, b_hh = 0"
                             if name == "b_h" else None)
    scalars.add_argument("--h0", type=float, nargs="+", metavar="V", help="h_0 (default 0)")
    scalars.add_argument("--c0", type=float, nargs="+", metavar="V", help="C_0 of an LSTM")
    data = p.add_argument_group("input, loss and output")
    data.add_argument("--x", type=float, nargs="+", metavar="V", help="the input, T x D values")
    data.add_argument("--ids", type=int, nargs="+", metavar="ID", help="token ids (--model)")
    data.add_argument("--text", help="the input string (--run)")
    data.add_argument("--layer", type=int, default=0, help="which recurrent layer (--model, "
                      "--run); default 0")
    data.add_argument("--readout", choices=("steps", "last"), default="steps",
                      help="output y at every step or at the last only")
    data.add_argument("--loss", choices=LOSSES, help="of the backward table: sum of the "
                      "outputs, squared error or cross-entropy against --targets")
    data.add_argument("--targets", type=float, nargs="+", metavar="V",
                      help="one per step, or one for the last step")
    data.add_argument("--no-backward", dest="backward", action="store_false",
                      help="the forward table only")
    data.add_argument("--digits", type=int, default=3, help="decimals printed (default 3)")
    data.add_argument("--json", help="also write the numbers to this JSON file")
    flow = p.add_argument_group("--flow")
    flow.add_argument("--cells", nargs="+", help="cells to compare (default rnn lstm gru); "
                      "'lstm+fb' is an LSTM with --forget-bias")
    flow.add_argument("--length", type=int, help="T (default 100)")
    flow.add_argument("--batch", type=int, help="rows averaged (default 16)")
    flow.add_argument("--forget-bias", type=float, help="the forget-gate bias b_xf of "
                      "'lstm+fb' (default 1)")
    flow.add_argument("--seed", type=int, help="weights and inputs (default 0)")
    flow.add_argument("--png", help="the plot (default gradient_flow.png)")


def run(args, log=print) -> int:
    for k in ("model", "run"):
        if getattr(args, k) is not None and not getattr(args, k).strip():
            fail(f"--{k}", "a path", repr(getattr(args, k)))
    chosen = [k for k in ("example", "model", "run", "flow") if getattr(args, k)]
    if len(chosen) > 1:
        fail("rnnkit trace", "one of --example, --model, --run, --flow",
             ", ".join("--" + k for k in chosen))
    for flag in ("json", "png"):
        if getattr(args, flag):
            check_output_file(f"--{flag}", getattr(args, flag))
    if args.flow:
        return _flow(args, log)
    for flag, value in FLOW_DEFAULTS.items():   # set, they would be silently unused
        if getattr(args, flag) is not None:
            fail(f"--{flag.replace('_', '-')}", "--flow with it", f"--{flag} without --flow")
    if args.example:
        ex = EXAMPLES[args.example]
        log("# " + ex["title"])
        tr = trace_cell(ex["cell"], ex["params"], ex["x"], head=ex["head"],
                        loss=args.loss or ex["loss"],
                        targets=args.targets if args.targets else ex["targets"],
                        readout=ex["readout"], backward=args.backward)
    elif args.model or args.run:
        tr = _trace_saved(args, log)
    else:
        tr = _trace_numbers(args, log)
    log(tr.table(args.digits))
    if args.backward:
        log(f"\n# backward (BPTT, t = T first): loss {tr.loss_name} L = "
            f"{tr.loss:.{args.digits}f}; dL/dh_t from y_t and from step t+1; dL/dW summed "
            f"over steps t..T")
        log(tr.backward_table(args.digits))
    if args.json:
        save_json(args.json, tr.to_json())
    return 0


def _values(name: str, values, shape: tuple) -> np.ndarray:
    """A flag's numbers as an array of ``shape``: one number fills it, else exactly its size."""
    a = np.asarray(values, np.float64)
    size = int(np.prod(shape))
    if a.size == 1:
        return np.full(shape, a[0])
    if a.size != size:
        fail(f"--{name}", f"1 or {size} numbers (shape {shape})", f"{a.size}")
    return a.reshape(shape)


def _trace_numbers(args, log):
    if not args.x:
        fail("--x", "the input sequence (T x D numbers), or --example / --model / --run / "
             "--flow", "nothing")
    for flag, needs in (("text", "--run"), ("ids", "--model")):
        if getattr(args, flag) is not None:     # read only by those; here it would be unused
            fail(f"--{flag}", f"{needs} RUN with it (a cell from numbers reads --x)",
                 f"--{flag} without {needs}")
    for name in _param_names() + ["b_h", "W_hy", "b_y", "h0", "c0", "x", "targets"]:
        values = getattr(args, name, None)
        if values is not None and not np.isfinite(values).all():
            fail(f"--{name}", "finite numbers", " ".join(map(str, values)))
    spec = cells.get(args.cell)
    D, H = args.input_size, args.hidden_size or 1
    for name, value in (("--input-size", D), ("--hidden-size", H), ("--output-size",
                                                                     args.output_size)):
        if value < 1:
            fail(name, "an integer >= 1", value)
    if len(args.x) % D:
        fail("--x", f"a multiple of --input-size {D} numbers", len(args.x))
    options = spec.defaults()
    shapes = spec.params(D, H, **options)
    given = {n: getattr(args, n, None) for n in shapes}
    for name in _param_names():         # another cell's parameter would be silently unused
        if name not in shapes and getattr(args, name, None) is not None:
            fail(f"--{name}", f"a parameter of the {spec.name} cell, one of {list(shapes)}",
                 f"--{name}")
    if args.b_h is not None:
        if "b_xh" not in shapes:
            fail("--b_h", f"a cell with b_xh and b_hh (not {spec.name})", args.b_h)
        given["b_xh"], given["b_hh"] = args.b_h, [0.0]
    params = {n: _values(n, given[n], shape) if given[n] is not None else np.zeros(shape)
              for n, (shape, _) in shapes.items()}
    head = None
    if args.W_hy is not None or args.b_y is not None:
        O = args.output_size
        head = {"W_hy": _values("W_hy", args.W_hy or [0.0], (O, H)),
                "b_y": _values("b_y", args.b_y or [0.0], (O,))}
    state0 = None
    if args.h0 is not None or args.c0 is not None:
        h0 = _values("h0", args.h0 or [0.0], (H,))
        state0 = (h0, _values("c0", args.c0 or [0.0], (H,))) if spec.has_cell_state else h0
    shown = ", ".join(f"{n} = {_short(v)}" for n, v in {**params, **(head or {})}.items())
    log(f"# {spec.name}: {spec.equations}; {shown}")
    return trace_cell(spec.name, params, np.reshape(args.x, (-1, D)), head=head,
                      state0=state0, loss=args.loss or ("mse" if args.targets else "sum"),
                      targets=args.targets, readout=args.readout, backward=args.backward)


def _short(a) -> str:
    a = np.asarray(a)
    if a.size == 1 or np.all(a == a.flat[0]):
        return f"{float(a.flat[0]):g}" + ("" if a.size == 1 else f" (all {a.size})")
    return json.dumps(np.round(a, 4).tolist())


def _trace_saved(args, log):
    loss = args.loss or ("mse" if args.targets else "sum")
    if args.run:
        from rnnkit.apps import char_lm
        _, _, _, vocab, model = char_lm._load(args.run, True)
        if not args.text or len(args.text) < 2:
            fail("--text", "a string of at least 2 characters seen in training", args.text)
        ids = vocab.encode(args.text)
        log(f"# {args.run}: {model.rnn.spec.name} layer {args.layer} reading "
            f"{args.text[:-1]!r}; backward: cross-entropy of each next character")
        return trace_model(model, ids[:-1], layer=args.layer, loss=args.loss or "xent",
                           targets=ids[1:] if (args.loss or "xent") == "xent" else args.targets,
                           backward=args.backward)
    from rnnkit.models.io import load
    model = load(args.model)
    if getattr(model, "embed", None) is not None:
        if not args.ids:
            fail("--ids", "token ids for a model with an embedding", None)
        inputs = np.asarray(args.ids)
    else:
        rnn = getattr(model, "rnn", model)
        if not args.x or len(args.x) % rnn.input_size:
            fail("--x", f"a multiple of the model's input size {rnn.input_size} numbers",
                 len(args.x or []))
        inputs = np.reshape(args.x, (-1, rnn.input_size))
    log(f"# {args.model}: layer {args.layer}")
    return trace_model(model, inputs, layer=args.layer, loss=loss, targets=args.targets,
                       backward=args.backward)


# the --flow settings' defaults (None on the command line: given without --flow is refused)
FLOW_DEFAULTS = {"cells": ["rnn", "lstm", "gru"], "length": 100, "batch": 16, "seed": 0,
                 "png": "gradient_flow.png", "forget_bias": None}


def _flow(args, log) -> int:
    from rnnkit.diagnostics.flow import compare_cells, plot_flow
    for flag, value in FLOW_DEFAULTS.items():
        if getattr(args, flag) is None:
            setattr(args, flag, value)
    known = set(cells.CELLS) | {"lstm+fb"}
    for name in args.cells:
        if name not in known:
            fail("--cells", f"names among {sorted(known)}", repr(name))
    H, T = args.hidden_size or 32, args.length
    results = compare_cells(args.cells, T, H, args.batch, args.seed, args.forget_bias)
    log(f"# gradient flow at initialisation: T = {T}, H = {H}, {args.batch} rows of N(0, 1) "
        f"inputs, squared error on the last step, seed {args.seed}")
    log("# mean ||dh_T/dh_k||_2 (Jacobian product, note 001) and mean ||dL/dh_k||")
    ks = sorted({T, T - 1, T - 10, T - 25, T // 2, 0} - {-1} & set(range(T + 1)),
                reverse=True)
    rows = []
    for k in ks:
        row = {"T-k": T - k}
        for name, r in results.items():
            row[f"{name} dh_T/dh_k"] = r["dh_T_dh_k"][k]
            if k >= 1:                  # (h_0 is no step's output: no dL/dh_0 recorded)
                row[f"{name} dL/dh_k"] = r["dL_dh"][k - 1]
        rows.append(row)
    from rnnkit.diagnostics.trace import format_table
    log(format_table(rows, 3))
    fb = 1.0 if args.forget_bias is None else args.forget_bias
    plot_flow(results, args.png, f"gradient flow through time at initialisation (T = {T}, "
              f"H = {H})", labels={"lstm+fb": f"lstm, forget-gate bias {fb:g}"})
    log(f"wrote {args.png}")
    if args.json:
        save_json(args.json, {"length": T, "hidden_size": H, "batch": args.batch,
                              "seed": args.seed, "forget_bias": args.forget_bias,
                              "cells": {n: {k: np.asarray(v).tolist() for k, v in r.items()}
                                        for n, r in results.items()}})
    return 0
