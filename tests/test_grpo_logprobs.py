"""Token log-probs and entropies: the same numbers and gradients as the plain log_softmax
formulas, in chunks, with no vocabulary-sized float32 tensors kept for the backward pass; and
with top-k, top-p and a repetition penalty, the log-probs of what `generate` really sampled."""

import pytest
import torch

from stateset_hpo.grpo import logprobs
from stateset_hpo.grpo.agent import SamplingSettings
from stateset_hpo.grpo.logprobs import prompt_token_mask, token_logp_and_entropy


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
        logp, entropy = fn(logits, targets, SamplingSettings(temperature=0.7)) if fn is not plain else fn(logits, targets, 0.7)
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
        logp, entropy = token_logp_and_entropy(logits, targets, SamplingSettings(), entropy_grad=False)
    assert sum(saved) < float_copy / 4, f"{sum(saved)} bytes saved for backward (a float32 copy is {float_copy})"
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        plain(logits, targets, 1.0)
    assert sum(saved) >= float_copy  # the check can fail: the plain formulas keep float32 copies
    logp.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad.float()).all()


@pytest.mark.parametrize("dist", [SamplingSettings(temperature=0.7, top_k=5, top_p=0.8, repetition_penalty=1.3),
                                  SamplingSettings(temperature=1.3, top_k=0, top_p=0.9),
                                  SamplingSettings(temperature=1.0, top_k=3, repetition_penalty=1.2)])
def test_log_probs_are_those_of_the_distribution_generate_sampled_from(tiny_model_path, dist):
    """generate's processed scores (repetition penalty, temperature, top-k, top-p) at each
    sampled token are the log-probs the loss must use; the temperature-only formula is not."""
    from stateset_hpo.grpo import MultiTurnAgent

    agent = MultiTurnAgent().initialize()
    model, tok = agent.model, agent.tokenizer
    prompts = [agent.prompt_ids([{"role": "user", "content": "my lamp arrived broken ."}]),
               agent.prompt_ids([{"role": "user", "content": "hi . i want a refund for my sofa . can you help ?"}])]
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts])
    mask = (torch.arange(width)[None, :] >= torch.tensor([width - len(p) for p in prompts])[:, None]).long()
    torch.manual_seed(0)
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, max_new_tokens=12,
                         temperature=dist.temperature, top_k=dist.top_k, top_p=dist.top_p,
                         repetition_penalty=dist.repetition_penalty, pad_token_id=tok.pad_token_id,
                         return_dict_in_generate=True, output_scores=True)
    completion = out.sequences[:, width:]
    sampled = torch.stack([torch.log_softmax(s.float(), -1).gather(-1, completion[:, i:i + 1]).squeeze(-1)
                           for i, s in enumerate(out.scores)], dim=1)
    # a reply's tokens up to its end-of-turn (a finished row is padded after it)
    eos = (completion == tok.eos_token_id).long()
    valid = (eos.cumsum(1) - eos) == 0
    assert valid.sum() > 10 and torch.isfinite(sampled[valid]).all()
    with torch.no_grad():
        full = torch.cat([ids, completion], dim=1)
        attention = torch.cat([mask, torch.ones_like(completion)], dim=1)
        logits = model(input_ids=full, attention_mask=attention,
                       position_ids=(attention.cumsum(-1) - 1).clamp(min=0)).logits[:, width - 1:-1]
    ours, _ = token_logp_and_entropy(logits, completion, dist, entropy_grad=False,
                                     prompt_tokens=prompt_token_mask(ids, mask, logits.shape[-1]))
    torch.testing.assert_close(ours[valid], sampled[valid], atol=1e-4, rtol=1e-4)
    temperature_only = torch.log_softmax(logits.float() / dist.temperature, -1).gather(-1, completion[..., None])
    assert (temperature_only.squeeze(-1) - sampled)[valid].abs().max() > 0.05  # the check can fail: the old formula is off


def test_a_token_outside_the_new_top_k_set_keeps_a_finite_log_prob():
    logits = torch.tensor([[[5.0, 4.0, 0.0, -1.0]]], requires_grad=True)
    targets = torch.tensor([[3]])  # sampled before an update moved it out of the top 2
    logp, entropy = token_logp_and_entropy(logits, targets, SamplingSettings(top_k=2), entropy_grad=True)
    assert torch.isfinite(logp).all() and torch.isfinite(entropy).all()
    (logp.sum() + entropy.sum()).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[0, 0, 2] == 0  # the token left out has no say
