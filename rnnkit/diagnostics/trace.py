"""Step tables: what a recurrent cell computes at each time step, forward and back, laid out
as the notes' worked examples (note 000's table; note 004's stock prices and its BPTT).

Forward, per step t: the input x_t, the pre-activations (the arguments of the cell's
nonlinearities, before any ``clip``), the gates (LSTM i, f, C~, o; GRU r, z, h~), the cell
state C_t (LSTM), h_t and the output y_t = W_hy h_t + b_y. Backward, in the order BPTT runs
(t = T down to 1): dL/dy_t, dL/dh_t (from the output and from step t + 1; the LSTM's dL/dC_t
likewise) and every parameter's gradient summed over steps t..T, so the last row is dL/dW.

Every value comes from the cells' own reference pair (``spec.step`` / ``spec.step_back``,
rnnkit.cells), the output layer's (rnnkit.layers.Dense) and rnnkit.losses, run in float64
on one sequence; only the pre-activations are recomputed here for display (the step keeps
the gates, not their arguments), and a test pins them to the gates.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rnnkit import cells
from rnnkit.errors import check_array, fail
from rnnkit.layers import Dense, Recurrent
from rnnkit.losses import final_step, mean_squared_error, softmax_cross_entropy

LOSSES = ("sum", "mse", "xent")
# where a cell's reference step keeps its gates in the cache (rnnkit/cells/lstm.py, gru.py)
GATES_AT = {"lstm": 3, "gru": 2}


@dataclass
class Trace:
    """One sequence through one layer: ``steps[t]`` and ``backward[k]`` map a column name to
    its value (an array; one number for scalar models). ``backward`` runs t = T, ..., 1."""
    cell: str
    steps: list = field(default_factory=list)
    backward: list = field(default_factory=list)
    loss: float | None = None
    loss_name: str = ""

    def table(self, digits: int = 3) -> str:
        return format_table(self.steps, digits)

    def backward_table(self, digits: int = 3) -> str:
        return format_table(self.backward, digits)

    def column(self, name: str) -> np.ndarray:
        """One forward column over the steps, stacked: (T, ...)."""
        return np.stack([np.asarray(s[name]) for s in self.steps])

    def to_json(self) -> dict:
        def plain(rows):
            return [{k: np.asarray(v).tolist() for k, v in r.items()} for r in rows]
        return {"cell": self.cell, "loss": self.loss, "loss_name": self.loss_name,
                "steps": plain(self.steps), "backward": plain(self.backward)}


# --- pre-activations (display) ---------------------------------------------------------------
def pre_activations(cell: str, options: dict, x_t, h_prev, p, cache) -> dict:
    """The arguments of the cell's nonlinearities at one step (unclipped), by gate."""
    if cell == "indrnn":
        return {"a": x_t @ p["W_xh"].T + p["u"] * h_prev + p["b"]}
    if cell not in ("rnn", "lstm", "gru"):
        return {}
    H = h_prev.shape[1]
    a_x = x_t @ p["W_xh"].T + p["b_xh"]
    a_h = h_prev @ p["W_hh"].T + p["b_hh"]
    if cell == "rnn":
        return {"a": a_x + a_h}
    if cell == "lstm":
        a = a_x + a_h
        blocks = {g: a[:, k * H:(k + 1) * H] for k, g in enumerate(("i", "f", "c~", "o"))}
        if options.get("peepholes"):
            P, c_prev, c_t = p["P"].reshape(3, H), cache[2], cache[7]
            blocks["i"], blocks["f"] = blocks["i"] + P[0] * c_prev, blocks["f"] + P[1] * c_prev
            blocks["o"] = blocks["o"] + P[2] * c_t
        return {f"a_{g}": v for g, v in blocks.items()}
    r = cache[2]
    out = {"a_r": a_x[:, :H] + a_h[:, :H], "a_z": a_x[:, H:2 * H] + a_h[:, H:2 * H]}
    if options.get("reset_after", True):
        out["a_h~"] = a_x[:, 2 * H:] + r * a_h[:, 2 * H:]
    else:
        out["a_h~"] = a_x[:, 2 * H:] + (r * h_prev) @ p["W_hh"][2 * H:].T + p["b_hh"][2 * H:]
    return out


