"""The language model composition: gradients by finite differences, generation, batching."""
import numpy as np
import pytest
from gradcheck import check_sampled_params

from rnnkit.data import CharVocab, bundled_text, lm_batches
from rnnkit.losses import softmax_cross_entropy
from rnnkit.models import LanguageModel
from rnnkit import RnnkitError


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_language_model_gradients_match_finite_differences(cell):
    rng = np.random.default_rng(0)
    model = LanguageModel(7, 3, 4, num_layers=2, cell=cell, dtype=np.float64, seed=1)
    ids = rng.integers(0, 7, (2, 5))
    targets = rng.integers(0, 7, (2, 5))
    lengths = np.array([3, 5])

    def loss():
        logits, _, _ = model.forward(ids, lengths=lengths)
        return softmax_cross_entropy(logits, targets, lengths)[0]

    model.zero_grad()
    logits, _, cache = model.forward(ids, lengths=lengths)
    _, dlogits = softmax_cross_entropy(logits, targets, lengths)
    model.backward(dlogits, cache)
    check_sampled_params(model, loss, rng, samples=6)


def test_generate_is_deterministic_given_a_seed_and_uses_the_vocabulary():
    model = LanguageModel(5, 3, 4, seed=0)
    a = model.generate([1, 2], 20, rng=np.random.default_rng(3))
    b = model.generate([1, 2], 20, rng=np.random.default_rng(3))
    assert a == b and len(a) == 20 and all(0 <= t < 5 for t in a)
    with pytest.raises(RnnkitError, match="prime"):
        model.generate([], 3)


def test_lm_batches_continue_each_row_across_batches():
    ids = np.arange(101)
    batches = list(lm_batches(ids, batch_size=2, seq_len=10))
    assert len(batches) == 5
    (x0, y0), (x1, _) = batches[0], batches[1]
    np.testing.assert_array_equal(x0[1], np.arange(50, 60))
    np.testing.assert_array_equal(y0[0], np.arange(1, 11))
    np.testing.assert_array_equal(x1[0], np.arange(10, 20))   # row 0 continues where it stopped


def test_char_vocab_round_trip_and_unknowns():
    vocab = CharVocab("hello world")
    assert vocab.decode(vocab.encode("low hold")) == "low hold"
    with pytest.raises(RnnkitError, match="unknown"):
        vocab.encode("xyz")
    with_unk = CharVocab("abc", unk="?")
    assert with_unk.decode(with_unk.encode("abz")) == "ab?"


def test_bundled_text_is_the_shakespeare_sample():
    text = bundled_text()
    assert 900_000 < len(text) < 1_100_000
    assert text.startswith("ALL'S WELL THAT ENDS WELL")


def _tied_loss_and_grads(model, ids, targets):
    model.zero_grad()
    logits, state, cache = model.forward(ids)
    loss, dlogits = softmax_cross_entropy(logits, targets)
    model.backward(dlogits, cache)
    return loss, logits


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_tied_embeddings_gradients_match_finite_differences(cell):
    """W_hy = E: one parameter whose gradient sums its two uses, checked at every entry."""
    from gradcheck import numeric_grad
    rng = np.random.default_rng(0)
    model = LanguageModel(6, 4, 4, cell=cell, tie_weights=True, dtype=np.float64, seed=2)
    assert model.tied and "head.W_hy" not in model.params and "embed.E" in model.params
    ids, targets = rng.integers(0, 6, (2, 5)), rng.integers(0, 6, (2, 5))

    def loss():
        return softmax_cross_entropy(model.forward(ids, grad=False)[0], targets)[0]

    _tied_loss_and_grads(model, ids, targets)
    for name, p in model.params.items():
        np.testing.assert_allclose(model.grads[name], numeric_grad(loss, p), rtol=1e-6,
                                   atol=1e-9, err_msg=name)


def test_tied_gradient_is_the_sum_of_the_untied_models_two_gradients():
    rng = np.random.default_rng(1)
    tied = LanguageModel(9, 5, 5, tie_weights=True, dtype=np.float64, seed=3)
    untied = LanguageModel(9, 5, 5, dtype=np.float64, seed=3)
    for name, p in untied.params.items():
        p[...] = tied.params["embed.E" if name == "head.W_hy" else name]
    ids, targets = rng.integers(0, 9, (3, 4)), rng.integers(0, 9, (3, 4))
    loss_t, logits_t = _tied_loss_and_grads(tied, ids, targets)
    loss_u, logits_u = _tied_loss_and_grads(untied, ids, targets)
    np.testing.assert_array_equal(logits_t, logits_u)
    np.testing.assert_allclose(tied.grads["embed.E"],
                               untied.grads["embed.E"] + untied.grads["head.W_hy"], rtol=1e-12)


def test_tied_model_matches_pytorch_outputs_and_gradients():
    """The same tied model in PyTorch (decoder.weight = encoder.weight), identical weights."""
    torch = pytest.importorskip("torch")
    from rnnkit.interop.torch_weights import grads_to_torch_layout, to_torch_state_dict
    V, H, N, T = 11, 6, 3, 7
    rng = np.random.default_rng(4)
    model = LanguageModel(V, H, H, cell="lstm", tie_weights=True, dtype=np.float64, seed=5)
    ids, targets = rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))
    h0 = (rng.standard_normal((1, N, H)), rng.standard_normal((1, N, H)))
    model.zero_grad()
    logits, (h_n, c_n), cache = model.forward(ids, h0)
    loss, dlogits = softmax_cross_entropy(logits, targets)
    model.backward(dlogits, cache)

    emb = torch.nn.Embedding(V, H).double()
    lstm = torch.nn.LSTM(H, H, batch_first=True).double()
    head = torch.nn.Linear(H, V).double()
    head.weight = emb.weight                            # tied, as PyTorch's examples tie
    lstm.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch_state_dict(model.rnn).items()})
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(model.params["embed.E"]))
        head.bias.copy_(torch.from_numpy(model.params["head.b_y"]))
    out, (th_n, tc_n) = lstm(emb(torch.from_numpy(ids)), tuple(torch.from_numpy(s) for s in h0))
    z = head(out)
    tloss = torch.nn.functional.cross_entropy(z.reshape(-1, V), torch.from_numpy(targets).reshape(-1))
    tloss.backward()
    np.testing.assert_allclose(logits, z.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_n, th_n.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert loss == pytest.approx(tloss.item(), rel=1e-12)
    np.testing.assert_allclose(model.grads["embed.E"], emb.weight.grad.numpy(), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(model.grads["head.b_y"], head.bias.grad.numpy(), rtol=1e-9,
                               atol=1e-12)
    for k, g in grads_to_torch_layout(model.rnn).items():
        np.testing.assert_allclose(g, dict(lstm.named_parameters())[k].grad.numpy(), rtol=1e-9,
                                   atol=1e-12, err_msg=k)


def test_tied_weights_need_equal_sizes_and_round_trip_through_save_and_load(tmp_path):
    from rnnkit.models.io import load, save
    with pytest.raises(RnnkitError, match="embed_dim"):
        LanguageModel(10, 8, 16, tie_weights=True)
    model = LanguageModel(10, 8, 8, tie_weights=True, seed=0)
    model.params["embed.E"][...] += 1.0
    save(model, tmp_path / "m")
    again = load(tmp_path / "m")
    assert again.tied and again.config == model.config
    np.testing.assert_array_equal(again.head.params["W_hy"], model.params["embed.E"])
