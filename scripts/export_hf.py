"""Export a checkpoint to Hugging Face format and prove transformers loads it.

    python scripts/export_hf.py <checkpoint.pt | sharded_checkpoint_dir | save_folder> --output DIR
        [--max-shard-size 2GB] [--dtype float32|bfloat16|float16] [--prompt TEXT] [--max-new-tokens N]
        [--mlflow-register NAME [--mlflow-tracking-uri URI] [--mlflow-experiment NAME]]

Works offline on CPU for both Composer formats (full ``.pt`` and FSDP ``state_dict_type: sharded``
directories), streaming one tensor at a time. DIR gets config.json, safetensors weights
(model.safetensors, or model-0000i-of-0000N.safetensors + model.safetensors.index.json past
--max-shard-size) and the tokenizer files (``LlamaForCausalLM``); the export is then reloaded with
plain transformers and completes the prompt (DIR/sample_generation.txt). ``--mlflow-register NAME`` then logs
DIR as an MLflow transformers model and registers a new version of NAME (``scripts/serve.py --model
models:/NAME/VERSION`` serves it).
"""

import sys

from llmfoundry_lite.cli.export import main

if __name__ == "__main__":
    main(sys.argv[1:])