# --- one layer, forward and back -------------------------------------------------------------
def forward_steps(spec, options: dict, p: dict, x: np.ndarray, states0: tuple):
    """x (T, D) -> (rows, caches, hs (T, H)): the step table's rows without outputs."""
    states, rows, caches, hs = tuple(s[None] for s in states0), [], [], []
    for t in range(x.shape[0]):
        x_t = x[t:t + 1]
        h_prev = states[0]
        *new, cache = spec.step(x_t, *states, p, **options)
        row = {"t": t + 1, "x": x_t[0]}
        row.update({k: v[0] for k, v in
                    pre_activations(spec.name, options, x_t, h_prev, p, cache).items()})
        if spec.name in GATES_AT:
            at = GATES_AT[spec.name]
            row.update({g: cache[at + k][0] for k, g in enumerate(spec.gates)})
        if spec.has_cell_state:
            row["c"] = new[1][0]
        row["h"] = new[0][0]
        states = tuple(new)
        rows.append(row)
        caches.append(cache)
        hs.append(new[0][0])
    return rows, caches, np.stack(hs)


def backward_steps(spec, options: dict, p: dict, caches: list, dh_out: np.ndarray):
    """dL/dh_t from above (T, H) -> (rows in BPTT order, dL/dx (T, D), summed grads)."""
    T, H = dh_out.shape
    d_next = [np.zeros((1, H)) for _ in spec.states]
    total = {name: np.zeros_like(v) for name, v in p.items()}
    rows, dx = [], [None] * T
    for t in range(T - 1, -1, -1):
        d_next[0] = d_next[0] + dh_out[t:t + 1]         # h_t feeds the output and step t + 1
        row = {"t": t + 1, "dL/dh": d_next[0][0]}
        if spec.has_cell_state:
            row["dL/dc"] = d_next[1][0]
        dx_t, *d_prev, grads = spec.step_back(*d_next, caches[t], p, **options)
        for name, g in grads.items():
            total[name] = total[name] + g
        row.update({f"dL/d{name}": total[name].copy() for name in p})
        rows.append(row)
        dx[t], d_next = dx_t[0], list(d_prev)
    return rows, np.stack(dx), total


# --- a cell with an output layer --------------------------------------------------------------
def _loss(name: str, y: np.ndarray, targets):
    """L and dL/dy for y (1, T, O): "sum" L = sum of every y_t; "mse" sum of squared errors
    against targets (T values: every step; 1: the last step); "xent" softmax cross-entropy
    against class ids (every step, or the last)."""
    if name == "sum":
        return float(y.sum()), np.ones_like(y)
    if targets is None:
        fail("targets", f"target values for loss {name!r}", None)
    t = np.asarray(targets, dtype=np.int64 if name == "xent" else np.float64)
    T, O = y.shape[1:]
    per_step = (T,) if name == "xent" else (T, O)
    last = () if name == "xent" else (O,)
    if t.size == int(np.prod(per_step)):
        fn = softmax_cross_entropy if name == "xent" else mean_squared_error
        return fn(y, t.reshape((1,) + per_step), reduction="sum")
    if t.size == int(np.prod(last, dtype=np.int64)):
        fn = final_step(softmax_cross_entropy if name == "xent" else mean_squared_error)
        return fn(y, t.reshape((1,) + last), reduction="sum")
    fail("targets", f"{int(np.prod(per_step))} values (every step) or "
         f"{int(np.prod(last, dtype=np.int64))} (the last step)", f"{t.size} values")


