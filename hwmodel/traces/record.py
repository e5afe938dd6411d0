"""Record expert-selection traces from a Hugging Face ``transformers`` MoE model.

Needs the optional extra ``pip install 'hwmodel[record]'`` (torch and transformers). Nothing is
imported from them until a recording starts, so ``import hwmodel`` and every other command stay
free of both.

A :class:`Recorder` puts a forward hook on each MoE layer's router and keeps the expert ids the
router itself returned, in its own order; nothing is recomputed, so any routing rule
(softmax or sigmoid scores, DeepSeek's group-limited top-k with its score-correction bias,
gpt-oss's top-k on logits) is recorded as the model ran it. A request is one greedy
generation: iteration 0 is the prompt's forward pass (one row per prompt token per MoE layer),
then one decode step per generated token that is fed back to the model. Requests are written
in the dataset's format (SPEC section 5) and read back by :mod:`hwmodel.traces.reader` before
the output folder appears.

Routers are found, by default, as the modules whose class name ends in ``Router`` (every
``*TopKRouter`` of transformers 5, which returns ``(logits, weights, ids)``); ``router`` names
them by a glob on the module path instead (``model.layers.*.mlp.gate``). The selected ids are
the one integer tensor of the router's output; ``select`` names a function
``f(module, args, output) -> ids`` for routers that return something else.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import inspect
import re
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np
import orjson

from .store import id_dtype

__all__ = [
    "INSTALL",
    "Prompt",
    "RecordedRequest",
    "Recorder",
    "check_batch",
    "import_backend",
    "load_model",
    "read_prompts",
    "request_json",
    "write_request",
]

#: The command that installs what recording needs.
INSTALL = "pip install 'hwmodel[record]'"

#: Class names of router modules found without ``router``: transformers 5's ``*TopKRouter``,
#: ``*TopkRouter`` and other ``*Router`` classes.
DEFAULT_ROUTER_CLASS = re.compile(r"router$", re.IGNORECASE)

#: Config attributes holding the number of routed experts, by architecture.
_EXPERT_COUNT_KEYS = ("num_local_experts", "n_routed_experts", "num_experts", "moe_num_experts")


def import_backend():
    """``(torch, transformers)``, or a one-line error with the install command.

    Raises
    ------
    ValueError
        torch or transformers is not installed.
    """
    try:
        import torch
        import transformers
    except ImportError as error:
        raise ValueError(f"hwmodel trace record needs torch and transformers ({error.name} is "
                         f"not installed); install them with: {INSTALL}") from None
    return torch, transformers


# ---------------------------------------------------------------------------------- prompts
@attrs.frozen
class Prompt:
    """One prompt: its text, or its token ids, and where it came from (for messages)."""
    where: str
    text: str | None = None
    token_ids: tuple[int, ...] | None = None


def read_prompts(path, limit: int | None = None) -> list[Prompt]:
    """The prompts of a file.

    A ``.jsonl`` file holds one JSON value per line: a string, or an object with ``"prompt"``
    or ``"text"`` (a string) or ``"input_ids"`` (a list of token ids). Any other file holds one
    prompt per line; blank lines are skipped.

    Raises
    ------
    ValueError
        A line that is none of these (names the file and line), or a file with no prompt.
    """
    path = Path(path)
    prompts = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if limit is not None and len(prompts) >= limit:
                break
            where = f"{path}:{number}"
            if not line.strip():
                continue
            if path.suffix == ".jsonl":
                prompts.append(_json_prompt(line, where))
            else:
                prompts.append(Prompt(where=where, text=line.rstrip("\r\n")))
    if not prompts:
        raise ValueError(f"{path}: holds no prompts; expected one prompt per line")
    return prompts


def _json_prompt(line: str, where: str) -> Prompt:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise ValueError(f"{where}: invalid JSON ({error}); expected a string or an object "
                         "with 'prompt', 'text' or 'input_ids'") from None
    if isinstance(value, str):
        return Prompt(where=where, text=value)
    if isinstance(value, dict):
        if isinstance(value.get("prompt", value.get("text")), str):
            return Prompt(where=where, text=value.get("prompt", value.get("text")))
        ids = value.get("input_ids")
        if (isinstance(ids, list) and ids
                and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids)):
            return Prompt(where=where, token_ids=tuple(ids))
    raise ValueError(f"{where}: {line.strip()[:60]!r}; expected a string or an object with "
                     "'prompt' or 'text' (a string) or 'input_ids' (a non-empty list of token "
                     "ids >= 0)")


def dataset_prompts(name: str, split: str, column: str, config: str | None = None,
                    limit: int | None = None) -> list[Prompt]:
    """The ``column`` of a Hugging Face ``datasets`` split as prompts (needs ``datasets``).

    Raises
    ------
    ValueError
        ``datasets`` is not installed, or the split has no such column (names the dataset).
    """
    try:
        import datasets
    except ImportError:
        raise ValueError("--dataset needs the datasets package; install it with: "
                         "pip install datasets (or give prompts with --prompts FILE)") from None
    data = datasets.load_dataset(name, config, split=split)
    if column not in data.column_names:
        raise ValueError(f"dataset {name} split {split}: no column {column!r}; expected one of "
                         f"{', '.join(data.column_names)} (--column)")
    count = len(data) if limit is None else min(limit, len(data))
    return [Prompt(where=f"{name}[{split}][{i}]", text=str(data[i][column]))
            for i in range(count)]


# ---------------------------------------------------------------------------------- model
def load_model(name: str, device: str = "cpu", dtype: str = "auto",
               trust_remote_code: bool = False):
    """``(model, tokenizer or None)`` of a Hugging Face model id or local folder, in eval mode.

    The tokenizer is None when the folder has none (prompts must then be token ids).

    Raises
    ------
    ValueError
        The extra is missing, ``device`` is ``cuda`` on a machine without it, or an unknown
        ``dtype``.
    """
    torch, transformers = import_backend()
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA device; expected a GPU machine "
                         "(or --device cpu)")
    dtypes = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16,
              "float16": torch.float16}
    if dtype not in dtypes:
        raise ValueError(f"--dtype {dtype!r}: expected one of {', '.join(dtypes)}")
    # Loading shows the caller's progress (hwmodel.cli.progress), not transformers' own bars;
    # its warnings (weights not found in the checkpoint...) still show.
    transformers.utils.logging.disable_progress_bar()
    model = transformers.AutoModelForCausalLM.from_pretrained(
        name, dtype=dtypes[dtype], trust_remote_code=trust_remote_code)
    model.to(device).eval()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError):
        tokenizer = None
    return model, tokenizer


def load_select(spec: str) -> Callable:
    """The function named ``MODULE:FUNCTION`` (an importable module or a ``.py`` file).

    Raises
    ------
    ValueError
        Not of that form, or the module or function does not exist.
    """
    module_name, _, function = spec.rpartition(":")
    if not module_name or not function:
        raise ValueError(f"--select {spec!r}: expected MODULE:FUNCTION or FILE.py:FUNCTION")
    try:
        if module_name.endswith(".py"):
            found = importlib.util.spec_from_file_location("hwmodel_record_select", module_name)
            if found is None:
                raise ImportError(module_name)
            module = importlib.util.module_from_spec(found)
            found.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except (ImportError, FileNotFoundError) as error:
        raise ValueError(f"--select {spec!r}: cannot import {module_name} ({error}); expected "
                         "an importable module or a .py file") from None
    chosen = getattr(module, function, None)
    if chosen is None or not callable(chosen):
        raise ValueError(f"--select {spec!r}: {module_name} has no function {function!r}")
    return chosen


def _text_config(model):
    """The config of the model's language part (the whole config for a text-only model)."""
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def decoder_layers(model):
    """``(path, layers)``: the model's list of decoder layers (``num_hidden_layers`` long).

    Raises
    ------
    ValueError
        No module list of that length.
    """
    torch, _ = import_backend()
    config = _text_config(model)
    count = config.num_hidden_layers
    lists = [(name, module) for name, module in model.named_modules()
             if isinstance(module, torch.nn.ModuleList) and len(module) == count]
    if not lists:
        raise ValueError(f"{type(model).__name__}: no list of {count} decoder layers "
                         "(num_hidden_layers); expected a transformers decoder model")
    named = [item for item in lists if item[0].split(".")[-1] in ("layers", "h", "blocks")]
    return (named or lists)[0]


