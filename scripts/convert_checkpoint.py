"""Convert a sharded Composer checkpoint into one file, offline.

    python scripts/convert_checkpoint.py <sharded_checkpoint_dir | save_folder> --output FILE.pt [--weights-only]

FILE.pt is in Composer's full format ({"state": ..., "rng": ...}); --weights-only keeps only the
model weights and RunInfo (and also strips a full .pt). Either loads with load_for_inference and
exports with scripts/export_hf.py. One tensor is in memory at a time; staging files beside
FILE.pt take its size on disk until it is written.
"""

import sys

from llmfoundry_lite.cli.convert import main

if __name__ == "__main__":
    main(sys.argv[1:])