def trace_cell(cell: str, params: dict, x, *, options: dict | None = None,
               head: dict | None = None, state0=None, loss: str = "sum", targets=None,
               readout: str = "steps", backward: bool = True) -> Trace:
    """The step tables of one sequence ``x`` (T, D) through a cell with parameters ``params``
    (the cell's names and shapes, rnnkit.cells) and, if given, an output layer ``head``
    {"W_hy" (O, H), "b_y" (O,)} read at every step (``readout="steps"``) or at the last
    ("last"). ``state0``: h_0 (H,) (LSTM: (h_0, C_0)), zeros by default. Computed in float64."""
    spec = cells.get(cell)
    options = spec.resolve(options or {})
    if loss not in LOSSES:
        fail("loss", f"one of {LOSSES}", repr(loss))
    x = _array("x", x, (None, None), "(T, D)")
    if x.shape[0] == 0:
        fail("x", "at least one time step", "none")
    if not isinstance(params, dict):
        fail("params", "a dict of the cell's named arrays", type(params).__name__)
    p = {k: _array(f"params[{k!r}]", v, None) for k, v in params.items()}
    shapes = spec.params(x.shape[1], _hidden(spec, p), **options)
    for name, (shape, _) in shapes.items():
        if name not in p:
            fail(f"params[{name!r}]", f"an array of shape {shape}", "missing")
        _array(f"params[{name!r}]", p[name], shape)
    H = _hidden(spec, p)
    states0 = _states(spec, state0, H)
    rows, caches, hs = forward_steps(spec, options, p, x, states0)
    trace = Trace(spec.name, rows)
    read = hs[None] if readout == "steps" else hs[None, -1:]        # (1, steps read, H)
    first = len(rows) - read.shape[1]                               # the first step read
    dense = None
    if head is not None:
        dense = Dense(H, np.asarray(head["W_hy"]).shape[0], dtype=np.float64)
        for name in ("W_hy", "b_y"):
            dense.params[name][...] = _array(f"head[{name!r}]", head[name],
                                             dense.params[name].shape)
        y, _ = dense.forward(read)
        for k in range(y.shape[1]):
            rows[first + k]["y"] = y[0, k]
    else:
        y = read
    if not backward:
        return trace
    trace.loss, dy = _loss(loss, y, targets)
    trace.loss_name = loss
    # the output layer step by step, t = T first as BPTT runs: dL/dh_t from y_t, and the
    # output layer's gradient summed over steps t..T (Dense adds into its grads)
    dh_out, head_sums = np.zeros_like(hs), {}
    for k in range(dy.shape[1] - 1, -1, -1):
        if dense is None:
            dh_out[first + k] = dy[0, k]
            continue
        _, cache = dense.forward(read[:, k:k + 1])
        dh_out[first + k] = dense.backward(dy[:, k:k + 1], cache)[0, 0]
        head_sums[first + k] = {f"dL/d{n}": g.copy() for n, g in dense.grads.items()}
    back, _, _ = backward_steps(spec, options, p, caches, dh_out)
    for row in back:
        t = row["t"] - 1
        out = {"t": row["t"]}
        if t >= first:
            out["dL/dy"] = dy[0, t - first]
        out.update((k, v) for k, v in row.items() if k != "t")
        out.update(head_sums.get(t, head_sums.get(first, {})))
        trace.backward.append(out)
    return trace


