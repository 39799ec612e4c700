"""GRPO rollouts through reasonloop's own decode loop, so a calculator model keeps its tool.

TRL's GRPOTrainer samples with `model.generate`, which cannot answer `<<48/2=` calls. For a
model whose prompt format uses the calculator, `calculator_rollout` is passed to the trainer
as its `rollout_func`: it samples with `HFGenerator.for_model` on the weights being trained
and marks the calculator's tokens with `env_mask = 0`, so the policy loss covers only the
tokens the model chose.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any, Callable

from reasonloop.models.calculator import reply_spans
from reasonloop.prompts import PromptFormat


def model_token_mask(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[int]:
    """1 for tokens the model wrote, 0 for tokens inside a calculator reply."""
    return [0 if any(start < end_span and end > start_span for start_span, end_span in spans) else 1
            for start, end in offsets]


def calculator_rollout(prompt_format: PromptFormat, *, temperature: float, max_new_tokens: int,
                       seed: int) -> Callable[[list, Any], dict[str, list]]:
    """A TRL `rollout_func`: one completion per prompt it is given (GRPO repeats each prompt
    `num_generations` times in a row; repeats get different sample indices, hence different samples)."""
    from reasonloop.models.base import SamplingParams
    from reasonloop.models.hf import HFGenerator

    def rollout(prompts: list, trainer) -> dict[str, list]:
        tokenizer = trainer.processing_class
        model = trainer.accelerator.unwrap_model(trainer.model)
        generator = HFGenerator.for_model(model, tokenizer, batch_size=len(prompts))
        params = SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens,
                                seed=seed + trainer.state.global_step, **prompt_format.decoding())
        counts = Counter(prompts)
        was_training = model.training
        model.eval()
        try:
            samples = generator.generate_requests([(p, replace(params, n=n)) for p, n in counts.items()])
        finally:
            model.train(was_training)
        pools = {p: list(group) for p, group in zip(counts, samples)}
        encoded_prompts = {p: tokenizer(p)["input_ids"] for p in counts}
        prompt_ids, completion_ids, env_mask = [], [], []
        for prompt in prompts:
            completion = pools[prompt].pop(0)
            encoded = tokenizer(completion.text, add_special_tokens=False, return_offsets_mapping=True)
            ids, mask = list(encoded["input_ids"]), model_token_mask(encoded["offset_mapping"], reply_spans(completion.text))
            if completion.finish_reason == "stop" and tokenizer.eos_token_id is not None:
                ids, mask = ids + [tokenizer.eos_token_id], mask + [1]
            prompt_ids.append(encoded_prompts[prompt])
            completion_ids.append(ids)
            env_mask.append(mask)
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None, "env_mask": env_mask}

    return rollout
