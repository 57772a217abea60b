"""The Seq2Seq model written independently in PyTorch (torch.nn.LSTM/GRU for the encoder and
the decoder, the rest as torch operations), loaded with an rnnkit model's weights.

The decoder is always stepped one token at a time here, whatever rnnkit does. ``run`` returns
the logits, the loss and every gradient, named as rnnkit names its parameters."""
import numpy as np
import torch
import torch.nn.functional as F

from rnnkit.interop.torch_weights import to_torch_state_dict
from rnnkit.layers import LSTM

RECURRENT = ("enc", "dec")


def _module(layer, dtype):
    kind = torch.nn.LSTM if isinstance(layer, LSTM) else torch.nn.GRU
    m = kind(layer.input_size, layer.hidden_size, layer.num_layers,
             bidirectional=layer.bidirectional, batch_first=True)
    m = m.double() if dtype == np.float64 else m
    m.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch_state_dict(layer).items()})
    return m


def _attend(kind, P, q, keys, mask):
    """q (N, Hq), keys (N, Ts, K), mask (N, Ts) -> context (N, K), weights (N, Ts)."""
    if kind == "additive":
        e = torch.tanh((q @ P["attn.W_q"].T)[:, None] + keys @ P["attn.W_k"].T)
        s = e @ P["attn.v"]
    elif kind == "dot":
        s = (keys @ q[:, :, None])[..., 0]
    else:
        s = (keys @ P["attn.W_a"].T @ q[:, :, None])[..., 0]
    a = torch.softmax(s.masked_fill(~mask, float("-inf")), dim=1)
    return (a[:, :, None] * keys).sum(1), a


def run(model, src, tgt_in, targets, src_lengths, tgt_lengths):
    cfg, dtype = model.config, model.dtype
    P = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()
         if k.split(".")[0] not in RECURRENT}
    mods = {name: _module(model.parts[name], dtype) for name in RECURRENT if name in model.parts}
    N, Tt = tgt_in.shape
    lstm = cfg["cell"] == "lstm"
    if cfg["feature_size"]:
        feats = torch.tensor(src, requires_grad=True)
        h_top = c_top = feats
    else:
        x = F.embedding(torch.from_numpy(src), P["src_embed.E"])
        lens = torch.tensor(src_lengths if src_lengths is not None else [src.shape[1]] * N)
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lens, batch_first=True,
                                                         enforce_sorted=False)
        out, st = mods["enc"](packed)
        keys, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                         total_length=src.shape[1])
        mask = torch.arange(src.shape[1])[None, :] < lens[:, None]
        h_n, c_n = st if lstm else (st, None)
        dirs = 2 if cfg["bidirectional"] else 1
        h_top = torch.cat(list(h_n[-dirs:]), dim=1)
        c_top = torch.cat(list(c_n[-dirs:]), dim=1) if lstm else None
    Ld, Hd = cfg["dec_layers"], cfg["dec_hidden_size"]

    def bridge(name, v):
        y = torch.tanh(F.linear(v, P[name + ".W_hy"], P[name + ".b_y"]))
        return y.reshape(N, Ld, Hd).transpose(0, 1).contiguous()
    if cfg["bridge"]:
        state = (bridge("bridge.h", h_top), bridge("bridge.c", c_top)) if lstm else \
            bridge("bridge.h", h_top)
    else:
        state = (h_n, c_n) if lstm else h_n
    emb = F.embedding(torch.from_numpy(tgt_in), P["tgt_embed.E"])
    kind = cfg["attention"]
    feed = torch.zeros(N, Hd, dtype=emb.dtype)
    hs = []
    for t in range(Tt):
        parts = [emb[:, t]]
        if kind == "additive":
            ctx, _ = _attend(kind, P, (state[0] if lstm else state)[-1], keys, mask)
            parts.append(ctx)
        if cfg["input_feeding"]:
            parts.append(feed)
        o, state = mods["dec"](torch.cat(parts, 1)[:, None], state)
        s = o[:, 0]
        if kind != "none":
            if kind != "additive":
                ctx, _ = _attend(kind, P, s, keys, mask)
            h = torch.tanh(F.linear(torch.cat([ctx, s], 1), P["combine.W_hy"], P["combine.b_y"]))
        else:
            h = s
        feed = h
        hs.append(h)
    logits = F.linear(torch.stack(hs, 1), P["head.W_hy"], P["head.b_y"])
    valid = torch.ones(N, Tt, dtype=torch.bool) if tgt_lengths is None else \
        torch.arange(Tt)[None, :] < torch.tensor(tgt_lengths)[:, None]
    loss = F.cross_entropy(logits[valid], torch.from_numpy(targets)[valid])
    loss.backward()
    grads = {k: v.grad.numpy() for k, v in P.items()}
    for name, m in mods.items():
        grads.update({f"{name}.{k}": p.grad.numpy() for k, p in m.named_parameters()})
    dfeat = feats.grad.numpy() if cfg["feature_size"] else None
    return logits.detach().numpy(), float(loss.detach()), grads, dfeat
