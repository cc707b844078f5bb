"""LoRA adapters served beside their base in one engine (``--lora NAME=PATH``), batched together.

The base weights stay unmerged: each adapted linear of the base gets a forward hook that adds
``(x Aᵀ) Bᵀ`` for each row's adapter, its scale folded into B (S-LoRA and punica batch many adapters
of one base the same way; ``MultiLora`` says how the rows of several adapters share three kernels).
Requests for the base and for any adapters share one forward, base rows cost nothing when a forward
has no adapter rows, and every adapter's rows compute what the merged model ``W + scale · B A``
computes, up to float rounding.

Which adapter a row uses is a per-slot table (``MultiLora.assign`` when a choice gets its slot):
a forward over slots ``0..B-1`` (``slots.decode``, ``slots.verify``) reads it without being told;
``prefill``, whose rows are prompts, names each row's slot with ``MultiLora.slot_rows``.

Two formats load (``read_adapters``): a LoRA checkpoint of our fine-tuning (adapter tensors by our
parameter names plus ``FinetuneInfo``, whose recorded base weights hash must be the served base's),
and a peft adapter directory (``adapter_config.json`` + ``adapter_model.safetensors`` for an HF
Llama, as ``finetune/peft_export.py`` writes or peft's ``save_pretrained`` does). HF keeps q, k, v
and gate, up apart where we fuse them: per-part adapters become one adapter of the fused layer,
``A`` the parts' ``A``s stacked and ``B`` block-diagonal, which adds exactly each part's update
(one shared ``A``, as our export writes, is kept once).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from llmfoundry_lite.finetune.base import weights_sha256
from llmfoundry_lite.finetune.peft_export import PEFT_PREFIX, split_key
from llmfoundry_lite.models.checkpoint_io import iter_transformer_tensors, locate_checkpoint
from llmfoundry_lite.models.hf_export import to_hf_tensors
from llmfoundry_lite.models.load import lora_state
from llmfoundry_lite.models.transformer import Transformer

TARGETS = ("attn.qkv_proj", "attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj")
"""The linears of a block an adapter may change (``finetune.config.LORA_TARGETS``, by module path)."""
PEFT_CONFIG, PEFT_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"

LowRank = tuple[torch.Tensor, torch.Tensor]
"""(A (R, I), B (O, R) already times the scale) of one linear: the update is x Aᵀ Bᵀ."""


@dataclass(frozen=True)
class Adapter:
    """One served adapter: the name clients pass as ``model``, where it came from, its updates by our
    module name (``blocks.0.attn.qkv_proj``)."""

    name: str
    path: str
    updates: dict[str, LowRank]


def read_adapters(specs: dict[str, str], model: Transformer, base: str) -> list[Adapter]:
    """Every ``--lora NAME=PATH`` (``ServeConfig.lora_specs``) read and checked against ``model``, the
    served base ``base`` with its weights as loaded (our LoRA checkpoints recorded their hash)."""
    adapters, base_sha = [], None
    for name, path in specs.items():
        p = Path(path)
        if not p.exists():
            raise ValueError(f"--lora {name}={path}: no such file or directory")
        if (p / PEFT_CONFIG).is_file():
            updates = _read_peft(p, model)
        else:
            base_sha = base_sha or weights_sha256(model)
            try:
                updates = _read_ours(p, model, base, base_sha)
            except FileNotFoundError as err:  # a directory that is neither format
                raise ValueError(f"--lora {name}={path}: {err}; give a LoRA checkpoint or a peft adapter "
                                 f"directory ({PEFT_CONFIG})") from err
        adapters.append(Adapter(name, str(p), updates))
    return adapters


def _read_ours(path: Path, model: Transformer, base: str, base_sha: str) -> dict[str, LowRank]:
    where = f"--lora {path}"
    ckpt = locate_checkpoint(path)
    finetune = lora_state(ckpt)
    if finetune is None:
        raise ValueError(f"{where} is neither a LoRA checkpoint of our fine-tuning (no lora in its FinetuneInfo) "
                         f"nor a peft adapter directory ({PEFT_CONFIG}); a full model is served with --model")
    recorded = finetune.get("base_sha256")
    if recorded != base_sha:
        raise ValueError(f"{where} was fine-tuned from base {finetune.get('base_file')} (weights sha256 "
                         f"{str(recorded)[:16]}…), but the served --model {base} has weights sha256 {base_sha[:16]}…: "
                         f"its adapters belong to other weights; serve it beside the base it was trained on")
    # Imported here: the fine-tuning config pulls in Composer (seconds of start-up) that a server
    # without adapters of our own fine-tuning never needs.
    from llmfoundry_lite.finetune.config import LoraConfig

    lora = LoraConfig(**finetune["lora"])
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for name, t in iter_transformer_tensors(ckpt):
        weight, kind = split_key(name)
        pairs.setdefault(weight.removesuffix(".weight"), {})[kind] = t
    parts = {module: [(module, {"A": ab["lora_A"], "B": ab["lora_B"]}, lora.alpha / lora.r)]
             for module, ab in pairs.items()}  # fmt: skip
    return _fuse(parts, model, where)


def _read_peft(path: Path, model: Transformer) -> dict[str, LowRank]:
    from safetensors.torch import load_file

    where = f"--lora {path}"
    cfg = json.loads((path / PEFT_CONFIG).read_text())
    problems = [f"{k}={cfg.get(k)!r}" for k, ok in [("peft_type", cfg.get("peft_type") == "LORA"),
                ("use_dora", not cfg.get("use_dora")), ("bias", cfg.get("bias", "none") == "none"),
                ("modules_to_save", not cfg.get("modules_to_save")), ("rank_pattern", not cfg.get("rank_pattern")),
                ("alpha_pattern", not cfg.get("alpha_pattern"))] if not ok]  # fmt: skip
    if problems:
        raise ValueError(f"{where}/{PEFT_CONFIG}: {', '.join(problems)} is not served; only plain LoRA "
                         f"(one r and lora_alpha, no bias, no DoRA, no extra trained modules)")
    if not (path / PEFT_WEIGHTS).is_file():
        raise ValueError(f"{where} has {PEFT_CONFIG} but no {PEFT_WEIGHTS}")
    r, alpha = cfg["r"], cfg["lora_alpha"]
    scale = alpha / r**0.5 if cfg.get("use_rslora") else alpha / r
    hf_to_ours = {}  # HF module → (our module, its part)
    for i in range(model.cfg.n_layers):
        for target in TARGETS:
            weight = f"blocks.{i}.{target}.weight"
            for hf, _ in to_hf_tensors(weight, model.get_parameter(weight), model.cfg):
                hf_to_ours[hf.removesuffix(".weight")] = weight.removesuffix(".weight")
    found: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in load_file(str(path / PEFT_WEIGHTS)).items():
        module, _, kind = key.removeprefix(PEFT_PREFIX).removesuffix(".weight").rpartition(".")
        if not key.startswith(PEFT_PREFIX) or kind not in ("lora_A", "lora_B") or module not in hf_to_ours:
            raise ValueError(f"{where}: tensor {key!r} is no LoRA weight of a Llama linear this server adapts "
                             f"(q/k/v/o_proj, gate/up/down_proj of model.layers.N)")
        found.setdefault(module, {})[kind[-1]] = t
    parts: dict[str, list] = {}
    for module, ab in found.items():
        parts.setdefault(hf_to_ours[module], []).append((module, ab, scale))
    return _fuse(parts, model, where)


def _fuse(parts: dict[str, list[tuple[str, dict[str, torch.Tensor], float]]], model: Transformer,
          where: str) -> dict[str, LowRank]:
    """Per-part (A, B, scale) of each of our linears → one low-rank update of the whole linear."""
    updates = {}
    for module, pieces in parts.items():
        weight = model.get_parameter(f"{module}.weight")
        rows = {hf.removesuffix(".weight"): w.shape[0] for hf, w in to_hf_tensors(f"{module}.weight", weight, model.cfg)}
        offset, start = 0, {}
        for hf, n in rows.items():
            start[hf], offset = offset, offset + n
        start.setdefault(module, 0)
        As, Bs = [], []
        for part, ab, scale in pieces:
            if set(ab) != {"A", "B"}:
                raise ValueError(f"{where}: {part} has only lora_{''.join(ab)}; an adapter needs both A and B")
            A, B = ab["A"].float(), ab["B"].float()
            n = weight.shape[0] if part == module else rows[part]
            if A.shape[1] != weight.shape[1] or B.shape != (n, A.shape[0]):
                raise ValueError(f"{where}: {part} lora_A {tuple(A.shape)} / lora_B {tuple(B.shape)} do not fit the "
                                 f"base's layer ({n} outputs, {weight.shape[1]} inputs): another base's adapter")
            full = torch.zeros(weight.shape[0], A.shape[0])
            full[start[part] : start[part] + n] = B * scale
            As.append(A)
            Bs.append(full)
        if all(torch.equal(A, As[0]) for A in As):  # parts of one fused adapter (our export): keep A once
            updates[module] = (As[0], sum(Bs))
        else:
            updates[module] = (torch.cat(As), torch.cat(Bs, dim=1))
    return updates


class _Plan:
    """One forward's rows by adapter: ``single`` when one adapter (or the base, 0) has every row, else
    a 0/1 mask per column layout saying which low-rank columns each row may use."""

    def __init__(self, row_adapter: list[int], device: torch.device) -> None:
        self.n = len(row_adapter)
        kinds = set(row_adapter)
        self.single = kinds.pop() if len(kinds) == 1 else None
        self._rows = torch.tensor(row_adapter, device=device)
        self._masks: dict[int, torch.Tensor] = {}

    def mask(self, layout: int, col_adapter: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(B, 1, R): 1 where row b's adapter owns column r of a linear with this column layout."""
        if layout not in self._masks:
            self._masks[layout] = (self._rows[:, None] == col_adapter[None, :]).to(dtype)[:, None, :]
        return self._masks[layout]


