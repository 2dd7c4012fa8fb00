#!/usr/bin/env python3
"""Peers of `gpt2 bench e2e`, side by side, on the GPU machine (PyTorch; not part of the engine).

Runs, at the same shapes, prompt length, batch sizes and step counts as `gpt2 bench e2e`:
  - HF transformers GPT2LMHeadModel, eager, with its own KV cache (DynamicCache), fp16;
  - a plain PyTorch GPT-2 with a static KV cache, each decode step one CUDA graph replay, fp16.
Both are greedy (argmax on the device). TTFT is one sequence's prefill plus its first argmax;
each decode step is timed on the host's monotonic clock around the step and a synchronize, as
bench e2e times cuda_model_decode. Weights are random (seeded) at a GPT-2 shape
(--model-config), or a local HF folder (--model DIR); prompts are random tokens.

Writes DIR/bench_peers.json in bench e2e's schema (docs/bench/README.md): one entry of
"variants" per peer. With --ours PATH (a bench_e2e.json of the same shapes) our variants are
copied in too, and the charts draw ours against theirs: `gpt2 plot DIR/bench_peers.json -o DIR`
redraws them (this script does not draw; it needs no plotting library).

Never run in CI (no GPU there): tests/test_bench_peers.sh only compiles it.

usage: python3 tools/bench_peers.py --model-config 124M --batch 1,64 --context 128 --steps 32 \\
         -o out/ [--ours out/bench_e2e.json]
"""
import argparse
import datetime
import json
import math
import os
import socket
import statistics
import sys
import time

import torch

PRESETS = {  # n_layer, n_head, n_embd (n_positions 1024, vocab 50257)
    "124M": (12, 12, 768),
    "355M": (24, 16, 1024),
    "774M": (36, 20, 1280),
    "1558M": (48, 25, 1600),
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-config", choices=sorted(PRESETS), help="random weights at a shape")
    p.add_argument("--model", help="a local HF model folder instead")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch", default="1,8,64,256", help="batch sizes, comma-separated")
    p.add_argument("--context", type=int, default=128, help="prompt tokens")
    p.add_argument("--steps", type=int, default=64, help="timed decode steps per batch size")
    p.add_argument("--warmup", type=int, default=4, help="untimed decode steps first")
    p.add_argument("--ttft-runs", type=int, default=5)
    p.add_argument("--peers", default="hf,static",
                   help="which: hf (transformers eager), static (static KV + CUDA graph)")
    p.add_argument("--ours", help="a bench_e2e.json to draw beside the peers")
    p.add_argument("-o", dest="out_dir", required=True)
    a = p.parse_args()
    if bool(a.model_config) == bool(a.model):
        p.error("give --model-config NAME or --model DIR")
    try:
        a.batches = [int(x) for x in a.batch.split(",")]
    except ValueError:
        p.error(f"--batch '{a.batch}' is not a list of integers")
    if min(a.batches) < 1 or len(set(a.batches)) != len(a.batches):
        p.error(f"--batch '{a.batch}': distinct batch sizes >= 1")
    a.peers = a.peers.split(",")
    if not set(a.peers) <= {"hf", "static"}:
        p.error(f"--peers '{','.join(a.peers)}': expected hf, static or both")
    return a


def load_model(a):
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(a.seed)
    if a.model:
        model = GPT2LMHeadModel.from_pretrained(a.model, torch_dtype=torch.float16)
    else:
        n_layer, n_head, n_embd = PRESETS[a.model_config]
        config = GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd, n_positions=1024,
                            vocab_size=50257)
        model = GPT2LMHeadModel(config).to(torch.float16)
    return model.cuda().eval()


def prompt(a, vocab, batch):
    g = torch.Generator().manual_seed(a.seed)
    return torch.randint(0, vocab, (batch, a.context), generator=g).cuda()


def timed(fn):
    """Seconds on the host clock around fn() and a synchronize."""
    start = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start, out


def stats(samples, unit):
    s = sorted(samples)
    n = len(s)
    p90 = s[max(1, math.ceil(0.9 * n)) - 1]
    return {f"median_{unit}": statistics.median(s), f"p90_{unit}": p90, f"min_{unit}": s[0],
            f"max_{unit}": s[-1], f"mean_{unit}": sum(s) / n}


# ---- HF transformers, eager, with its cache ----

class HFPeer:
    name = "HF transformers GPT2LMHeadModel (eager, its KV cache)"
    graph = False

    def __init__(self, model):
        self.model = model

    @torch.no_grad()
    def prefill(self, ids):
        out = self.model(input_ids=ids, use_cache=True)
        self.past = out.past_key_values
        return out.logits[:, -1].argmax(-1)

    @torch.no_grad()
    def step(self, ids):
        out = self.model(input_ids=ids[:, None], past_key_values=self.past, use_cache=True)
        self.past = out.past_key_values
        return out.logits[:, -1].argmax(-1)