def find_routers(model, router: str | None = None) -> dict[int, tuple[str, object]]:
    """``{layer index: (module path, router module)}`` of the model's MoE layers.

    Parameters
    ----------
    router : str, optional
        A glob on module paths (``model.layers.*.mlp.gate``). Default: modules whose class name
        ends in ``Router``.

    Raises
    ------
    ValueError
        No router found, or two in one layer (names them).
    """
    prefix, layers = decoder_layers(model)
    found: dict[int, tuple[str, object]] = {}
    for index, layer in enumerate(layers):
        for name, module in layer.named_modules():
            path = f"{prefix}.{index}.{name}" if name else f"{prefix}.{index}"
            matches = (fnmatch.fnmatchcase(path, router) if router
                       else DEFAULT_ROUTER_CLASS.search(type(module).__name__))
            if not matches:
                continue
            if index in found:
                raise ValueError(f"layer {index} has two routers, {found[index][0]} and {path}; "
                                 "expected one (name it with --router GLOB)")
            found[index] = (path, module)
    if not found:
        what = (f"--router {router!r} matches no module" if router
                else "no module has a class name ending in Router")
        raise ValueError(f"{type(model).__name__}: {what} under {prefix}.N; expected the MoE "
                         "router of each layer (name it with --router GLOB, e.g. "
                         f"'{prefix}.*.mlp.gate')")
    return found


