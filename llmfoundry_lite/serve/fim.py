"""Fill-in-the-middle prompts for any base model: the template comes from the tokenizer's special tokens.

Editor clients (Continue, Tabby) send ``prompt`` (the code before the cursor) and ``suffix`` (the code
after it); the model only infills when they reach it in the layout it was trained on, with its own
sentinel tokens. Every family in ``FIM_TEMPLATES`` uses prefix-suffix-middle order and differs in
sentinel spelling, an optional BOS, and the tokens that end a middle:

- ``starcoder``: ``<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>`` (our own tokenizers spell the
  sentinels the same way, ``tokenizer/special.py``; StarCoder, StarCoder2, SantaCoder);
- ``codellama``: ``<s>▁<PRE> {prefix}▁<SUF>{suffix}▁<MID>``: transformers' ``CodeLlamaTokenizer`` names the
  sentinels ``▁<PRE>``/``▁<SUF>``/``▁<MID>`` (a leading-space piece each) and encodes ``" " + prefix``;
- ``deepseek``: ``<｜begin▁of▁sentence｜><｜fim▁begin｜>{prefix}<｜fim▁hole｜>{suffix}<｜fim▁end｜>``
  (fullwidth bars, ``▁`` for spaces);
- ``qwen``: ``<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>`` (Qwen2.5-Coder).

Sentinels are inserted as ids and the texts encoded apart, so code that literally contains a
sentinel string stays text. A SentencePiece-style tokenizer that puts ``▁`` before every text it encodes
(a ``Prepend`` normalizer, a ``Metaspace`` prepend scheme: Llama's) encodes the pieces through a copy
without that dummy prefix, as transformers' ``CodeLlamaTokenizerFast.set_infilling_processor`` does;
the one space before CodeLlama's prefix is then the template's ``prefix_lead``.

A middle ends at the tokenizer's EOS, at any of the family's end tokens the tokenizer has
(``end_tokens``), or at one of the template's own sentinels (a model that starts a new FIM prompt has
finished this one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tokenizers import Tokenizer

from llmfoundry_lite.tokenizer.io import clean_text, encode_texts, text_safe

AUTO = "auto"


@dataclass(frozen=True)
class FimTemplate:
    """One family's layout; each sentinel lists the spellings it is known by, the first one present wins."""

    prefix: tuple[str, ...]
    suffix: tuple[str, ...]
    middle: tuple[str, ...]
    end_tokens: tuple[str, ...]
    """Tokens that end a middle besides EOS and the sentinels, used when the tokenizer has them."""
    bos: str | None = None
    """Prepended when the tokenizer has it (the family's tokenizer adds it to every encoding)."""
    prefix_lead: str = ""
    """Text put before the prefix (CodeLlama's tokenizer encodes ``" " + prefix``)."""


FIM_TEMPLATES: dict[str, FimTemplate] = {
    "qwen": FimTemplate(("<|fim_prefix|>",), ("<|fim_suffix|>",), ("<|fim_middle|>",),
                        ("<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>", "<|im_end|>")),
    "deepseek": FimTemplate(("<｜fim▁begin｜>",), ("<｜fim▁hole｜>",), ("<｜fim▁end｜>",),
                            ("<｜end▁of▁sentence｜>", "<|EOT|>"), bos="<｜begin▁of▁sentence｜>"),
    "codellama": FimTemplate(("▁<PRE>", "<PRE>"), ("▁<SUF>", "<SUF>"), ("▁<MID>", "<MID>"),
                             ("▁<EOT>", "<EOT>", "</s>"), bos="<s>", prefix_lead=" "),
    "starcoder": FimTemplate(("<fim_prefix>",), ("<fim_suffix>",), ("<fim_middle>",),
                             ("<|endoftext|>", "<fim_pad>", "<file_sep>")),
}  # fmt: skip
"""``--fim-template`` name → layout; ``auto`` tries them in this order and takes the first whose three
sentinels are all special tokens of the tokenizer."""