# ---- plain PyTorch, static KV cache, one CUDA graph per decode step ----

class StaticPeer:
    name = "PyTorch static KV cache, one CUDA graph per step"
    graph = True

    def __init__(self, model):
        c = model.config
        self.L, self.H, self.C = c.n_layer, c.n_head, c.n_embd
        self.P, self.eps = c.n_positions, c.layer_norm_epsilon
        self.w = model.state_dict()
        self.graphs = {}

    def layer(self, i, key):
        return self.w[f"transformer.h.{i}.{key}"]

    def ln(self, x, prefix):
        return torch.nn.functional.layer_norm(x, (self.C,), self.w[f"{prefix}.weight"],
                                              self.w[f"{prefix}.bias"], self.eps)

    def forward(self, ids, pos):
        """Next ids [B] after ids [B, T] at positions pos [T], their K and V into the cache."""
        B, T = ids.shape
        H, D = self.H, self.C // self.H
        x = self.w["transformer.wte.weight"][ids] + self.w["transformer.wpe.weight"][pos]
        rows = torch.arange(self.P, device=ids.device)
        mask = rows[None, :] > pos[:, None]  # [T, P]: future and empty rows
        for i in range(self.L):
            h = self.ln(x, f"transformer.h.{i}.ln_1")
            qkv = h @ self.layer(i, "attn.c_attn.weight") + self.layer(i, "attn.c_attn.bias")
            q, k, v = qkv.view(B, T, 3, H, D).permute(2, 0, 3, 1, 4)  # [B, H, T, D] each
            self.k[i].index_copy_(2, pos, k)
            self.v[i].index_copy_(2, pos, v)
            scores = (q @ self.k[i].transpose(-1, -2)).float() / math.sqrt(D)  # [B, H, T, P]
            probs = scores.masked_fill(mask, float("-inf")).softmax(-1).to(q.dtype)
            a = (probs @ self.v[i]).transpose(1, 2).reshape(B, T, self.C)
            x = x + a @ self.layer(i, "attn.c_proj.weight") + self.layer(i, "attn.c_proj.bias")
            h = self.ln(x, f"transformer.h.{i}.ln_2")
            h = torch.nn.functional.gelu(h @ self.layer(i, "mlp.c_fc.weight")
                                         + self.layer(i, "mlp.c_fc.bias"), approximate="tanh")
            x = x + h @ self.layer(i, "mlp.c_proj.weight") + self.layer(i, "mlp.c_proj.bias")
        x = self.ln(x[:, -1], "transformer.ln_f")
        return (x @ self.w["transformer.wte.weight"].t()).argmax(-1)

    @torch.no_grad()
    def prefill(self, ids):
        B, T = ids.shape
        D = self.C // self.H
        shape = (B, self.H, self.P, D)
        if not hasattr(self, "k") or self.k[0].shape != shape:
            self.k = [torch.zeros(shape, dtype=torch.float16, device="cuda") for _ in range(self.L)]
            self.v = [torch.zeros(shape, dtype=torch.float16, device="cuda") for _ in range(self.L)]
            self.graphs = {}  # captured over the old cache
        self.pos = torch.tensor([T], device="cuda")
        return self.forward(ids, torch.arange(T, device="cuda"))

    @torch.no_grad()
    def step(self, ids):
        B = ids.shape[0]
        if B not in self.graphs:
            static_ids, static_pos = ids.clone(), self.pos.clone()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):  # warm-up outside the capture, as PyTorch asks
                self.forward(static_ids[:, None], static_pos)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = self.forward(static_ids[:, None], static_pos)
            self.graphs[B] = (graph, static_ids, static_pos, out)
        graph, static_ids, static_pos, out = self.graphs[B]
        static_ids.copy_(ids)
        static_pos.copy_(self.pos)
        graph.replay()
        self.pos += 1
        return out.clone()


# ---- the measurements, as bench e2e makes them ----

def measure(a, peer, vocab):
    ids = prompt(a, vocab, 1)
    ttft = []
    for run in range(-1, a.ttft_runs):
        seconds, _ = timed(lambda: peer.prefill(ids))
        if run >= 0:
            ttft.append(1e3 * seconds)
    decode = []
    for b in a.batches:
        seconds, next_ids = timed(lambda: peer.prefill(prompt(a, vocab, b)))
        steps = []
        for i in range(a.warmup + a.steps):
            seconds, next_ids = timed(lambda: peer.step(next_ids))
            if i >= a.warmup:
                steps.append(1e6 * seconds)
        s = stats(steps, "step_us")
        decode.append({"batch": b, **s, "us_per_token": s["median_step_us"] / b,
                       "tok_per_s": b / (1e-6 * s["median_step_us"]), "prefill_ms": None,
                       "nonfinite_rows": None, "step_us": steps})
        print(f"{peer.name}: batch {b}: {s['median_step_us']:.1f} us/step, "
              f"{decode[-1]['tok_per_s']:.0f} tok/s", file=sys.stderr)
    tpot = next((d["median_step_us"] for d in decode if d["batch"] == 1), None)
    return {"name": peer.name, "engine": peer.name, "kv_format": "fp16", "fused": None,
            "decode_graph": peer.graph,
            "ttft": {"prompt_tokens": a.context, **stats(ttft, "ms"), "samples_ms": ttft},
            "tpot": {"median_us": tpot, "tok_per_s": 1e6 / tpot if tpot else None,
                     "source": "decode steps at batch 1" if tpot else "none (no batch 1)"},
            "decode": decode, "phases": [], "cache": None}


