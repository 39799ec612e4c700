"""What the learning checks measure, shared by tests/test_learning_ci.py (CI) and
tests/test_train_learning.py (the full-size checks, on demand).

Each measure is a number that a method moves and that stays put when the method is disabled:
GRPO's reward on its training problems at their last visit against their first (the same problems,
so a policy that does not change scores 0 apart from sampling noise), and DPO's preference margin
on held-out pairs (the trained model against its reference).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from reasonloop.train import common

def recording_reward(path: Path):
    """GRPO's default reward (the verifier's 1/0) that also appends every training completion's
    {"step", "question", "reward"} to `path` (the preflight check, which has no trainer state, is not recorded)."""
    from reasonloop.verify.reward import make_reward_function

    verifier = make_reward_function()

    def verifier_reward(prompts, completions, **columns):
        scores = verifier(prompts=prompts, completions=completions, **columns)
        state = columns.get("trainer_state")
        if state is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as log:
                for question, score in zip(columns["question"], scores):
                    log.write(json.dumps({"step": state.global_step, "question": question, "reward": score}) + "\n")
        return scores

    return verifier_reward


def revisit_rise(rewards_log: Path) -> tuple[float, float, int]:
    """(mean reward at each training problem's first visit, at its last visit, problems visited twice or more):
    the same problems at both ends, so a policy that does not change scores 0 apart from sampling noise."""
    visits: dict[str, dict[int, list[float]]] = {}
    for line in rewards_log.read_text().splitlines():
        row = json.loads(line)
        visits.setdefault(row["question"], {}).setdefault(row["step"], []).append(row["reward"] or 0.0)
    revisited = [by_step for by_step in visits.values() if len(by_step) >= 2]
    if not revisited:
        raise ValueError(f"{rewards_log}: no training problem was visited twice")

    def mean(values):
        return sum(values) / len(values)

    first = mean([mean(by_step[min(by_step)]) for by_step in revisited])
    last = mean([mean(by_step[max(by_step)]) for by_step in revisited])
    return first, last, len(revisited)


def completion_logprobs(model_dir: str | Path, texts: Sequence[tuple[str, str]]) -> list[float]:
    """Summed log-probability of each completion given its prompt, tokenized as TRL's DPOTrainer does
    (prompt + completion + EOS text together; the completion starts where it leaves the prompt's tokens)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    totals = []
    with torch.no_grad():
        for prompt, completion in texts:
            prompt_ids = tokenizer(prompt)["input_ids"]
            full_ids = tokenizer(prompt + completion + tokenizer.eos_token)["input_ids"]
            start = next((i for i, (a, b) in enumerate(zip(prompt_ids, full_ids)) if a != b), len(prompt_ids))
            ids = torch.tensor([full_ids])
            logprobs = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
            targets = ids[0, start:]
            totals.append(float(logprobs[start - 1:].gather(1, targets[:, None]).sum()))
    return totals


def preference_margin(policy_dir: str | Path, reference_dir: str | Path, pairs: Sequence[dict]) -> float:
    """Mean over `pairs` ({"prompt", "chosen", "rejected"}) of DPO's implicit reward margin divided by β:
    [log π(chosen) − log π_ref(chosen)] − [log π(rejected) − log π_ref(rejected)], in nats.
    0 exactly when the policy is the reference."""
    texts = [(pair["prompt"], pair[side]) for pair in pairs for side in ("chosen", "rejected")]
    policy, reference = completion_logprobs(policy_dir, texts), completion_logprobs(reference_dir, texts)
    ratios = [p - r for p, r in zip(policy, reference)]
    margins = [chosen - rejected for chosen, rejected in zip(ratios[0::2], ratios[1::2])]
    return sum(margins) / len(margins)


def heldout_pairs(model_dir: Path, problems, *, k: int, temperature: float, seed: int, max_new_tokens: int,
                  out: Path) -> list[dict]:
    """Preference pairs (a verified-correct and an incorrect sample of the same problem) sampled from
    `model_dir` on problems DPO does not train on; kept in `out` so a rerun reuses them."""
    from reasonloop.prompts import load_prompt_format
    from reasonloop.train.dpo import preference_pairs
    from reasonloop.train.sampling import sample_and_grade

    if out.is_file():
        return json.loads(out.read_text())
    graded = sample_and_grade(model_dir, problems, k=k, temperature=temperature, seed=seed,
                              max_new_tokens=max_new_tokens)
    fmt = load_prompt_format(model_dir)
    pairs = [{"prompt": fmt.message(p.question), "chosen": common.completion_value(chosen, fmt),
              "rejected": common.completion_value(rejected, fmt)}
             for p, chosen, rejected in preference_pairs(graded, pairs_per_problem=1)]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(pairs))
    return pairs
