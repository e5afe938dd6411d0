"""``hwmodel trace record``: record a Hugging Face MoE model's routing as dataset JSON.

Needs the extra ``pip install 'hwmodel[record]'``; torch and transformers are imported only
when the command runs (:mod:`hwmodel.traces.record`).
"""

from __future__ import annotations

from .outputs import check_output_dir, output_dir
from .progress import elapsed

__all__ = ["add_parser", "run", "token_ids"]

#: Decode steps per request by default: the dataset's 128 iterations are the prefill and 127.
DEFAULT_NEW_TOKENS = 127


def add_parser(commands, add_output, formatter) -> None:
    """Add ``record`` to the ``trace`` actions (``add_output`` is trace's output option)."""
    record = commands.add_parser(
        "record", formatter_class=formatter,
        help="record a Hugging Face MoE model's expert selections (needs hwmodel[record])",
        description="Run prompts through a transformers MoE model with greedy decoding and "
                    "write the experts its routers selected, one request file per prompt "
                    "(docs/traces.md#record-your-own-traces). "
                    "Needs: pip install 'hwmodel[record]'.")
    record.add_argument("model", help="Hugging Face model id or local model folder")
    add_output(record, "folder; prompt i goes to <output>/<i>.json")
    prompts = record.add_mutually_exclusive_group(required=True)
    prompts.add_argument("--prompts", metavar="FILE",
                         help="one prompt per line, or .jsonl of strings or objects with "
                              "'prompt', 'text' or 'input_ids'")
    prompts.add_argument("--dataset", metavar="NAME",
                         help="Hugging Face dataset (needs the datasets package)")
    record.add_argument("--dataset-config", default=None, help="the dataset's configuration")
    record.add_argument("--split", default="test", help="the dataset's split")
    record.add_argument("--column", default="question", help="the dataset's prompt column")
    record.add_argument("--limit", type=int, default=None,
                        help="record only the first N prompts (None: all)")
    record.add_argument("--max-new-tokens", type=int, default=DEFAULT_NEW_TOKENS,
                        help="decode steps per request (fewer if the model ends its answer)")
    record.add_argument("--ignore-eos", action="store_true",
                        help="decode --max-new-tokens steps even past an end token")
    record.add_argument("--chat", action="store_true",
                        help="wrap text prompts in the tokenizer's chat template")
    record.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where the model runs")
    record.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"],
                        default="auto", help="weight type (auto: the checkpoint's)")
    record.add_argument("--router", metavar="GLOB", default=None,
                        help="module paths of the routers, e.g. 'model.layers.*.mlp.gate' "
                             "(None: modules whose class name ends in Router)")
    record.add_argument("--select", metavar="MODULE:FUNCTION", default=None,
                        help="f(module, args, output) -> expert ids of a router (None: the "
                             "router output's one integer tensor)")
    record.add_argument("--trust-remote-code", action="store_true",
                        help="allow the model folder's own Python code (transformers option)")
    record.add_argument("--quiet", action="store_true", help="no progress on stderr")
    record.set_defaults(func=run)


def _check_numbers(args) -> None:
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit {args.limit}: expected a number >= 1")
    if args.max_new_tokens < 0:
        raise ValueError(f"--max-new-tokens {args.max_new_tokens}: expected a number >= 0")


def _prompts(args):
    from ..traces.record import dataset_prompts, read_prompts
    if args.prompts:
        return read_prompts(args.prompts, args.limit)
    return dataset_prompts(args.dataset, args.split, args.column, args.dataset_config,
                           args.limit)


def token_ids(prompt, tokenizer, chat: bool) -> list[int]:
    """The prompt's token ids (given, or from the tokenizer).

    Raises
    ------
    ValueError
        A text prompt and no tokenizer, or a prompt of no tokens (names where it came from).
    """
    if prompt.token_ids is not None:
        return list(prompt.token_ids)
    if tokenizer is None:
        raise ValueError(f"{prompt.where}: a text prompt, but the model folder has no "
                         "tokenizer; expected token ids ({\"input_ids\": [...]} in .jsonl)")
    if chat:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt.text}],
                                            add_generation_prompt=True, tokenize=True)
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids   # a dict in transformers 5
    else:
        ids = tokenizer(prompt.text)["input_ids"]
    if not ids:
        raise ValueError(f"{prompt.where}: the prompt has no tokens; expected at least one")
    return list(ids)


def _stop_ids(model) -> tuple[int, ...]:
    config = getattr(model, "generation_config", None) or model.config
    eos = getattr(config, "eos_token_id", None)
    if eos is None:
        return ()
    return tuple(eos) if isinstance(eos, list | tuple) else (eos,)


def run(args) -> int:
    from ..traces.record import (
        Recorder,
        check_batch,
        import_backend,
        load_model,
        load_select,
        write_request,
    )
    from .trace import _output
    out = check_output_dir(_output(args), "output", args.force)
    _check_numbers(args)
    import_backend()
    select = load_select(args.select) if args.select else None
    prompts = _prompts(args)
    with elapsed(f"loading {args.model}", enabled=not args.quiet):
        model, tokenizer = load_model(args.model, args.device, args.dtype,
                                      args.trust_remote_code)
    ids = [token_ids(prompt, tokenizer, args.chat) for prompt in prompts]
    stop = () if args.ignore_eos else _stop_ids(model)
    with Recorder(model, router=args.router, select=select) as recorder, output_dir(out) as tmp:
        steps = 0
        for index, (prompt, prompt_ids) in enumerate(_bar(prompts, ids, args.quiet)):
            request = recorder.record(prompt_ids, args.max_new_tokens, stop, prompt.where)
            write_request(request, tmp / f"{index}.json", recorder.num_layers,
                          recorder.moe_layers)
            steps += len(request.decode)
        store = check_batch(tmp, len(prompts), recorder.num_experts)
    print(f"{out}: {len(prompts)} requests, {recorder.num_layers} layers "
          f"({len(recorder.moe_layers)} MoE), top-{store.top_k}, {steps} decode steps")
    return 0


def _bar(prompts, ids, quiet: bool):
    pairs = list(zip(prompts, ids, strict=True))
    if quiet:
        return pairs
    import sys

    from tqdm import tqdm
    return tqdm(pairs, desc="recording", unit="req", file=sys.stderr)

