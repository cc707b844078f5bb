"""The slot cache against ``Transformer.forward``, and the incremental text with stop sequences."""

from __future__ import annotations

import torch

from llmfoundry_lite.serve.choice import StopText, decode_table
from llmfoundry_lite.serve.slots import SlotCache, decode, prefill
from llmfoundry_lite.tokenizer.io import encode_texts
from tests.serve.conftest import PROMPTS


def test_ragged_prefill_and_decode_equal_unbatched_forward(tiny):
    model, tok = tiny
    prompts = [encode_texts(tok, [p])[0] for p in PROMPTS[:3]]
    assert len({len(p) for p in prompts}) == 3  # ragged on purpose
    cache = SlotCache(model, slots=4)
    logits = prefill(model, cache, prompts, [2, 0, 1])  # rows land in slots out of order
    with torch.no_grad():
        for row, ids in enumerate(prompts):
            torch.testing.assert_close(logits[row], model(torch.tensor([ids]))[0, -1], atol=1e-5, rtol=1e-4)
    nxt = [7, 11, 5, None]  # slot 3 is free: a dummy row
    step = decode(model, cache, nxt)
    assert cache.lengths[:3] == [len(prompts[1]) + 1, len(prompts[2]) + 1, len(prompts[0]) + 1]
    with torch.no_grad():
        for slot, row in ((0, 1), (1, 2), (2, 0)):
            full = model(torch.tensor([prompts[row] + [nxt[slot]]]))[0, -1]
            torch.testing.assert_close(step[slot], full, atol=1e-5, rtol=1e-4)


def test_stop_text_holds_back_possible_stops_and_decodes_like_tokenizers(tiny):
    _, tok = tiny
    text = "def f():\n    return 'é€'\n\nclass X:\n    pass\n"
    ids = encode_texts(tok, [text])[0]
    table = decode_table(tok)
    plain = StopText(table, ())
    assert "".join(plain.feed(i)[0] for i in ids) + plain.flush() == tok.decode(ids) == text
    stops = StopText(table, ("\nclass", "zzz"))
    released, stopped = [], False
    for i in ids:
        out, stopped = stops.feed(i)
        released.append(out)
        assert "\nclass" not in "".join(released)
        if stopped:
            break
    assert stopped and "".join(released) == text[: text.find("\nclass")]