def run_record():
    props = torch.cuda.get_device_properties(0)
    return {"command_line": "python3 " + " ".join(sys.argv),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "host": socket.gethostname(), "engine_revision": None,
            "gpu": {"name": props.name, "compute_capability": f"{props.major}.{props.minor}",
                    "multiprocessors": props.multi_processor_count,
                    "memory_gib": props.total_memory / 2**30,
                    "runtime_version": torch.version.cuda,
                    "torch_version": torch.__version__}}


def charts(result, subtitle):
    variants = result["variants"]
    batches = result["settings"]["batches"]
    def line(file, title, y_label, key, scale):
        return {"file": file, "kind": "line", "title": title, "subtitle": subtitle,
                "x_label": "batch size (sequences decoded together, log scale)",
                "y_label": y_label, "x_log": True, "y_log": True, "x_ticks": batches,
                "series": [{"name": v["name"], "x": [d["batch"] for d in v["decode"]],
                            "y": [d[key] * scale for d in v["decode"]]} for v in variants]}
    return [
        line("bench_peers_throughput.png", "decode throughput against batch size, beside peers",
             "tokens/s (all sequences, log scale)", "tok_per_s", 1),
        line("bench_peers_step_latency.png", "decode step time against batch size, beside peers",
             "median step time, ms (log scale)", "median_step_us", 1e-3),
        {"file": "bench_peers_ttft_tpot.png", "kind": "bar",
         "title": "time to first token and time per output token (batch 1), beside peers",
         "subtitle": subtitle, "y_label": "ms (log scale)", "y_log": True, "value_labels": True,
         "categories": [v["name"] for v in variants],
         "series": [{"name": f"TTFT ({result['settings']['context']}-token prompt)",
                     "y": [v["ttft"]["median_ms"] for v in variants]},
                    {"name": "TPOT (median decode step, batch 1)",
                     "y": [v["tpot"]["median_us"] * 1e-3 if v["tpot"]["median_us"] else None
                           for v in variants]}]},
    ]


def main():
    a = parse_args()
    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = True
    model = load_model(a)
    c = model.config
    if a.context + a.warmup + a.steps > c.n_positions:
        sys.exit(f"bench_peers: --context + --warmup + --steps exceed n_positions {c.n_positions}")
    peers = {"hf": HFPeer, "static": StaticPeer}
    variants = [measure(a, peers[p](model), c.vocab_size) for p in a.peers]
    ours = json.load(open(a.ours)) if a.ours else None
    if ours:
        variants = ours["variants"] + variants
    result = {
        "bench": "e2e", "schema": 2, "emulated": False,
        "description": "peers of gpt2 bench e2e (tools/bench_peers.py): the same prompt, batch "
                       "sizes and steps, each step timed on the host clock around the step and "
                       "a synchronize", "run": run_record(),
        "model": {"config": a.model_config, "dir": a.model, "seed": a.seed if a.model_config
                  else None, "n_layer": c.n_layer, "n_head": c.n_head, "n_embd": c.n_embd,
                  "n_positions": c.n_positions, "vocab_size": c.vocab_size},
        "settings": {"context": a.context, "steps": a.steps, "warmup": a.warmup,
                     "ttft_runs": a.ttft_runs, "phase_steps": 0, "cache_runs": 0,
                     "cache_tokens": [], "batches": a.batches, "prompt_seed": a.seed,
                     "decode_graph": None, "compare_kv": False,
                     "sampler": "greedy, argmax on the device",
                     "clock": "host perf_counter around each step and torch.cuda.synchronize"},
        "ours": a.ours, "variants": variants}
    shape = a.model_config or a.model
    subtitle = (f"{result['run']['gpu']['name']}; {shape}, fp16, random weights seed {a.seed}; "
                f"context {a.context}, {a.steps} timed steps after {a.warmup}; greedy")
    result["charts"] = charts(result, subtitle)
    os.makedirs(a.out_dir, exist_ok=True)
    path = os.path.join(a.out_dir, "bench_peers.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(path)


if __name__ == "__main__":
    main()
