"""What the trainers are fed: completion-only labels, the reward = the grader, one prompt order."""

import pytest
import torch

from circuitdrift.tasks.base import Example, Task
from circuitdrift.train.config import TrainConfig
from circuitdrift.train.data import sft_dataset, step_prompts
from circuitdrift.train.grpo import grpo_trainer
from circuitdrift.train.sft import sft_trainer
from tests.helpers.toy import toy_model, toy_task, toy_tokenizer


@pytest.fixture(scope="module")
def toy(device):
    tokenizer = toy_tokenizer()
    return tokenizer, toy_task(tokenizer, n=12), toy_model(tokenizer, device=device)


def test_sft_labels_cover_exactly_the_answer_and_end_of_turn(toy, tmp_path):
    tokenizer, task, model = toy
    config = TrainConfig(steps=3, prompts_per_step=4)
    trainer = sft_trainer(model, tokenizer, task, config=config, output_dir=tmp_path)
    order = [i for block in step_prompts(len(task), config) for i in block]
    end_of_turn = tokenizer("<|im_end|>\n", add_special_tokens=False).input_ids
    for row_index, example_index in enumerate(order):
        example = task.examples[example_index]
        batch = trainer.data_collator([trainer.train_dataset[row_index]])
        ids, labels = batch["input_ids"][0], batch["labels"][0]
        prompt = tokenizer(example.clean, add_special_tokens=False).input_ids
        answer = tokenizer(example.answer, add_special_tokens=False).input_ids
        # the trained context is the evaluated prompt, token for token
        assert ids[: len(prompt)].tolist() == prompt
        assert ids[len(prompt) :].tolist() == answer + end_of_turn
        assert (labels[: len(prompt)] == -100).all()
        assert labels[len(prompt) :].tolist() == answer + end_of_turn


def test_plain_text_tasks_train_on_the_answer_only(toy, tmp_path):
    tokenizer, _, model = toy
    task = Task("plain", [Example("what color is the sky?", "what color is the sea?", " blue")])
    trainer = sft_trainer(model, tokenizer, task, config=TrainConfig(steps=1, prompts_per_step=1), output_dir=tmp_path)
    batch = trainer.data_collator([trainer.train_dataset[0]])
    labelled = batch["input_ids"][0][batch["labels"][0] != -100]
    assert tokenizer.decode(labelled) == " blue<|im_end|>"  # the answer, and the eos TRL appends


def test_reward_is_the_grader_on_hand_made_completions(toy, tmp_path):
    tokenizer, task, model = toy
    config = TrainConfig(steps=1, prompts_per_step=2, rl={"num_generations": 2})
    trainer = grpo_trainer(model, tokenizer, task, config=config, output_dir=tmp_path)
    (reward,) = trainer.reward_funcs
    texts = ["A", " B.", "C because", "", "?", "blue", "D<|im_end|>", "a"]
    answers = ["A", "B", "D", "A", "A", "blue", "D", "A"]
    conversational = [[{"role": "assistant", "content": t}] for t in texts]
    expected = [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    assert [task.grade(t, a) for t, a in zip(texts, answers, strict=True)] == expected
    assert reward(prompts=[None] * 8, completions=conversational, answer=answers) == expected
    assert reward(prompts=[None] * 8, completions=texts, answer=answers) == expected


def test_grpo_sampler_walks_the_blocks_sft_reads_in_order(toy, tmp_path):
    tokenizer, task, model = toy
    config = TrainConfig(steps=4, prompts_per_step=2, rl={"num_generations": 3, "num_iterations": 2}, seed=5)
    rl = grpo_trainer(model, tokenizer, task, config=config, output_dir=tmp_path / "rl")
    sft = sft_trainer(model, tokenizer, task, config=config, output_dir=tmp_path / "sft")
    per_step = step_prompts(len(task), config)
    # GRPO: every optimizer step draws one generation batch (P prompts x G) from the sampler
    indices = list(rl._get_train_sampler())
    generation = config.prompts_per_step * config.rl.num_generations
    rl_steps = [indices[s * generation : (s + 1) * generation] for s in range(config.steps)]
    rl_prompts = [[rl.train_dataset[i]["example"] for i in batch[:: config.rl.num_generations]] for batch in rl_steps]
    assert rl_prompts == per_step
    # SFT: sequential rows, prompts_per_step rows per step
    assert isinstance(sft._get_train_sampler(), torch.utils.data.SequentialSampler)
    rows = sft_dataset(task, config)["prompt"]
    sft_prompts = [rows[s * 2 : (s + 1) * 2] for s in range(config.steps)]
    chats = [[[{"role": "user", "content": task.chat_prompts[i]}] for i in step] for step in per_step]
    assert sft_prompts == chats
