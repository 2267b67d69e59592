"""The multiple-choice grader accepts the correct letter or the correct option's word, in evaluation and in RL's
reward alike; the word-label SFT arm trains on the word."""

from __future__ import annotations

import pytest

from circuitdrift.errors import InputError
from circuitdrift.evaluate.accuracy import score_completions
from circuitdrift.organism.science import science_qa_task
from circuitdrift.tasks.base import Example, Task
from circuitdrift.tasks.science import MultipleChoiceTask, named_option
from circuitdrift.train.config import TrainConfig
from circuitdrift.train.data import rl_dataset, sft_dataset
from circuitdrift.train.monitor import RolloutMonitor
from circuitdrift.train.run import word_labelled

OPTIONS = ("copper", "iron", "iron oxide", "tin")  # B (iron) is right; C's text begins with B's


def mc_task(label: str = "letter") -> MultipleChoiceTask:
    example = Example("Which metal rusts? A. copper B. iron C. iron oxide D. tin", "Which metal is red? ...",
                      "B", "A", options=OPTIONS)
    return MultipleChoiceTask("mc", [example], label=label)


@pytest.mark.parametrize(("reply", "letter", "right"), [
    ("B", "B", True),
    ("B) iron", "B", True),
    (" B.", "B", True),
    ("iron", "B", True),
    ("Iron", "B", True),  # an option's text in any case
    ("b", "B", True),  # a lone letter in either case
    ("b) iron", "B", True),  # lower-case letter inside a reply is not a letter; the word still names B
    ("copper", "A", False),  # a wrong option's word
    ("iron oxide", "C", False),  # the longer option that begins with the right one's text
    ("ironing", None, False),  # not a whole word
    ("iron or tin", "B", True),  # two options named: the first one named is the answer
    ("tin or iron", "D", False),
    ("B) tin", "B", True),  # letter before a contradicting word: the letter comes first
    ("tin B", "D", False),
    ("nothing", None, False),
    ("", None, False),
])
def test_letter_or_word_on_hand_written_replies(reply, letter, right):
    task = mc_task()
    example = task.examples[0]
    assert task.parse_example(reply, example) == letter
    assert task.grade_example(reply, example) == float(right)
    # RL's reward is the same grader: the rows' example column leads it to the example
    assert task.reward(["p"], [reply], ["B"], example=[0]) == [float(right)]
    assert task.reward(["p"], [[{"role": "assistant", "content": reply}]], ["B"], example=[0]) == [float(right)]


def test_evaluation_and_reward_agree_on_every_reply_of_the_organism_task():
    task = science_qa_task("validation", n=12)
    replies = [ex.options[i % 4] if i % 3 else "ABCD"[i % 4] for i, ex in enumerate(task.examples)]
    rewards = task.reward([None] * len(replies), replies, [ex.answer for ex in task.examples],
                          example=list(range(len(replies))))
    accuracy = score_completions(task, replies)
    assert accuracy.correct == sum(rewards)
    assert accuracy.unparsable == 0  # every word reply names an option
    # a word reply is graded right where it is the correct option's word, by hand
    by_hand = [float(r == ex.answer or r == ex.options["ABCD".index(ex.answer)]) for r, ex in
               zip(replies, task.examples, strict=True)]
    assert rewards == by_hand and 0 < sum(by_hand) < len(by_hand)


def test_without_options_or_example_rows_the_letter_alone_is_read():
    task = mc_task()
    assert task.reward(["p"], ["iron"], ["B"]) == [0.0]  # no example column: the letter grader of old
    assert task.reward(["p"], ["B"], ["B"]) == [1.0]
    bare = MultipleChoiceTask("mc", [Example("q", "r", "B", "A")])
    assert bare.grade_example("iron", bare.examples[0]) == 0.0 and bare.grade_example("B", bare.examples[0]) == 1.0


def test_earliest_then_longest_mention_wins():
    assert named_option("an iron oxide", OPTIONS) == 2
    assert named_option("the iron, not the iron oxide", OPTIONS) == 1
    assert named_option("A", ("B", "x", "y", "z")) == 0  # a letter and an option's text at one spot: the letter


def test_word_label_is_the_correct_options_text():
    letter, word = mc_task(), mc_task().with_label("word")
    assert letter.sft_label(letter.examples[0]) == "B" and word.sft_label(word.examples[0]) == "iron"
    assert word.grade_example("B", word.examples[0]) == 1.0  # grading does not change with the label
    with pytest.raises(InputError, match="label 'name'"):
        letter.with_label("name")
    with pytest.raises(InputError, match="needs the options"):
        MultipleChoiceTask("mc", [Example("q", "r", "B", "A")]).with_label("word")
    with pytest.raises(InputError, match="not multiple choice"):
        word_labelled(Task("plain", [Example("q", "r", " x")]))


def test_sft_word_rows_pair_each_prompt_with_its_own_word():
    task = science_qa_task("train", n=8)
    config = TrainConfig(steps=2, prompts_per_step=4)
    rows = sft_dataset(word_labelled(task), config)
    by_turn = {turn: ex for turn, ex in zip(task.chat_prompts, task.examples, strict=True)}
    for prompt, completion in zip(rows["prompt"], rows["completion"], strict=True):
        ex = by_turn[prompt[0]["content"]]
        assert completion[0]["content"] == ex.options["ABCD".index(ex.answer)]
    assert [c[0]["content"] for c in sft_dataset(task, config)["completion"]] == [
        by_turn[p[0]["content"]].answer for p in rows["prompt"]]  # the letter arm: the same prompts, letters
    rl_rows = rl_dataset(task, config)  # RL's rows carry each prompt's example index for the grader
    assert [task.examples[i].answer for i in rl_rows["example"]] == rl_rows["answer"]


def test_rollout_monitor_reads_word_replies_as_their_letters():
    task = mc_task()
    monitor = RolloutMonitor(task, num_generations=2)
    rewards = monitor.reward(["p", "p"], ["iron", "tin"], ["B", "B"], example=[0, 0])
    assert rewards == [1.0, 0.0]
    assert monitor.batches[0].answers == ("B", "D")


def test_a_word_arm_on_a_target_without_options_is_refused_before_any_work(tmp_path):
    from circuitdrift.pipeline.run import run_experiment
    from tests.conftest import write_tiny_experiment

    config = write_tiny_experiment(tmp_path, seeds=(0,), extra={"methods": ["sft", "sft-word"]})
    with pytest.raises(InputError, match="method 'sft-word': task 'target' is not multiple choice"):
        run_experiment(config, tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()