def router_ids(module, args, output):
    """The selected expert ids in a router's output: its one integer tensor.

    Raises
    ------
    ValueError
        The output holds no integer tensor, or several.
    """
    torch, _ = import_backend()
    items = output if isinstance(output, tuple | list) else (output,)
    ints = [item for item in items if isinstance(item, torch.Tensor) and item.dim() >= 1
            and not item.is_floating_point() and not item.is_complex()
            and item.dtype != torch.bool]
    if len(ints) != 1:
        raise ValueError(f"router {type(module).__name__} returned {len(ints)} integer tensors; "
                         "expected exactly one, the selected expert ids (name a selection "
                         "function with --select MODULE:FUNCTION)")
    return ints[0]


def expert_count(model) -> int | None:
    """The number of routed experts in the model's config, or None if it names none."""
    config = _text_config(model)
    for key in _EXPERT_COUNT_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


# ---------------------------------------------------------------------------------- record
@attrs.frozen
class RecordedRequest:
    """One recorded request: prompt rows ``(P, moe, k)``, decode rows ``(D, moe, k)``, the
    prompt's token ids and the ``D + 1`` generated ones (each decode step feeds one back; the
    last, or the end token, is not)."""
    where: str
    prefill: np.ndarray
    decode: np.ndarray
    prompt_ids: tuple[int, ...]
    generated_ids: tuple[int, ...]


