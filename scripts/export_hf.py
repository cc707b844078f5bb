"""Export a checkpoint to Hugging Face format and prove transformers loads it.

    python scripts/export_hf.py <checkpoint.pt | save_folder> --output DIR [--prompt TEXT] [--max-new-tokens N]

DIR gets config.json, model.safetensors and the tokenizer files (``LlamaForCausalLM``); the export
is then reloaded with plain transformers and completes the prompt (DIR/sample_generation.txt).
"""

import sys

from llmfoundry_lite.models.export_command import main

if __name__ == "__main__":
    main(sys.argv[1:])
