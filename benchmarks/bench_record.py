"""Speed of ``hwmodel trace record`` (issue 19) on a mid-sized MoE with random weights.

Builds a Qwen3-MoE-shaped model (702 M parameters: 12 layers, hidden 1024, 64 experts, top-8,
float32) in a temporary folder, then times the command on prompts of token ids: model loading
and recording, and the seconds per decode step. Needs ``pip install 'hwmodel[record]'`` and
about 6 GB of memory.

Run: ``python benchmarks/bench_record.py [--requests 1] [--prompt 64] [--new-tokens 32]`` from
the repository root.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAKE = """
import sys, torch, transformers
config = transformers.Qwen3MoeConfig(
    vocab_size=32000, hidden_size=1024, intermediate_size=2048, moe_intermediate_size=256,
    num_hidden_layers=12, num_attention_heads=16, num_key_value_heads=4, head_dim=64,
    num_experts=64, num_experts_per_tok=8)
torch.manual_seed(0)
transformers.AutoModelForCausalLM.from_config(config).save_pretrained(sys.argv[1])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1)
    parser.add_argument("--prompt", type=int, default=64, help="prompt tokens per request")
    parser.add_argument("--new-tokens", type=int, default=32, help="decode steps per request")
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    with tempfile.TemporaryDirectory() as tmp:
        model, prompts = Path(tmp) / "model", Path(tmp) / "prompts.jsonl"
        subprocess.run([sys.executable, "-c", MAKE, str(model)], check=True, env=env,
                       capture_output=True)
        prompts.write_text("".join(
            json.dumps({"input_ids": [(r * 97 + i * 31) % 32000 for i in range(args.prompt)]})
            + "\n" for r in range(args.requests)))
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "hwmodel", "trace", "record", str(model), str(Path(tmp) / "out"),
             "--prompts", str(prompts), "--max-new-tokens", str(args.new_tokens), "--ignore-eos"],
            check=True, env=env, capture_output=True, text=True)
        total = time.perf_counter() - start
    bars = result.stderr.replace("\r", "\n").splitlines()
    recording = [line for line in bars if line.startswith("recording: 100%")][-1]
    print(result.stdout.strip())
    print(f"command: {total:.1f} s in all; {recording.split('[')[1].split('<')[0]} recording "
          f"({args.requests} x {args.prompt} prompt tokens + {args.new_tokens} decode steps); "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
