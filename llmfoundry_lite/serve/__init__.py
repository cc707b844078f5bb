"""Serve a trained model over an OpenAI-style completions API (``scripts/serve.py``).

``config`` (what the command line may set) → ``server`` (load, pick a backend, run uvicorn) →
``app`` (FastAPI routes, request checks in ``protocol``, the model's FIM layout for ``suffix`` in ``fim``,
errors in ``errors``; ``auth``, ``limits`` and ``metrics`` for operators; one request's life in
``request``) → an engine:
``engine`` batches requests continuously over the slot KV cache of ``slots`` for our own
model, ``ct2`` runs the CTranslate2 conversion with dynamic batching. Both turn tokens into
text and stop sequences through ``choice``. ``adapters`` puts ``--lora`` adapters on our model,
applied per row, so requests for the base and its adapters batch together.
"""
