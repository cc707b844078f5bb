"""Compare our code BPE with the StarCoder recipe and a SentencePiece unigram model.

All three are trained on the same seeded sample of the corpus with the same total
vocabulary size (the project's special block included); documents whose content
hash falls in the held-out share are never trained on and are used to measure
characters per token per language, plus exact round-trip failures. Training time is
measured in the same run, so the ratios compare like with like.

    .venv/bin/python benchmarks/bench_tokenizer.py [--input data/local_stack] [--sample-bytes 4000000] [--vocab-size 8192]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

from llmfoundry_lite.corpus.readers import iter_documents, list_input_shards
from llmfoundry_lite.shards.pack import split_of
from llmfoundry_lite.tokenizer.config import round_vocab
from llmfoundry_lite.tokenizer.io import clean_text
from llmfoundry_lite.tokenizer.sample import doc_key
from llmfoundry_lite.tokenizer.special import special_tokens
from llmfoundry_lite.tokenizer.train import train_bpe

HELDOUT_SEED = 12345
Encoder = Callable[[str], list[int]]
Decoder = Callable[[list[int]], str]


def load_docs(inputs: list[str], heldout_fraction: float) -> tuple[list[dict], list[dict]]:
    """All documents, split into a training pool and a held-out set by content hash."""
    pool, heldout = [], []
    for shard in list_input_shards(inputs):
        for doc in iter_documents(shard, Counter()):
            doc["content"] = clean_text(doc["content"])
            is_heldout = split_of(doc["content"], HELDOUT_SEED, heldout_fraction) == "val"
            (heldout if is_heldout else pool).append(doc)
    return pool, heldout


def pick(docs: list[dict], budget: int, seed: int, max_doc_chars: int) -> list[str]:
    """Documents in seeded hash order until ``budget`` characters (the tokenizer's sampling rule)."""
    texts, total = [], 0
    for doc in sorted(docs, key=lambda d: doc_key(seed, d["id"])):
        if total >= budget:
            break
        texts.append(doc["content"][:max_doc_chars])
        total += len(texts[-1])
    return texts


def train_hf(texts: list[str], vocab: int, recipe: str, num_reserved: int) -> tuple[Encoder, Decoder, float]:
    start = time.perf_counter()
    tok = train_bpe(texts, vocab, num_reserved, recipe, min_frequency=2)
    seconds = time.perf_counter() - start
    tok.encode_special_tokens = True
    return (lambda t: tok.encode(t, add_special_tokens=False).ids), (lambda ids: tok.decode(ids)), seconds


def train_spm(texts: list[str], vocab: int, num_reserved: int, workdir: Path) -> tuple[Encoder, Decoder, float]:
    """SentencePiece unigram as Replit used it: byte fallback, digits split, whitespace kept verbatim."""
    import sentencepiece as spm

    chunks = [c for t in texts for c in _chunks(t, 8000)]
    prefix = str(workdir / "spm")
    start = time.perf_counter()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(chunks), model_prefix=prefix, model_type="unigram", vocab_size=vocab,
        control_symbols=special_tokens(num_reserved)[2:], bos_id=-1, eos_id=0, pad_id=1, unk_id=2,
        eos_piece="<|endoftext|>", pad_piece="<|pad|>", byte_fallback=True, split_digits=True,
        allow_whitespace_only_pieces=True, remove_extra_whitespaces=False, add_dummy_prefix=False,
        normalization_rule_name="identity", character_coverage=0.9995, max_sentence_length=16384,
        input_sentence_size=0, num_threads=2, minloglevel=2,
    )
    seconds = time.perf_counter() - start
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    return (lambda t: sp.encode(t)), (lambda ids: sp.decode(ids)), seconds