class Recorder:
    """Hooks on a model's routers that record every forward pass's selected expert ids.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A causal language model in eval mode.
    router : str, optional
        Glob naming the router modules (see :func:`find_routers`).
    select : callable, optional
        ``f(module, args, output) -> ids`` (default :func:`router_ids`).
    """

    def __init__(self, model, router: str | None = None, select: Callable | None = None):
        self.model = model
        self.num_layers = len(decoder_layers(model)[1])
        self.routers = find_routers(model, router)
        self.moe_layers = tuple(sorted(self.routers))
        self.num_experts = expert_count(model)
        self._select = select or router_ids
        # transformers 5.25 renames the forward's ``past_key_values`` to ``cache``.
        parameters = inspect.signature(model.forward).parameters
        self._cache_argument = "cache" if "cache" in parameters else "past_key_values"
        self._calls: dict[int, list] = {}
        self._handles = [module.register_forward_hook(self._hook(layer))
                         for layer, (_, module) in self.routers.items()]

    def close(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _hook(self, layer: int):
        def hook(module, args, output):
            ids = self._select(module, args, output)
            self._calls.setdefault(layer, []).append(ids.detach().to("cpu"))
        return hook

    def _take(self, tokens: int, where: str, iteration: int) -> np.ndarray:
        """The ids of the last forward pass, ``(tokens, moe, k)``, checked."""
        calls, self._calls = self._calls, {}
        rows = []
        for layer in self.moe_layers:
            got = calls.get(layer, [])
            if len(got) != 1:
                path = self.routers[layer][0]
                raise ValueError(f"{where}: iteration {iteration}, layer {layer}: router {path} "
                                 f"ran {len(got)} times in one forward pass; expected once")
            ids = got[0].numpy()
            ids = ids.reshape(-1, ids.shape[-1])
            if ids.shape[0] != tokens:
                raise ValueError(f"{where}: iteration {iteration}, layer {layer}: router gave "
                                 f"{ids.shape[0]} rows; expected one per token ({tokens})")
            rows.append(ids)
        widths = {r.shape[1] for r in rows}
        if len(widths) != 1:
            raise ValueError(f"{where}: iteration {iteration}: routers select {sorted(widths)} "
                             "experts in different layers; expected one top-k")
        stacked = np.stack(rows, axis=1)
        self._check_range(stacked, where, iteration)
        return stacked

    def _check_range(self, ids: np.ndarray, where: str, iteration: int) -> None:
        limit = self.num_experts or 65536
        bad = np.argwhere((ids < 0) | (ids >= limit))
        if len(bad):
            token, moe, slot = bad[0]
            raise ValueError(f"{where}: iteration {iteration}, layer {self.moe_layers[moe]}, "
                             f"token {token}: expert id {ids[token, moe, slot]}; expected "
                             f"0..{limit - 1}")

    def record(self, prompt_ids, max_new_tokens: int, stop_ids=(), where: str = "<prompt>"
               ) -> RecordedRequest:
        """Greedy generation from ``prompt_ids``: the prompt's pass, then ``max_new_tokens``
        decode steps, fewer if a token of ``stop_ids`` is generated (it is not fed back).
        """
        torch, _ = import_backend()
        device = next(self.model.parameters()).device
        self._calls = {}
        with torch.inference_mode():
            tokens = torch.tensor([list(prompt_ids)], dtype=torch.long, device=device)
            output = self.model(input_ids=tokens, use_cache=True)
            prefill = self._take(len(prompt_ids), where, 0)
            generated = [int(output.logits[0, -1].argmax())]
            decode = []
            for step in range(1, max_new_tokens + 1):
                if generated[-1] in stop_ids:
                    break
                tokens = torch.tensor([[generated[-1]]], dtype=torch.long, device=device)
                output = self.model(input_ids=tokens, use_cache=True,
                                    **{self._cache_argument: _cache(output)})
                decode.append(self._take(1, where, step)[0])
                generated.append(int(output.logits[0, -1].argmax()))
        k = prefill.shape[2]
        decode_rows = np.stack(decode) if decode else np.zeros((0, len(self.moe_layers), k),
                                                               prefill.dtype)
        return RecordedRequest(where=where, prefill=prefill, decode=decode_rows,
                               prompt_ids=tuple(int(i) for i in prompt_ids),
                               generated_ids=tuple(generated))


def _cache(output):
    """The key-value cache of a forward pass's output (``cache`` from transformers 5.25 on,
    ``past_key_values`` before)."""
    return output["cache"] if "cache" in output else output["past_key_values"]


# ---------------------------------------------------------------------------------- output
def request_json(request: RecordedRequest, num_layers: int, moe_layers) -> bytes:
    """The request in the dataset's format: a list of iterations mapping ``"0".."L-1"`` to
    ``null`` (dense layer) or rows of expert ids."""
    column = {layer: index for index, layer in enumerate(moe_layers)}

    def iteration(rows):
        return {str(layer): (rows[:, column[layer]].tolist() if layer in column else None)
                for layer in range(num_layers)}

    iterations = [iteration(request.prefill)]
    iterations += [iteration(step[None]) for step in request.decode]
    return orjson.dumps(iterations)


def write_request(request: RecordedRequest, path, num_layers: int, moe_layers) -> None:
    """Write ``request`` to ``path`` after checking that the project's reader gives back the
    recorded ids.

    Raises
    ------
    ValueError
        The request does not read back as recorded (a recorder bug, never silent).
    """
    from .reader import parse_request
    raw = request_json(request, num_layers, moe_layers)
    _check_same(parse_request(raw, str(path)), request, num_layers, moe_layers, path)
    Path(path).write_bytes(raw)


def check_batch(folder, requests: int, num_experts: int | None = None):
    """Read the written folder as one batch with :func:`hwmodel.traces.reader.open_batch`.

    Raises
    ------
    TraceError, ValueError
        The folder is not a valid batch of ``requests`` requests.
    """
    from .reader import open_batch
    store = open_batch(folder)
    if len(store) != requests:
        raise ValueError(f"{folder}: reads as {len(store)} requests; expected {requests}")
    if num_experts is not None and store.num_experts > num_experts:
        raise ValueError(f"{folder}: ids up to {store.num_experts - 1}; expected fewer than "
                         f"{num_experts} experts")
    return store


def _check_same(parsed, request: RecordedRequest, num_layers, moe_layers, path) -> None:
    dtype = id_dtype(65536)
    same = (parsed.num_layers == num_layers and parsed.moe_layers == tuple(moe_layers)
            and np.array_equal(parsed.prefill.astype(dtype), request.prefill.astype(dtype))
            and np.array_equal(parsed.decode.astype(dtype), request.decode.astype(dtype)))
    if not same:
        raise ValueError(f"{path}: does not read back as recorded; expected the reader to "
                         "return the recorded ids (a recorder bug, please report it)")