def _hidden(spec, p: dict) -> int:
    """H from the input weights W_xh (gates*H, D), which every cell has."""
    if "W_xh" not in p or p["W_xh"].ndim != 2:
        fail("params['W_xh']", f"the input weights of a {spec.name} cell, a 2-d array",
             "missing" if "W_xh" not in p else f"shape {p['W_xh'].shape}")
    return max(1, p["W_xh"].shape[0] // spec.n_gates)


def _states(spec, state0, H: int) -> tuple:
    if state0 is None:
        return tuple(np.zeros(H) for _ in spec.states)
    given = state0 if isinstance(state0, tuple) else (state0,)
    if len(given) != len(spec.states):
        fail("state0", f"{len(spec.states)} arrays ({', '.join(spec.states)})", len(given))
    return tuple(_array(f"state0[{i}]", s, (H,)) for i, s in enumerate(given))


def _array(name: str, value, shape: tuple | None, layout: str = "") -> np.ndarray:
    """``value`` as a float64 array of ``shape`` (None: any), finite; else RnnkitError."""
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        fail(name, "numbers", repr(value)[:60])
    return check_array(name, a, ndim=a.ndim if shape is None else len(shape), shape=shape,
                       layout=layout)


# --- printing ----------------------------------------------------------------------------------
def _cell_text(v, digits: int) -> str:
    a = np.asarray(v, dtype=np.float64).ravel()
    if a.size == 1:
        return _number(float(a[0]), digits) if np.asarray(v).dtype.kind == "f" else str(v)
    return "[" + ", ".join(_number(float(e), digits) for e in a) + "]"


def _number(v: float, digits: int) -> str:
    if v != 0 and (abs(v) < 10 ** -digits or abs(v) >= 10 ** 6):
        return f"{v:.{max(digits - 1, 1)}e}"
    return f"{v:.{digits}f}"


def format_table(rows: list, digits: int = 3) -> str:
    """Rows of {column: value} as aligned text; a column missing from a row is blank."""
    columns = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    cells_ = [[_cell_text(r[c], digits) if c in r else "" for c in columns] for r in rows]
    widths = [max([len(c)] + [len(line[i]) for line in cells_]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(line, widths)).rstrip() for line in cells_]
    return "\n".join(lines)


# --- a model's layer -------------------------------------------------------------------------
def trace_model(model, inputs, *, layer: int = 0, loss: str = "sum", targets=None,
                backward: bool = True) -> Trace:
    """The step tables of one sequence through recurrent layer ``layer`` of ``model``: a
    Recurrent layer (RNN, LSTM, GRU, ...) or a model holding one as ``.rnn`` (SequenceModel,
    LanguageModel). ``inputs``: (T, D) features, or (T,) token ids for a model with an
    embedding. The layers below ``layer`` are run first (by the same steps); the model's
    output layer gives y_t for its top layer (per step, or at the last for readout="last"),
    and a lower layer's table has no y (its loss reads h_t). Computed in float64."""
    rnn = model if isinstance(model, Recurrent) else getattr(model, "rnn", None)
    if not isinstance(rnn, Recurrent):
        fail("model", "a recurrent layer or a model with one as .rnn (SequenceModel, "
             "LanguageModel)", type(model).__name__)
    if rnn.bidirectional or rnn.reverse:
        fail("model", "a recurrent layer reading forwards (a step table follows one "
             "direction)", f"bidirectional={rnn.bidirectional}, reverse={rnn.reverse}")
    if not isinstance(layer, int) or not 0 <= layer < rnn.num_layers:
        fail("layer", f"an integer in [0, {rnn.num_layers - 1}]", repr(layer))
    embed = getattr(model, "embed", None)
    if embed is not None:
        ids = np.asarray(inputs)
        if ids.ndim != 1:
            fail("inputs", "(T,) token ids", f"shape {ids.shape}")
        x = embed.forward(ids[None])[0][0]
    else:
        x = _array("inputs", inputs, (None, rnn.input_size), "(T, D)")
    for below in range(layer):
        _, _, hs = forward_steps(rnn.spec, rnn.options, layer_params(rnn, below),
                                 np.asarray(x, np.float64),
                                 tuple(np.zeros(rnn.hidden_size) for _ in rnn.spec.states))
        x = hs
    head, readout = None, "steps"
    dense = getattr(model, "head", None)
    if dense is not None and layer == rnn.num_layers - 1:
        if dense.activation != "identity":
            fail("model", "an output layer with activation 'identity'", dense.activation)
        head, readout = dense.params, getattr(model, "readout", "steps")
    return trace_cell(rnn.spec.name, layer_params(rnn, layer), x, options=rnn.options,
                      head=head, loss=loss, targets=targets, readout=readout,
                      backward=backward)


def layer_params(layer: Recurrent, index: int = 0, direction: int = 0) -> dict:
    """One scan's parameters by the cell's names (W_xh, W_hh, ...), as float64 copies."""
    prefix = layer.prefix(index, direction)
    return {k[len(prefix):]: v.astype(np.float64) for k, v in layer.params.items()
            if k.startswith(prefix)}
