"""``composer -n N tests/finetune/record_base_reads.py <train.py arguments>``: ``train.py``, except that every read
of a checkpoint's weights appends ``<rank> <checkpoint path>`` to the file named by ``$BASE_READS_LOG``.

Our checkpoints' tensors are only ever read through ``checkpoint_io.iter_model_state`` (whole-model loads
and ``iter_transformer_tensors`` look it up at call time), so the log says which ranks materialised the base.
"""

import os
import sys

from llmfoundry_lite.cli.train import main
from llmfoundry_lite.models import checkpoint_io

_read = checkpoint_io.iter_model_state


def _recorded(ckpt):
    with open(os.environ["BASE_READS_LOG"], "a") as log:
        log.write(f"{os.environ.get('RANK', '0')} {ckpt.path}\n")
    yield from _read(ckpt)


checkpoint_io.iter_model_state = _recorded

if __name__ == "__main__":
    main(sys.argv[1:])
