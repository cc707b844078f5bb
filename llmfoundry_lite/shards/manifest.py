"""The shards manifest: what the MDS samples are and how they were made.

Training calls ``check_shards_manifest`` before building its loader and refuses
shards made with another tokenizer, vocabulary size or sequence length.
"""

from __future__ import annotations

import json
from pathlib import Path

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1

# How the objectives re-tokenise documents at load time; recorded so the shards describe themselves.
LAYOUT_NOTE = (
    "Each sample is max_seq_len token ids (uint16 when the vocabulary has at most 65,536 ids, else int32: "
    "see columns) from one packed stream per unit and split: every "
    "document's tokens followed by eos_id. eos_id tokens are the only document boundaries; a "
    "sample may start or end inside a document. The last partial sample of each unit and split "
    "is padded with pad_id (remainder=pad) or dropped (remainder=drop). Character-level FIM at "
    "load time splits a sample on eos_id, decodes each fragment to text, cuts at characters and "
    "re-encodes prefix/middle/suffix separately (same tokenizer, specials inserted by id), then "
    "trims/pads the context back to max_seq_len. Fragments cut by a sample edge may begin or end "
    "inside a multi-byte character (a byte-level token can hold part of one): work from the "
    "tokens' bytes and leave the partial edge tokens as they are, never decode them to U+FFFD. "
    "Literal special-token text in code is ordinary text: encode with load_tokenizer(). pad_id "
    "never carries a training target."
)


def write_shards_manifest(out: Path, manifest: dict) -> Path:
    """Write ``manifest.json`` atomically (a half-written manifest must never look valid)."""
    path = out / MANIFEST_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"format_version": FORMAT_VERSION, **manifest}, indent=2, sort_keys=True) + "\n")
    tmp.rename(path)
    return path


def load_shards_manifest(shards_dir: str | Path) -> dict:
    """The manifest of a shards directory; ValueError if there is none."""
    path = Path(shards_dir) / MANIFEST_FILE
    if not path.is_file():
        raise ValueError(f"{path} not found: {shards_dir} is not a finished shards directory; "
                         f"build it with data_prep/shard_stack.py")
    return json.loads(path.read_text())


def check_shards_manifest(
    shards_dir: str | Path, tokenizer_dir: str | Path | None, max_seq_len: int, vocab_size: int
) -> dict:
    """The manifest of ``shards_dir`` after checking it matches the run; ValueError naming any mismatch.

    ``tokenizer_dir``: the tokenizer the run trains with (None skips the hash check);
    ``max_seq_len`` and ``vocab_size``: the model's.
    """
    m = load_shards_manifest(shards_dir)
    problems = []
    if tokenizer_dir is not None:
        from llmfoundry_lite.tokenizer.io import tokenizer_sha256

        sha = tokenizer_sha256(tokenizer_dir)
        if sha != m["tokenizer_sha256"]:
            problems.append(f"tokenizer: {tokenizer_dir} has sha256 {sha[:12]}…, the shards were "
                            f"tokenized with {m['tokenizer_sha256'][:12]}… ({m.get('tokenizer_dir')})")
    if max_seq_len != m["max_seq_len"]:
        problems.append(f"max_seq_len: model has {max_seq_len}, shards hold samples of {m['max_seq_len']} tokens")
    if vocab_size != m["vocab_size"]:
        problems.append(f"vocab_size: model has {vocab_size}, the shards' tokenizer has {m['vocab_size']}")
    if problems:
        raise ValueError(f"shards {shards_dir} do not match this run: " + "; ".join(problems)
                         + "; rebuild them with data_prep/shard_stack.py or fix the config")
    return m
