"""``python -m llmfoundry_lite <command> [args]``: every command of the pipeline, by name.

An installed wheel has no ``train.py``, ``data_prep/`` or ``scripts/``; this is how its user runs the
same commands (``python -m llmfoundry_lite filter --input ... --output ...``). Each name leads straight
to the module whose ``main(argv)`` runs it, imported only when chosen so the listing stays instant.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "local_stack": ("llmfoundry_lite.cli.local_stack", "build a Stack-format corpus from source code on this machine"),
    "filter": ("llmfoundry_lite.cli.filter", "filter a corpus: licenses, heuristics, PII, decontamination, dedup"),
    "tokenizer": ("llmfoundry_lite.cli.tokenizer", "train the code vocabulary"),
    "shards": ("llmfoundry_lite.cli.shards", "corpus -> filter -> vocabulary -> MDS shards, from one YAML"),
    "synthesize": ("llmfoundry_lite.cli.synthesize", "instruction pairs from documented functions, verified in the sandbox"),
    "train": ("llmfoundry_lite.cli.train", "pretrain or fine-tune (under `composer -n N` for several GPUs)"),
    "humaneval": ("llmfoundry_lite.cli.humaneval", "HumanEval pass@k of a model or a samples file, in the sandbox"),
    "export": ("llmfoundry_lite.cli.export", "export a checkpoint to Hugging Face format and reload it"),
    "convert": ("llmfoundry_lite.cli.convert", "turn a sharded checkpoint into one file"),
    "serve": ("llmfoundry_lite.cli.serve", "serve a model over an OpenAI-style completions API"),
    "feedback_export": ("llmfoundry_lite.cli.feedback_export", "the server's feedback store as Parquet"),
    "feedback_report": ("llmfoundry_lite.cli.feedback_report", "the feedback dashboard as a file, A/B p-values"),
    "feedback_to_train": ("llmfoundry_lite.cli.feedback_to_train", "SFT rows and preference pairs from user feedback"),
    "feedback_loop": ("llmfoundry_lite.cli.feedback_loop", "simulated editors -> A/B -> DPO -> A/B (repository checkout)"),
    "replay_spike": ("llmfoundry_lite.cli.replay_spike", "replay a recorded loss spike sample by sample"),
    "demo": ("llmfoundry_lite.cli.demo", "the whole pipeline on the local corpus (from a repository checkout)"),
}
"""Command name -> (module with ``main(argv)``, one line for the listing)."""


def usage() -> str:
    """The listing printed for no command, an unknown one, or ``--help``."""
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {about}" for name, (_, about) in COMMANDS.items()]
    return "usage: python -m llmfoundry_lite <command> [args]   (<command> --help for its options)\n\ncommands:\n" \
        + "\n".join(lines)


def main(argv: list[str]) -> None:
    """Run ``argv[0]``'s command with the rest of ``argv``; list the commands otherwise."""
    if argv and argv[0] in ("-h", "--help"):
        print(usage())
        return
    if not argv or argv[0] not in COMMANDS:
        print(usage(), file=sys.stderr)
        unknown = f"unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}" if argv else "no command given"
        print(f"error: {unknown}", file=sys.stderr)
        raise SystemExit(2)
    module, _ = COMMANDS[argv[0]]
    importlib.import_module(module).main(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
