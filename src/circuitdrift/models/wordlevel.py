"""A word-level Hugging Face fast tokenizer with a Qwen2.5-style chat template, built locally.

Used by the model organism and by tests: no download, every word one token, so
every answer of a task is a single token. Spaces are kept by the Metaspace
scheme (``"▁word"`` after a space, ``"word"`` after a newline or at the start),
so ``decode(encode(text)) == text`` for any text made of known words.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>")
SPACE = "\u2581"
PUNCTUATION = tuple(".,?!:;()'\"-+=<>")

# Qwen2.5-Instruct's template, without tool calls: a default system turn, then <|im_start|>role\n...<|im_end|>.
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
CHAT_WORDS = ("system", "user", "assistant", "You", "are", "a", "helpful", "\n")


def build_word_tokenizer(words: Iterable[str], model_max_length: int = 512) -> PreTrainedTokenizerFast:
    """Tokenizer whose vocabulary is the special tokens, the chat words, punctuation and ``words``.

    Each word enters twice, bare and with a leading space marker; order is
    deterministic (first occurrence), so the same words give the same ids.
    """
    vocab: dict[str, int] = {}
    for token in SPECIAL_TOKENS:
        vocab.setdefault(token, len(vocab))
    for word in (*CHAT_WORDS, *PUNCTUATION, *words):
        for form in (word, SPACE + word) if word != "\n" else (word,):
            vocab.setdefault(form, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex("\n"), behavior="isolated"),
            pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="never", split=True),
            pre_tokenizers.Split(Regex(r"[.,?!:;()'\"+=<>-]"), behavior="isolated"),
        ]
    )
    core.decoder = decoders.Metaspace(replacement=SPACE, prepend_scheme="never", split=True)
    core.add_special_tokens(list(SPECIAL_TOKENS))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
        additional_special_tokens=["<|im_start|>"],
        model_max_length=model_max_length,
        padding_side="right",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
