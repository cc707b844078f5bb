"""The chat template of this project's tokenizers: reserved tokens mark roles and turn ends.

A conversation is laid out as, for each message, ``<role token> content <end-of-turn>``, with
``<|reserved_0|>`` system, ``<|reserved_1|>`` user, ``<|reserved_2|>`` assistant and
``<|reserved_3|>`` end of turn; a prompt for generation ends with the assistant role token.
Training never renders this as text: ``encode_conversation`` encodes each message's content on
its own and puts the role ids in between, so a role token is always its exact id and a literal
``<|reserved_1|>`` inside a message stays text (``tokenizer.io`` keeps specials off for text).
``CHAT_TEMPLATE`` is the same layout as a Jinja string, for exported HF tokenizers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmfoundry_lite.tokenizer.io import encode_texts
from llmfoundry_lite.tokenizer.special import reserved

if TYPE_CHECKING:
    from tokenizers import Tokenizer

SYSTEM, USER, ASSISTANT = "system", "user", "assistant"
ROLES = (SYSTEM, USER, ASSISTANT)
"""Message roles a conversation may use (system only as the first message)."""
ROLE_TOKENS = {SYSTEM: reserved(0), USER: reserved(1), ASSISTANT: reserved(2)}
"""The token that opens a message of each role."""
END_OF_TURN = reserved(3)
"""The token that closes every message; the model learns to emit it after its answer."""
END_OF_TURN_KEY = "end_of_turn"
"""Key of the end-of-turn id in ``role_token_ids``' result."""
MIN_RESERVED = 4
"""Reserved tokens a tokenizer needs for this template (``num_reserved`` when training it)."""
HEADER = "header"
"""Piece tag of a role token: prompt side even before an assistant answer."""

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}<|reserved_0|>"
    "{%- elif message['role'] == 'user' -%}<|reserved_1|>"
    "{%- elif message['role'] == 'assistant' -%}<|reserved_2|>"
    "{%- else -%}{{ raise_exception('unknown role: ' + message['role']) }}"
    "{%- endif -%}"
    "{{ message['content'] }}<|reserved_3|>"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|reserved_2|>{%- endif -%}"
)
"""Jinja form of the layout (HF ``chat_template``): ``<role token>content<end-of-turn>`` per message,
then the assistant role token when ``add_generation_prompt``. It adds no end-of-text: training
appends one after the whole conversation, and a generation prompt never holds it. Generation
should stop on end-of-turn (or end-of-text). Spelled out, not built from ``ROLE_TOKENS``, so it reads as
HF will see it; the tests check it renders to exactly the tokens of ``encode_conversation``."""


def role_token_ids(tokenizer: Tokenizer) -> dict[str, int]:
    """Ids of the role tokens (keys ``system``, ``user``, ``assistant``) and of ``end_of_turn``.

    Raises ``ValueError`` naming the first missing token when the tokenizer was trained with
    fewer than ``MIN_RESERVED`` reserved tokens.
    """
    ids: dict[str, int] = {}
    for key, token in [*ROLE_TOKENS.items(), (END_OF_TURN_KEY, END_OF_TURN)]:
        token_id = tokenizer.token_to_id(token)
        if token_id is None:
            raise ValueError(f"tokenizer has no {token}; train it with num_reserved >= {MIN_RESERVED} "
                             f"(the chat template uses reserved tokens 0-{MIN_RESERVED - 1} as role markers)")
        ids[key] = token_id
    return ids


def encode_conversation(tokenizer: Tokenizer, messages: list[tuple[str, str]],
                        roles: dict[str, int]) -> list[tuple[list[int], str]]:
    """Token pieces of a conversation, each tagged with who wrote it, in order.

    ``messages`` are ``(role, content)`` pairs; ``roles`` is ``role_token_ids(tokenizer)``. Each
    message gives two pieces: ``([role id], HEADER)`` then ``(content ids + [end-of-turn id], role)``,
    so an assistant piece is exactly what the model must produce, its end-of-turn included, and
    the role token that cues it sits on the prompt side. No end-of-text is added.
    """
    unknown = sorted({role for role, _ in messages} - set(ROLES))
    if unknown:
        raise ValueError(f"unknown message role(s) {unknown}; choose from {list(ROLES)}")
    contents = encode_texts(tokenizer, [content for _, content in messages])
    pieces: list[tuple[list[int], str]] = []
    for (role, _), ids in zip(messages, contents, strict=True):
        pieces.append(([roles[role]], HEADER))
        pieces.append(([*ids, roles[END_OF_TURN_KEY]], role))
    return pieces
