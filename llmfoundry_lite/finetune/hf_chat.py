"""An HF base's own chat template: the Jinja ``chat_template`` of its ``tokenizer_config.json``.

A base exported by someone else (a ChatML, Llama-3 or Zephyr-style model) was tuned on its own
layout, so fine-tuning it must render conversations exactly as ``tokenizer.apply_chat_template``
does — the same renderer (transformers' ``render_jinja_template``) and the same variables
(``bos_token``, ``eos_token``, ...). Training needs to know which tokens the assistant wrote, so
the conversation is rendered one message at a time: the text message i adds is
``render(messages[:i+1])`` minus ``render(messages[:i])``, and for an assistant message the
generation prompt (``add_generation_prompt=True``) is split off as the prompt-side header.
A template whose earlier text changes when a message is added cannot be cut this way and is
refused with that reason.

Within a message's text the content is encoded as text (a literal special string inside code
stays text, as in pretraining) and the template's own text with special tokens matched, so
``<|im_start|>`` is its id. Where the template puts a special token or a newline at each side of
the content — ChatML, Llama-3 — the ids equal ``apply_chat_template(..., tokenize=True)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from llmfoundry_lite.finetune.chat import ASSISTANT, HEADER
from llmfoundry_lite.tokenizer.io import encode_texts

if TYPE_CHECKING:
    from tokenizers import Tokenizer

TEMPLATE_VARIABLES = ("bos_token", "eos_token", "pad_token", "unk_token")


@dataclass(frozen=True)
class JinjaChat:
    """A chat template and the special-token strings transformers passes to it."""

    template: str
    variables: dict[str, str] = field(default_factory=dict)

    def render(self, messages: list[tuple[str, str]], add_generation_prompt: bool) -> str:
        from transformers.utils.chat_template_utils import render_jinja_template

        conversation = [{"role": role, "content": content} for role, content in messages]
        rendered, _ = render_jinja_template(conversations=[conversation], chat_template=self.template,
                                            add_generation_prompt=add_generation_prompt, **self.variables)
        return rendered[0]


def _token_text(value: object) -> str | None:
    """A special token as ``tokenizer_config.json`` stores it: a string or an AddedToken dict."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def read_chat_template(hf_dir: str | Path) -> JinjaChat | None:
    """The ``chat_template`` of an HF directory (its ``default`` when it names several), or None."""
    path = Path(hf_dir) / "tokenizer_config.json"
    if not path.is_file():
        return None
    config = json.loads(path.read_text())
    template = config.get("chat_template")
    if template is None:
        jinja = Path(hf_dir) / "chat_template.jinja"  # where newer transformers save it
        template = jinja.read_text() if jinja.is_file() else None
    if isinstance(template, list):  # [{"name": ..., "template": ...}, ...]
        named = {t["name"]: t["template"] for t in template}
        if "default" not in named:
            raise ValueError(f"{path}: chat_template names {sorted(named)} but no 'default'")
        template = named["default"]
    if template is None:
        return None
    variables = {k: v for k in TEMPLATE_VARIABLES if (v := _token_text(config.get(k))) is not None}
    return JinjaChat(template, variables)


class JinjaEncoder:
    """Token pieces of conversations under a ``JinjaChat`` (the same pieces as ``chat.encode_conversation``)."""

    def __init__(self, tokenizer: Tokenizer, chat: JinjaChat) -> None:
        from tokenizers import Tokenizer as _Tokenizer

        self.tokenizer, self.chat = tokenizer, chat
        self.scaffold = _Tokenizer.from_str(tokenizer.to_str())
        self.scaffold.encode_special_tokens = False  # the template's own markers are special tokens

    def _template_ids(self, text: str) -> list[int]:
        return self.scaffold.encode(text, add_special_tokens=False).ids if text else []

    def _message_ids(self, text: str, content: str, index: int) -> list[int]:
        at = text.find(content)
        if at < 0:
            stripped = content.strip()
            at, content = text.find(stripped), stripped
        if at < 0:
            raise ValueError(f"the chat template rewrites the content of message {index} (it is not in the "
                             f"rendered text), so its tokens cannot be told from the template's")
        (ids,) = encode_texts(self.tokenizer, [content])
        return self._template_ids(text[:at]) + ids + self._template_ids(text[at + len(content):])

    def encode(self, messages: list[tuple[str, str]]) -> list[tuple[list[int], str]]:
        """``(ids, HEADER)`` for each assistant message's generation prompt, then ``(ids, role)`` per message."""
        pieces: list[tuple[list[int], str]] = []
        before = ""
        for i, (role, content) in enumerate(messages):
            full = self.chat.render(messages[: i + 1], add_generation_prompt=False)
            start = before
            if role == ASSISTANT:
                header = self.chat.render(messages[:i], add_generation_prompt=True) if i else ""
                if not (header.startswith(before) and full.startswith(header)):
                    raise ValueError(f"the chat template's generation prompt before message {i} is not the start "
                                     f"of that message's text; it cannot be cut into prompt and answer")
                pieces.append((self._template_ids(header[len(before):]), HEADER))
                start = header
            if not full.startswith(start):
                raise ValueError(f"the chat template changes earlier text when message {i} is added; "
                                 f"it cannot be cut into messages")
            pieces.append((self._message_ids(full[len(start):], content, i), role))
            before = full
        return pieces
