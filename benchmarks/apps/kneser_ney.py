"""Interpolated Kneser-Ney, exactly nltk.lm.KneserNeyInterpolated's arithmetic, scored fast.

nltk's model recounts its continuation counts by a pass over every n-gram type at each call
(hours for the 58k tokens of a Shakespeare split); this one counts them once. It is fitted on
one token sequence without padding, as nltk is by ``fit([everygrams(tokens, max_len=order)])``,
and ``verify_against_nltk`` checks the two agree on a small corpus (run by
benchmarks/apps/words.py before it uses this). With d the discount and c(.) counts:

    highest order (|ctx| = order - 1):
        p(w | ctx) = max(c(ctx w) - d, 0) / c(ctx .) + d N1+(ctx .) / c(ctx .) p(w | ctx[1:])
    lower orders (0 < |ctx| < order - 1), with continuation counts N1+(. ctx w):
        p(w | ctx) = max(N1+(. ctx w) - d, 0) / N1+(. ctx .) + d N1+(ctx .) / N1+(. ctx .) p(w | ctx[1:])
    unigram: p(w) = N1+(. w) / N1+(. .)
    a context never seen (c(ctx .) = 0): p(w | ctx) = p(w | ctx[1:])

The one place nltk has no answer (it divides by zero): a context seen only at the very start
of the sequence has N1+(. ctx .) = 0; here it backs off as an unseen context does.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict


class KneserNey:
    def __init__(self, tokens, order: int, discount: float):
        if order < 2 or not 0 <= discount <= 1:
            raise ValueError(f"order >= 2 and discount in [0, 1], got {order}, {discount}")
        self.order, self.d = order, discount
        tokens = list(tokens)
        self.top = Counter(zip(*(tokens[i:] for i in range(order))))   # c(ctx w), top order
        self.ctx_total = defaultdict(int)       # c(ctx .)   for 1 <= |ctx| <= order - 1
        self.ctx_types = defaultdict(int)       # N1+(ctx .)
        self.cont = defaultdict(int)            # N1+(. ctx w) for 0 <= |ctx| <= order - 2
        self.cont_total = defaultdict(int)      # N1+(. ctx .)
        for k in range(2, order + 1):
            grams = self.top if k == order else Counter(zip(*(tokens[i:] for i in range(k))))
            for g, c in grams.items():
                self.ctx_total[g[:-1]] += c
                self.ctx_types[g[:-1]] += 1
                self.cont[g[1:]] += 1
                self.cont_total[g[1:-1]] += 1

    def score(self, word, context=()) -> float:
        """p(word | the last order - 1 tokens of context)."""
        ctx = tuple(context)[-(self.order - 1):]
        if not ctx:
            return self.cont[(word,)] / self.cont_total[()]
        total = self.ctx_total.get(ctx, 0)
        if len(ctx) + 1 < self.order:
            total_c = self.cont_total.get(ctx, 0)
            if total == 0 or total_c == 0:
                return self.score(word, ctx[1:])
            alpha = max(self.cont.get(ctx + (word,), 0) - self.d, 0) / total_c
            gamma = self.d * self.ctx_types[ctx] / total_c
        else:
            if total == 0:
                return self.score(word, ctx[1:])
            alpha = max(self.top.get(ctx + (word,), 0) - self.d, 0) / total
            gamma = self.d * self.ctx_types[ctx] / total
        return alpha + gamma * self.score(word, ctx[1:])

    def nll(self, ids, positions) -> tuple[float, int]:
        """(summed -log p(ids[i] | ids[i-order+1:i]) over `positions`, count), in nats."""
        total = 0.0
        for i in positions:
            total -= math.log(self.score(ids[i], ids[max(0, i - self.order + 1):i]))
        return total, len(positions)


def verify_against_nltk(tokens, orders=(2, 3, 4), discounts=(0.1, 0.75), probes: int = 300,
                        rel: float = 1e-9) -> int:
    """Fit nltk's KneserNeyInterpolated and this class on `tokens` (a few thousand) and compare
    p(w | ctx) at `probes` positions of the sequence, with the word there and with a random
    word, and at as many random contexts (mostly never seen: the back-off branch); raises AssertionError on a difference. Returns the number of comparisons."""
    import random

    from nltk.lm import KneserNeyInterpolated
    from nltk.util import everygrams
    tokens = [str(t) for t in tokens]
    rng = random.Random(0)
    words = sorted(set(tokens))
    checked = 0
    for order in orders:
        for d in discounts:
            ref = KneserNeyInterpolated(order, discount=d)
            ref.fit([list(everygrams(tokens, max_len=order))], vocabulary_text=tokens)
            ours = KneserNey(tokens, order, d)
            for _ in range(probes):
                i = rng.randrange(order, len(tokens))
                ctx = tokens[i - order + 1:i]
                random_ctx = [rng.choice(words) for _ in range(order - 1)]
                for ctx, w in ((ctx, tokens[i]), (ctx, rng.choice(words)),
                               (random_ctx, tokens[i])):
                    try:
                        want = ref.score(w, ctx)
                    except ZeroDivisionError:       # (see the module docstring)
                        continue
                    got = ours.score(w, ctx)
                    assert math.isclose(got, want, rel_tol=rel, abs_tol=1e-15), \
                        (order, d, ctx, w, got, want)
                    checked += 1
    return checked
