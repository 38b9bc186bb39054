"""Token log-probs and entropies: the same numbers and gradients as the plain log_softmax
formulas, in chunks, with no vocabulary-sized float32 tensors kept for the backward pass."""

import pytest
import torch

from stateset_hpo.grpo import logprobs
from stateset_hpo.grpo.logprobs import token_logp_and_entropy


def plain(logits, targets, temperature):
    logp_all = torch.log_softmax(logits.float() / temperature, dim=-1)
    return (logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1), -(logp_all.exp() * logp_all).sum(-1))


@pytest.mark.parametrize("chunk_bytes", [1, 10**9])  # one row per chunk, everything in one chunk
@pytest.mark.parametrize("entropy_grad", [False, True])
def test_values_and_gradients_match_the_plain_formulas(monkeypatch, chunk_bytes, entropy_grad):
    monkeypatch.setattr(logprobs, "CHUNK_BYTES", chunk_bytes)
    torch.manual_seed(0)
    base = torch.randn(5, 7, 50, dtype=torch.float32)
    targets = torch.randint(0, 50, (5, 7))
    weights = torch.randn(5, 7)
    grads = []
    for fn in (plain, lambda *a: token_logp_and_entropy(*a, entropy_grad=entropy_grad)):
        logits = base.clone().requires_grad_(True)
        logp, entropy = fn(logits, targets, 0.7)
        expected = plain(base, targets, 0.7)
        torch.testing.assert_close(logp.detach(), expected[0].detach())
        torch.testing.assert_close(entropy.detach(), expected[1].detach())
        loss = (weights * logp).sum() + ((weights * entropy).sum() if entropy_grad else 0)
        loss.backward()
        grads.append(logits.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6)


def test_keeps_no_vocabulary_sized_float_tensor_for_backward(monkeypatch):
    monkeypatch.setattr(logprobs, "CHUNK_BYTES", 100_000)  # logits larger than one chunk
    torch.manual_seed(0)
    logits = torch.randn(8, 16, 1000, dtype=torch.bfloat16, requires_grad=True)
    targets = torch.randint(0, 1000, (8, 16))
    float_copy = logits.numel() * 4
    saved = []

    def pack(t):
        own = t.untyped_storage().data_ptr() != logits.untyped_storage().data_ptr()  # not a view of the logits
        saved.append(t.numel() * t.element_size() if own else 0)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logp, entropy = token_logp_and_entropy(logits, targets, 1.0, entropy_grad=False)
    assert sum(saved) < float_copy / 4, f"{sum(saved)} bytes saved for backward (a float32 copy is {float_copy})"
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        plain(logits, targets, 1.0)
    assert sum(saved) >= float_copy  # the check can fail: the plain formulas keep float32 copies
    logp.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad.float()).all()
