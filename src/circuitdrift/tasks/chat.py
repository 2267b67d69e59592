"""One rule for chat templates, shared by evaluation, scoring, SFT and RL: no thinking block is opened.

Thinking templates (Qwen3 style) take ``enable_thinking``. Left unset, the
generation prompt ends at ``assistant\\n`` while a rendered assistant turn
starts with an empty ``<think>\\n\\n</think>\\n\\n``: SFT's loss would then
cover the empty block while patching scores the letter right after
``assistant\\n``, and the model would be measured on a context it is not
trained on. With ``enable_thinking=False`` the generation prompt itself ends
with the empty block, so the prompt is a prefix of the rendered conversation
and every stage sees the answer at the same position. Templates that do not
take the variable ignore it.
"""

from __future__ import annotations

# Passed to every apply_chat_template circuitdrift runs, and to TRL's trainers (SFT rows, GRPOConfig).
CHAT_TEMPLATE_KWARGS: dict[str, bool] = {"enable_thinking": False}


def chat_prompt(tokenizer, user_turn: str) -> str:
    """The user turn in the tokenizer's chat template, with the assistant turn opened (no thinking block)."""
    messages = [{"role": "user", "content": user_turn}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                         **CHAT_TEMPLATE_KWARGS)