class MultiLora:
    """Adapters installed on ``model``'s linears as forward hooks; adapter index 0 is the base.

    Each adapted linear holds every adapter's ``A`` stacked (R = the ranks summed, I inputs) and ``B``
    side by side (O, R). A forward whose rows all use one adapter multiplies by its slice alone; a mixed
    one computes ``x A_allᵀ`` for all adapters at once, zeroes the columns that are not the row's own
    adapter's and adds ``· B_allᵀ``: three kernels per linear however many adapters share the batch
    (rows on the base get zeros). Every forward (``Transformer.forward`` and each of ``slots``) starts
    at ``model.embed``: a pre-hook there makes the forward's ``_Plan`` once for all linears."""

    def __init__(self, model: Transformer, adapters: list[Adapter], slots: int) -> None:
        param = next(model.parameters())
        self.names = [a.name for a in adapters]
        self._slot_adapter = [0] * slots
        self._rows: list[int] | None = None  # the slot of each row, when rows are not slots 0..B-1
        self._plans: dict[tuple[int, ...], _Plan] = {}
        self._plan = _Plan([], param.device)
        self._device = param.device
        layouts: dict[tuple[int, ...], int] = {}
        model.embed.register_forward_pre_hook(self._plan_forward)
        for module in sorted({m for a in adapters for m in a.updates}):
            owners = [(i + 1, a.updates[module]) for i, a in enumerate(adapters) if module in a.updates]
            cols = tuple(i for i, (A, _) in owners for _ in range(A.shape[0]))
            slices, start = {}, 0
            for i, (A, _) in owners:
                slices[i], start = slice(start, start + A.shape[0]), start + A.shape[0]
            A_all = torch.cat([A for _, (A, _) in owners]).to(param.device, param.dtype)
            B_all = torch.cat([B for _, (_, B) in owners], dim=1).to(param.device, param.dtype)
            layout = layouts.setdefault(cols, len(layouts))
            hook = self._hook(A_all, B_all, slices, layout, torch.tensor(cols, device=param.device))
            model.get_submodule(module).register_forward_hook(hook)

    def index(self, name: str | None) -> int:
        """0 for the base (``None``), else 1 + the adapter's position."""
        return 0 if name is None else 1 + self.names.index(name)

    def assign(self, slot: int, adapter: int) -> None:
        """The choice now in ``slot`` runs on ``adapter`` (an ``index``)."""
        self._slot_adapter[slot] = adapter

    @contextmanager
    def slot_rows(self, slots: list[int]) -> Iterator[None]:
        """Forwards inside read row b's adapter from ``slots[b]`` (a prefill's rows are prompts)."""
        self._rows = slots
        try:
            yield
        finally:
            self._rows = None

    def _plan_forward(self, module: torch.nn.Module, args: tuple) -> None:
        n = args[0].shape[0]
        key = tuple(self._slot_adapter[s] for s in (self._rows if self._rows is not None else range(n)))
        if len(key) != n:
            raise RuntimeError(f"a forward over {n} rows inside slot_rows({self._rows})")
        if key not in self._plans:
            if len(self._plans) > 4096:  # slot mixes repeat from step to step; keep the cache bounded
                self._plans.clear()
            self._plans[key] = _Plan(list(key), self._device)
        self._plan = self._plans[key]

    def _hook(self, A_all: torch.Tensor, B_all: torch.Tensor, slices: dict[int, slice], layout: int,
              col_adapter: torch.Tensor):
        def add_updates(module: torch.nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
            x, plan = args[0], self._plan  # x (B, T, I); out (B, T, O)
            if x.shape[0] != plan.n:
                raise RuntimeError(f"adapted {type(module).__name__} saw {x.shape[0]} rows, its forward's embed {plan.n}")
            if plan.single is not None:  # one adapter (or the base) for every row: its own columns only
                cols = slices.get(plan.single)
                if cols is None:
                    return out
                h_BTR, B = x @ A_all[cols].T, B_all[:, cols]
            else:
                h_BTR, B = (x @ A_all.T) * plan.mask(layout, col_adapter, x.dtype), B_all
            out.view(-1, out.shape[-1]).addmm_(h_BTR.view(-1, h_BTR.shape[-1]), B.T)
            return out

        return add_updates