def _chunks(text: str, size: int) -> list[str]:
    """Line-aligned pieces of at most ~``size`` characters (SentencePiece caps sentence length)."""
    out, cur, n = [], [], 0
    for line in text.splitlines(keepends=True):
        if n + len(line) > size and cur:
            out.append("".join(cur))
            cur, n = [], 0
        cur.append(line[:size])
        n += len(cur[-1])
    if cur:
        out.append("".join(cur))
    return out


def measure(encode: Encoder, decode: Decoder, heldout: list[dict]) -> tuple[dict[str, tuple[int, int]], int]:
    """Per language (characters, tokens) and the number of files that do not round-trip exactly."""
    per_lang: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    failures = 0
    for doc in heldout:
        ids = encode(doc["content"])
        failures += decode(ids) != doc["content"]
        per_lang[doc["lang"]][0] += len(doc["content"])
        per_lang[doc["lang"]][1] += len(ids)
    return {k: (v[0], v[1]) for k, v in per_lang.items()}, failures


def report(results: dict[str, tuple[dict, int, float]], heldout: list[dict], min_files: int) -> None:
    names = list(results)
    files = Counter(d["lang"] for d in heldout)
    langs = [lang for lang, n in files.most_common() if n >= min_files]
    print("\nchars/token on held-out files (higher is better); ratio = ours / other\n")
    print(f"{'language':<14}{'files':>6}" + "".join(f"{n:>12}" for n in names) + "".join(f"{'÷' + n:>13}" for n in names[1:]))
    rows = [(lang, files[lang], {n: results[n][0].get(lang, (0, 1)) for n in names}) for lang in langs]
    total = {n: tuple(map(sum, zip(*results[n][0].values(), strict=True))) for n in names}
    rows.append(("ALL", len(heldout), total))
    for lang, nfiles, counts in rows:
        cpt = {n: counts[n][0] / max(counts[n][1], 1) for n in names}
        line = f"{lang:<14}{nfiles:>6}" + "".join(f"{cpt[n]:>12.3f}" for n in names)
        line += "".join(f"{cpt[names[0]] / cpt[n]:>13.3f}" for n in names[1:])
        print(line)
    print("\n" + f"{'':<20}" + "".join(f"{n:>12}" for n in names))
    print(f"{'round-trip failures':<20}" + "".join(f"{results[n][1]:>12}" for n in names))
    print(f"{'training seconds':<20}" + "".join(f"{results[n][2]:>12.1f}" for n in names))


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", nargs="+", default=["data/local_stack"])
    ap.add_argument("--sample-bytes", type=int, default=4_000_000, help="training sample size (characters)")
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--num-reserved", type=int, default=147)
    ap.add_argument("--heldout-fraction", type=float, default=0.05)
    ap.add_argument("--max-doc-chars", type=int, default=100_000)
    ap.add_argument("--min-files", type=int, default=5, help="list languages with at least this many held-out files")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    vocab = round_vocab(args.vocab_size)
    pool, heldout = load_docs(args.input, args.heldout_fraction)
    texts = pick(pool, args.sample_bytes, args.seed, args.max_doc_chars)
    print(f"corpus {args.input}: train pool {len(pool)} docs, held-out {len(heldout)} docs "
          f"({sum(len(d['content']) for d in heldout):,} chars); sample {len(texts)} docs "
          f"({sum(map(len, texts)):,} chars); vocab {vocab} incl. {len(special_tokens(args.num_reserved))} special")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {
            "ours": lambda: train_hf(texts, vocab, "code", args.num_reserved),
            "starcoder": lambda: train_hf(texts, vocab, "starcoder", args.num_reserved),
            "spm-unigram": lambda: train_spm(texts, vocab, args.num_reserved, Path(tmp)),
        }
        for name, train in trainers.items():
            encode, decode, seconds = train()
            per_lang, failures = measure(encode, decode, heldout)
            results[name] = (per_lang, failures, seconds)
            print(f"  {name}: trained in {seconds:.1f} s, {failures} round-trip failures", flush=True)
    report(results, heldout, args.min_files)


if __name__ == "__main__":
    main(sys.argv[1:])