@dataclass(frozen=True)
class Fim:
    """A template resolved against one tokenizer: the ids a FIM prompt is built from."""

    name: str
    prefix_id: int
    suffix_id: int
    middle_id: int
    bos_id: int | None
    prefix_lead: str
    end_ids: frozenset[int]
    """Token ids that end a middle (EOS is the engine's own and ends it anyway)."""
    encoder: Tokenizer
    """Encodes the prefix and suffix: the tokenizer, or its copy without a dummy-prefix ``▁``."""

    def prompt_ids(self, prefix: str, suffix: str) -> list[int]:
        """``[bos] prefix-sentinel prefix suffix-sentinel suffix middle-sentinel`` as token ids."""
        pre, suf = encode_texts(self.encoder, [self.prefix_lead + clean_text(prefix), clean_text(suffix)])
        bos = [] if self.bos_id is None else [self.bos_id]
        return [*bos, self.prefix_id, *pre, self.suffix_id, *suf, self.middle_id]


def _special_id(tokenizer: Tokenizer, spellings: tuple[str, ...]) -> int | None:
    specials = {t.content: i for i, t in tokenizer.get_added_tokens_decoder().items()}
    return next((specials[s] for s in spellings if s in specials), None)


def _without_dummy_prefix(tokenizer: Tokenizer) -> Tokenizer:
    """``tokenizer`` itself, or a copy that does not put ``▁`` before each text it encodes."""
    spec = json.loads(tokenizer.to_str())
    norm, pre = spec.get("normalizer") or {}, spec.get("pre_tokenizer") or {}
    norms = [n for n in (norm.get("normalizers", []) if norm.get("type") == "Sequence" else [norm]) if n]
    pres = [p for p in (pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]) if p]
    prepends = [n for n in norms if n.get("type") == "Prepend"]
    metaspaces = [p for p in pres if p.get("type") == "Metaspace" and p.get("prepend_scheme", "never") != "never"]
    if not prepends and not metaspaces:
        return tokenizer
    kept = [n for n in norms if n.get("type") != "Prepend"]
    spec["normalizer"] = {"type": "Sequence", "normalizers": kept} if kept else None
    for p in metaspaces:
        p["prepend_scheme"] = "never"
    return text_safe(Tokenizer.from_str(json.dumps(spec)))


def _resolve(name: str, tokenizer: Tokenizer) -> Fim | None:
    t = FIM_TEMPLATES[name]
    pre, suf, mid = (_special_id(tokenizer, spellings) for spellings in (t.prefix, t.suffix, t.middle))
    if pre is None or suf is None or mid is None:
        return None
    ends = {i for i in (_special_id(tokenizer, (tok,)) for tok in t.end_tokens) if i is not None}
    bos = _special_id(tokenizer, (t.bos,)) if t.bos else None
    encoder = _without_dummy_prefix(tokenizer)
    return Fim(name, pre, suf, mid, bos, t.prefix_lead, frozenset(ends | {pre, suf, mid}), encoder)


def resolve_fim(tokenizer: Tokenizer, choice: str = AUTO) -> Fim | None:
    """The FIM template ``choice`` names (``--fim-template``), or with ``auto`` the first family whose
    sentinels the tokenizer has (None: the model cannot infill). Naming a family whose sentinels the
    tokenizer lacks is a ValueError: the server would otherwise start and refuse every infill."""
    if choice == AUTO:
        return next((fim for name in FIM_TEMPLATES if (fim := _resolve(name, tokenizer)) is not None), None)
    if choice not in FIM_TEMPLATES:
        raise ValueError(f"unknown --fim-template {choice!r}; choose from {[AUTO, *FIM_TEMPLATES]}")
    fim = _resolve(choice, tokenizer)
    if fim is None:
        t = FIM_TEMPLATES[choice]
        missing = [s[0] for s in (t.prefix, t.suffix, t.middle) if _special_id(tokenizer, s) is None]
        raise ValueError(f"--fim-template {choice}: the tokenizer has no special tokens {missing}; "
                         f"use --fim-template auto or one of the families it has")  # fmt: skip
    return fim


def no_fim_message() -> str:
    """Why a model without sentinels refuses ``suffix``: what was looked for."""
    looked = sorted({s for t in FIM_TEMPLATES.values() for s in t.prefix})
    return (f"this model cannot infill: its tokenizer has no fill-in-the-middle special tokens (looked for {looked}); "
            "send the prompt without suffix")  # fmt: skip
