"""One chat-template rule for scoring, SFT and RL, on Qwen3's published thinking template (enable_thinking=False).

Before the rule, SFT's loss covered the empty ``<think></think>`` block the template renders in an assistant
turn, while scoring and generation looked at the position right after ``assistant\\n``.
"""

import pytest

from circuitdrift.models.generate import chat_prompt
from circuitdrift.models.load import load_model
from circuitdrift.tasks.base import Example, Task
from circuitdrift.train.config import TrainConfig
from circuitdrift.train.grpo import grpo_trainer
from circuitdrift.train.sft import sft_trainer
from tests.helpers.published import write_model

TURNS = ("Which gas do plants take in? A oxygen B carbon dioxide C neon D argon",
         "Which metal is liquid at room temperature? A iron B copper C mercury D zinc")
EMPTY_THINK = "<think>\n\n</think>\n\n"


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory):
    model, tokenizer = load_model(write_model(tmp_path_factory.mktemp("qwen3") / "m", template="qwen3"), device="cpu")
    examples = [Example(chat_prompt(tokenizer, turn), chat_prompt(tokenizer, turn), answer)
                for turn, answer in zip(TURNS, "BC", strict=True)]
    return model, tokenizer, Task("thinking", examples, templated=True, chat_prompts=list(TURNS))


def _config(tmp_path):
    return TrainConfig.model_validate({"steps": 1, "prompts_per_step": 2, "learning_rate": 1e-3,
                                       "rl": {"num_generations": 2, "max_completion_length": 2}})


def test_the_scored_prompt_ends_after_the_empty_thinking_block(qwen3):
    _, tokenizer, task = qwen3
    prompt = task.examples[0].clean
    assert prompt.endswith("<|im_start|>assistant\n" + EMPTY_THINK)
    assert TURNS[0] in prompt
    turn = [{"role": "user", "content": TURNS[0]}, {"role": "assistant", "content": "B"}]
    rendered = tokenizer.apply_chat_template(turn, tokenize=False, enable_thinking=False)
    assert rendered.startswith(prompt) and rendered[len(prompt):] == "B<|im_end|>\n"


def test_sft_trains_on_the_answer_after_the_prompt_the_scorer_sees(qwen3, tmp_path):
    model, tokenizer, task = qwen3
    trainer = sft_trainer(model, tokenizer, task, config=_config(tmp_path), output_dir=tmp_path)
    for row in trainer.train_dataset:
        ids, labels = row["input_ids"], row["labels"]  # labels: -100 where no loss is taken
        start = next(i for i, label in enumerate(labels) if label != -100)
        assert all(label != -100 for label in labels[start:])
        prompt, completion = tokenizer.decode(ids[:start]), tokenizer.decode(ids[start:])
        example = next(ex for ex in task.examples if ex.clean == prompt)  # the very prompt that is scored
        assert completion == example.answer + "<|im_end|>\n"
        assert "<think>" not in completion


def test_grpo_samples_from_the_prompt_the_scorer_sees(qwen3, tmp_path):
    model, tokenizer, task = qwen3
    trainer = grpo_trainer(model, tokenizer, task, config=_config(tmp_path), output_dir=tmp_path)
    prompts = [row["prompt"] for row in trainer.train_dataset]
    ids, _, _ = trainer._tokenize_prompts(prompts)
    decoded = {tokenizer.decode(row) for row in ids}
    assert decoded == {ex.clean for ex in task.examples}
