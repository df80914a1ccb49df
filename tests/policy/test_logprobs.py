"""The shared-prefix log-probs used by the RL update equal the plain ones, gradient included."""

import torch

from recgen.policy.logprobs import completion_logprobs, group_logprobs
from recgen.policy.models import LoraConfig, build_tiny_policy


def test_group_logprobs_match_completion_logprobs_and_their_gradient():
    torch.manual_seed(0)
    policy = build_tiny_policy(seed=0, lora=LoraConfig(rank=4))
    model = policy.model.train()
    prompt = list(range(100, 160))
    g, t = 4, 7
    completions = torch.randint(200, 5000, (g, t))
    mask = torch.ones(g, t, dtype=torch.bool)
    mask[1, 5:] = False  # rows of different lengths (right padding)
    mask[3, 2:] = False
    a, ea = completion_logprobs(model, [prompt] * g, completions, mask, pad_id=2, temperature=0.7, with_entropy=True)
    b, eb = group_logprobs(model, prompt, completions, mask, pad_id=2, temperature=0.7, with_entropy=True)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    torch.testing.assert_close(ea, eb, rtol=0, atol=1e-4)
    assert torch.all(b[~mask] == 0)
    params = [p for p in model.parameters() if p.requires_grad]
    grad_a = torch.autograd.grad((a * torch.arange(1.0, t + 1)).sum(), params)
    grad_b = torch.autograd.grad((b * torch.arange(1.0, t + 1)).sum(), params)
    for x, y in zip(grad_a, grad_b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-4)
