#!/usr/bin/env python3
"""Trains the small default GPT-2 model that `gpt2 generate` uses when no -m is given.

Not part of the engine: a plain PyTorch script (no transformers, no tokenizers package) that runs
where PyTorch runs: Debian's python3-torch on a CPU (with libopenblas0-pthread; 10x slower with
the reference BLAS), or any recent torch on a GPU machine. It trains a GPT-2-architecture model
(tied embeddings, dropout 0, head size 64, gelu_new) with the GPT-2 vocabulary on the
public-domain corpus in ../shared/corpus (tdavid.txt and web.txt). The last 5% of each file (cut
at a line start) is held out and never trained on, and written to weights/default/heldout.txt.

Token ids come from the engine's own tokenizer (`gpt2 tokenize`, identical to tiktoken's gpt2),
so build the engine first. The training parts of the files are joined by <|endoftext|> (50256).

The output is exactly what HF transformers' save_pretrained writes for GPT2LMHeadModel:
config.json plus model.safetensors in float16 with HF's tensor names (Conv1D weights stored
[in, out], lm_head tied and not stored). Training state is saved every few minutes to --state,
and a rerun with the same arguments resumes from it, so a run can span sessions.

At the end the held-out perplexity is computed on the saved float16 weights in float32 with the
sliding-window arithmetic of `gpt2 ppl` (ctx = n_positions, stride = ctx / 2), `gpt2 ppl` is run
on the same file, and the two must agree within 0.1%. The card (README.md) gets both, the loss
curve (drawn by `gpt2 plot`) and three greedy samples from `gpt2 generate`.

  /usr/bin/python3 tools/train_default_model.py --minutes 120            # CPU, resumable
  python3 tools/train_default_model.py --device cuda --minutes 5         # GPU machine
"""

import argparse
import json
import math
import os
import platform
import shlex
import struct
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EOT = 50256
VOCAB = 50257
MAX_BYTES = 16_000_000  # the F16 safetensors file may not pass 16 MB
HEAD_SIZE = 64
HELDOUT_FRACTION = 0.05
CORPUS_FILES = ("tdavid.txt", "web.txt")
SAMPLE_PROMPTS = ("The LORD is my shepherd;", "In the beginning", "Blessed is the man who")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--n-layer", type=int, default=7)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--ctx", type=int, default=1024, help="n_positions and training length")
    p.add_argument("--minutes", type=float, required=True,
                   help="training time budget, summed over resumed runs; the LR schedule "
                        "follows it")
    p.add_argument("--batch", type=int, default=0,
                   help="sequences per step (default: 32 on cuda, 4 on cpu)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--min-lr-ratio", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=50, help="warmup steps")
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--eval-every", type=int, default=50, help="held-out loss every N steps")
    p.add_argument("--eval-windows", type=int, default=16,
                   help="held-out windows of ctx tokens for the logged held-out loss")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--corpus-dir", default=os.path.join(os.path.dirname(REPO), "shared", "corpus"))
    p.add_argument("--gpt2", default=os.path.join(REPO, "build", "gpt2"),
                   help="the engine's binary: tokenizer, perplexity check, samples, plot")
    p.add_argument("--out", default=os.path.join(REPO, "weights", "default"))
    p.add_argument("--state", default=os.path.join(REPO, "build", "train_state.pt"),
                   help="resumable training state (model, optimizer, RNG, log)")
    p.add_argument("--save-every", type=float, default=5.0, help="minutes between state saves")
    p.add_argument("--hardware", default="", help="hardware description for the card")
    p.add_argument("--check-bytes", type=int, default=0,
                   help="score only the first N bytes of the held-out text (cut at a line end) "
                        "in the final check, for machines where the CPU reference takes hours "
                        "over all of it (0: all)")
    a = p.parse_args()
    a.n_head = a.n_embd // HEAD_SIZE
    if a.n_head < 1 or a.n_embd != a.n_head * HEAD_SIZE:
        p.error(f"head size must be 64: n_embd {a.n_embd} is not a multiple of 64")
    if a.batch == 0:
        a.batch = 32 if a.device.startswith("cuda") else 4
    return a


# ---------------------------------------------------------------------------------------------
# the model, with HF GPT2LMHeadModel's parameter names and layouts

class Conv1D(torch.nn.Module):
    """HF's Conv1D: y = x @ weight + bias with weight stored [in, out]."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(n_in, n_out).normal_(0.0, 0.02))
        self.bias = torch.nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(
            *x.shape[:-1], -1)


class Attention(torch.nn.Module):
    def __init__(self, c, n_head):
        super().__init__()
        self.n_head = n_head
        self.c_attn = Conv1D(c, 3 * c)
        self.c_proj = Conv1D(c, c)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, HEAD_SIZE).transpose(1, 2) for z in (q, k, v))
        sdpa = getattr(F, "scaled_dot_product_attention", None)
        if sdpa is not None:
            y = sdpa(q, k, v, is_causal=True)
        else:  # torch 1.13 (Debian bookworm) has no fused attention
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(HEAD_SIZE))
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            y = scores.masked_fill(mask, float("-inf")).softmax(dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = Conv1D(c, 4 * c)
        self.c_proj = Conv1D(4 * c, c)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))  # HF's gelu_new


class Block(torch.nn.Module):
    def __init__(self, c, n_head):
        super().__init__()
        self.ln_1 = torch.nn.LayerNorm(c, eps=1e-5)
        self.attn = Attention(c, n_head)
        self.ln_2 = torch.nn.LayerNorm(c, eps=1e-5)
        self.mlp = MLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(torch.nn.Module):
    def __init__(self, n_layer, c, n_head, ctx):
        super().__init__()
        self.wte = torch.nn.Embedding(VOCAB, c)
        self.wpe = torch.nn.Embedding(ctx, c)
        self.h = torch.nn.ModuleList(Block(c, n_head) for _ in range(n_layer))
        self.ln_f = torch.nn.LayerNorm(c, eps=1e-5)
        torch.nn.init.normal_(self.wte.weight, 0.0, 0.02)
        torch.nn.init.normal_(self.wpe.weight, 0.0, 0.01)
        for block in self.h:  # GPT-2's scaled init of the projections into the residual
            for proj in (block.attn.c_proj, block.mlp.c_proj):
                torch.nn.init.normal_(proj.weight, 0.0, 0.02 / math.sqrt(2 * n_layer))

    def hidden(self, ids):
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.wte(ids) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.ln_f(x)

    def logits(self, hidden):
        return hidden @ self.wte.weight.t()  # tied lm_head


class GPT2(torch.nn.Module):
    """Parameter names are HF's: transformer.wte.weight, transformer.h.0.attn.c_attn.weight..."""

    def __init__(self, n_layer, c, n_head, ctx):
        super().__init__()
        self.transformer = Transformer(n_layer, c, n_head, ctx)

    def forward(self, ids):
        return self.transformer.logits(self.transformer.hidden(ids))


def hf_config(args):
    """config.json as transformers 5 writes it for GPT2LMHeadModel."""
    return {
        "activation_function": "gelu_new", "add_cross_attention": False,
        "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.0, "bos_token_id": EOT,
        "dtype": "float16", "embd_pdrop": 0.0, "eos_token_id": EOT, "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_embd": args.n_embd,
        "n_head": args.n_head, "n_inner": None, "n_layer": args.n_layer,
        "n_positions": args.ctx, "pad_token_id": None, "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.0, "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True, "summary_activation": None, "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True, "summary_type": "cls_index", "summary_use_proj": True,
        "tie_word_embeddings": True, "transformers_version": "5.12.1", "use_cache": True,
        "vocab_size": VOCAB,
    }


def save_safetensors_f16(model, path):
    """The state dict in float16, names sorted, as safetensors with {"format": "pt"}."""
    tensors = {n: t.detach().to("cpu", torch.float16).contiguous()
               for n, t in model.state_dict().items()}
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name in sorted(tensors):
        nbytes = tensors[name].numel() * 2
        header[name] = {"dtype": "F16", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name in sorted(tensors):
            f.write(tensors[name].numpy().tobytes())


def f16_file_bytes(args):
    """Tensor bytes of the F16 checkpoint (tied lm_head is not stored) plus a header allowance."""
    e = args.n_embd
    per_layer = 12 * e * e + 13 * e
    return 2 * (VOCAB * e + args.ctx * e + args.n_layer * per_layer + 2 * e) + 16 * 1024


# ---------------------------------------------------------------------------------------------
# data

def tokenize(gpt2, data: bytes):
    """Token ids from the engine's tokenizer (tiktoken's gpt2), <|endoftext|> as plain text."""
    out = subprocess.run([gpt2, "tokenize"], input=data, capture_output=True, check=True)
    return np.array(out.stdout.split(), dtype=np.int64)


def split_heldout(data: bytes):
    """First 95% of the bytes for training, the rest held out, cut at the next line start."""
    cut = int(len(data) * (1 - HELDOUT_FRACTION))
    nl = data.find(b"\n", cut)
    cut = len(data) if nl < 0 else nl + 1
    return data[:cut], data[cut:]


def load_corpus(args):
    train_parts, heldout_bytes, files = [], b"", []
    for name in CORPUS_FILES:
        with open(os.path.join(args.corpus_dir, name), "rb") as f:
            data = f.read()
        train, held = split_heldout(data)
        ids = tokenize(args.gpt2, train)
        train_parts.append(ids)
        heldout_bytes += held
        files.append({"file": name, "bytes": len(data), "train_bytes": len(train),
                      "heldout_bytes": len(held), "train_tokens": int(len(ids))})
    train_ids = np.concatenate([np.concatenate([p, [EOT]]) for p in train_parts])
    return train_ids, heldout_bytes, tokenize(args.gpt2, heldout_bytes), files


# ---------------------------------------------------------------------------------------------
# evaluation

@torch.no_grad()
def heldout_loss(model, heldout, ctx, n_windows, device, autocast):
    """Mean next-token loss over n_windows evenly spaced held-out windows (for the curve)."""
    model.eval()
    n_windows = max(1, min(n_windows, (len(heldout) - 1) // ctx))
    starts = np.linspace(0, len(heldout) - ctx - 1, n_windows).astype(np.int64)
    total, count = 0.0, 0
    for i in range(0, n_windows, 4):
        x = torch.stack([torch.from_numpy(heldout[s:s + ctx + 1]) for s in starts[i:i + 4]])
        x = x.to(device)
        with autocast():
            logits = model(x[:, :-1])
        total += F.cross_entropy(logits.float().reshape(-1, VOCAB), x[:, 1:].reshape(-1),
                                 reduction="sum").item()
        count += x[:, 1:].numel()
    model.train()
    return total / count


@torch.no_grad()
def sliding_window_ppl(model, ids, ctx, stride, device, batch=4):
    """HF's perplexity guide, computed like the engine's `gpt2 ppl` (model/perplexity.c): each
    window's mean NLL over its new labels (never position 0) weighted by trg_len - 1. Windows of
    equal length run in batches, and the LM head runs only on the positions that are scored."""
    model.eval()
    n = len(ids)
    windows, prev_end, begin = [], 0, 0
    while begin < n:
        end = min(begin + ctx, n)
        if end - prev_end > 1:
            windows.append((begin, end, end - prev_end))
        prev_end = end
        if end == n:
            break
        begin += stride
    nll_sum, tokens, i = 0.0, 0, 0
    while i < len(windows):
        length = windows[i][1] - windows[i][0]
        first = max(length - windows[i][2], 1)
        group = [windows[i]]
        while (len(group) < batch and i + len(group) < len(windows)
               and windows[i + len(group)][1] - windows[i + len(group)][0] == length
               and max(length - windows[i + len(group)][2], 1) == first):
            group.append(windows[i + len(group)])
        x = torch.from_numpy(np.stack([ids[b:e] for b, e, _ in group])).to(device)
        hidden = model.transformer.hidden(x)[:, first - 1:length - 1]
        logp = torch.log_softmax(model.transformer.logits(hidden).double(), dim=-1)
        nll = -logp.gather(2, x[:, first:length, None])[..., 0].sum(dim=1)
        for (_, _, trg_len), w in zip(group, nll.tolist()):
            nll_sum += w / (length - first) * (trg_len - 1)
            tokens += trg_len - 1
        i += len(group)
    return {"ppl": math.exp(nll_sum / tokens), "nll": nll_sum / tokens, "tokens": tokens,
            "windows": len(windows), "ctx": ctx, "stride": stride}


def unigram_ppl(train_ids, heldout_ids):
    """Perplexity of the add-one unigram model of the training tokens on the held-out tokens."""
    counts = np.bincount(train_ids, minlength=VOCAB).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return math.exp(-logp[heldout_ids[1:]].mean())


# ---------------------------------------------------------------------------------------------
# the engine's side of the check, and the card

def engine(args, *cmd):
    return subprocess.run([args.gpt2, *cmd], capture_output=True, check=True,
                          text=True).stdout


def loss_result(log, shape, hardware):
    return {
        "kind": "train_default_model",
        "shape": shape,
        "log": log,
        "charts": [{
            "kind": "line",
            "file": "loss.png",
            "title": "Default model: training and held-out loss",
            "subtitle": f"{shape} | {hardware}",
            "x_label": "tokens seen",
            "y_label": "cross-entropy (nats / token)",
            "series": [
                {"name": "train (mean since last point)",
                 "x": [r["tokens"] for r in log], "y": [r["train_loss"] for r in log]},
                {"name": "held-out",
                 "x": [r["tokens"] for r in log], "y": [r["heldout_loss"] for r in log]},
            ],
        }],
    }


def write_card(path, info):
    sh, ppl = info["shape"], info["ppl"]
    lines = [
        "# weights/default: a small GPT-2-architecture model trained from scratch",
        "",
        "The model `gpt2 generate` (and every command taking `-m`) uses when no `-m DIR` and no",
        "`GPT2_MODEL` are given. It is a standard HuggingFace GPT-2 checkpoint (`config.json`,",
        "`model.safetensors` in float16, HF's tensor names and layouts) written by",
        "`tools/train_default_model.py` (plain PyTorch, not part of the engine).",
        "",
        f"- Where: {info['hardware']}; {info['minutes']:.1f} minutes of training"
        f" ({info['wall_hours']:.2f} h of wall time including evaluations and resumes).",
        "- Corpus: `../shared/corpus/tdavid.txt` and `web.txt` (public domain). The last 5% of",
        "  each file (cut at the next line start) is held out, never trained on, and committed",
        f"  here as `heldout.txt`: {info['train_tokens']:,} training tokens,"
        f" {info['heldout_tokens']:,} held-out tokens.",
        f"- Tokenizer: the GPT-2 BPE (`weights/encoder.json`, `weights/vocab.bpe`), vocab {VOCAB}.",
        f"- Shape: {sh['n_layer']} layers, n_embd {sh['n_embd']}, {sh['n_head']} heads of 64,",
        f"  n_positions {sh['n_positions']} (every step trains on full {sh['n_positions']}-token"
        " windows), tied embeddings, dropout 0:",
        f"  {info['params']:,} parameters, `model.safetensors` {info['file_bytes']:,} bytes"
        " (limit 16,000,000).",
        f"- Training: {info['steps']} AdamW steps of {info['batch']} x {sh['n_positions']} tokens,"
        f" peak LR {info['lr']:g} ({info['warmup']} warmup steps, cosine to"
        f" {info['min_lr_ratio']:g} x peak), weight decay {info['weight_decay']:g},"
        f" {info['precision']}, seed {info['seed']}; {info['tokens_seen']:,} tokens seen"
        f" ({info['epochs']:.2f} epochs), {info['tokens_per_s']:,.0f} tokens/s.",
        f"- Held-out perplexity: **{ppl['ppl']:.3f}** (NLL {ppl['nll']:.4f} nats/token) over"
        f" {ppl['tokens']:,} scored tokens"
        + (f" (the first {info['check_bytes']:,} bytes of `heldout.txt`, cut at a line end:"
           " `--check-bytes`, since the CPU reference takes hours over all of it)"
           if info["check_bytes"] else "")
        + f", HF's sliding-window method, ctx {ppl['ctx']}, stride"
        f" {ppl['stride']}, float32 on the saved float16 weights.",
        f"  `gpt2 ppl -m weights/default` on the same text gives"
        f" {info['engine_ppl']:.3f} (the two differ by {info['ppl_gap_pct']:.4f}%).",
        f"  For scale: an add-one unigram model of the training tokens scores"
        f" {info['unigram_ppl']:.1f} on the same text.",
        "- Loss curve: `loss.png`, drawn by `gpt2 plot weights/default/loss.json`.",
        "",
        "![loss curve](loss.png)",
        "",
        "## Greedy samples (`gpt2 generate -p PROMPT --greedy -n 48`)",
        "",
    ]
    for prompt, text in info["samples"]:
        lines += [f"**{prompt}**", "", "> " + text.replace("\n", "\n> "), ""]
    lines += ["## Reproduce", "", "```", info["command"],
              "./build/gpt2 plot weights/default/loss.json", "```", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


# ---------------------------------------------------------------------------------------------
# training

def lr_at(args, step, progress):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) *
                      0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def save_state(args, model, opt, rng, st):
    tmp = args.state + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), **st}, tmp)
    os.replace(tmp, args.state)


def train(args, model, opt, train_ids, heldout_ids, device, autocast):
    rng = np.random.default_rng(args.seed)
    st = {"step": 0, "tokens": 0, "train_seconds": 0.0, "log": [], "wall_start": time.time()}
    if os.path.exists(args.state):
        saved = torch.load(args.state)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        rng.bit_generator.state = saved["rng"]
        torch.set_rng_state(saved["torch_rng"])
        st = {k: saved[k] for k in st}
        print(f"resumed from {args.state} at step {st['step']}, "
              f"{st['train_seconds'] / 60:.1f} of {args.minutes} minutes", flush=True)
    budget = args.minutes * 60.0
    run_loss, run_n, last_save = 0.0, 0, time.time()
    high = len(train_ids) - args.ctx - 1
    model.train()
    while st["train_seconds"] < budget:
        t0 = time.time()
        lr = lr_at(args, st["step"], st["train_seconds"] / budget)
        for g in opt.param_groups:
            g["lr"] = lr
        starts = rng.integers(0, high, size=args.batch)
        x = torch.from_numpy(np.stack([train_ids[s:s + args.ctx + 1] for s in starts]))
        x = x.to(device, non_blocking=True)
        with autocast():
            logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, VOCAB), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        run_loss += loss.item()
        run_n += 1
        st["step"] += 1
        st["tokens"] += args.batch * args.ctx
        st["train_seconds"] += time.time() - t0
        last = st["train_seconds"] >= budget
        if st["step"] % args.eval_every == 0 or st["step"] == 1 or last:
            h = heldout_loss(model, heldout_ids, args.ctx, args.eval_windows, device, autocast)
            st["log"].append({"step": st["step"], "tokens": st["tokens"],
                              "seconds": round(st["train_seconds"], 2), "lr": lr,
                              "train_loss": run_loss / run_n, "heldout_loss": h})
            print(f"step {st['step']:6d}  tokens {st['tokens']:,}  train {run_loss / run_n:.4f}"
                  f"  held-out {h:.4f}  lr {lr:.2e}  "
                  f"{st['tokens'] / st['train_seconds']:,.0f} tok/s  "
                  f"{st['train_seconds'] / 60:.1f} min", flush=True)
            run_loss, run_n = 0.0, 0
        if last or time.time() - last_save > args.save_every * 60:
            save_state(args, model, opt, rng, st)
            last_save = time.time()
    return st


def main():
    args = parse_args()
    command = "python3 tools/train_default_model.py " + " ".join(shlex.quote(a)
                                                                  for a in sys.argv[1:])
    if f16_file_bytes(args) > MAX_BYTES:
        sys.exit(f"shape too large: n_layer {args.n_layer}, n_embd {args.n_embd}, ctx {args.ctx} "
                 f"needs about {f16_file_bytes(args):,} bytes as F16 safetensors "
                 f"(limit {MAX_BYTES:,})")
    if not os.access(args.gpt2, os.X_OK):
        sys.exit(f"{args.gpt2}: not found; build the engine first (cmake -B build -S . && "
                 "cmake --build build -j) or give --gpt2")
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
    hardware = args.hardware or (torch.cuda.get_device_name(device) if cuda else
                                 f"CPU ({platform.machine()}, {torch.get_num_threads()} threads,"
                                 f" torch {torch.__version__})")

    train_ids, heldout_bytes, heldout_ids, files = load_corpus(args)
    print(f"corpus: {len(train_ids):,} training tokens, {len(heldout_ids):,} held-out tokens",
          flush=True)

    model = GPT2(args.n_layer, args.n_embd, args.n_head, args.ctx).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    shape = (f"{args.n_layer} layers, n_embd {args.n_embd}, {args.n_head} heads, "
             f"ctx {args.ctx}, {n_params / 1e6:.2f} M params")
    print(shape, flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "wpe" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "wpe" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    autocast = ((lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else
                (lambda: torch.autocast("cpu", enabled=False)))

    os.makedirs(os.path.dirname(os.path.abspath(args.state)), exist_ok=True)
    st = train(args, model, opt, train_ids, heldout_ids, device, autocast)

    os.makedirs(args.out, exist_ok=True)
    model_path = os.path.join(args.out, "model.safetensors")
    save_safetensors_f16(model, model_path)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(hf_config(args), f, indent=2, sort_keys=True)
        f.write("\n")
    heldout_path = os.path.join(args.out, "heldout.txt")
    with open(heldout_path, "wb") as f:
        f.write(heldout_bytes)
    file_bytes = os.path.getsize(model_path)
    if file_bytes > MAX_BYTES:
        sys.exit(f"model.safetensors is {file_bytes:,} bytes, over {MAX_BYTES:,}")

    # Held-out perplexity in float32 on the saved float16 weights, then the engine's own number.
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
    model.half().float()
    check_path, check_ids = heldout_path, heldout_ids
    if args.check_bytes:
        cut = heldout_bytes.rfind(b"\n", 0, args.check_bytes) + 1 or args.check_bytes
        check_path = os.path.join(os.path.dirname(os.path.abspath(args.state)), "heldout_check.txt")
        with open(check_path, "wb") as f:
            f.write(heldout_bytes[:cut])
        check_ids = tokenize(args.gpt2, heldout_bytes[:cut])
    ppl = sliding_window_ppl(model, check_ids, args.ctx, args.ctx // 2, device)
    engine_ppl = json.loads(engine(args, "ppl", "-m", args.out, "-f", check_path, "--json"))
    gap = abs(engine_ppl["ppl"] - ppl["ppl"]) / ppl["ppl"] * 100
    print(f"held-out ppl {ppl['ppl']:.4f} (trainer), {engine_ppl['ppl']:.4f} (gpt2 ppl), "
          f"gap {gap:.4f}%", flush=True)
    if gap > 0.1:
        sys.exit("the trainer's and the engine's perplexities differ by more than 0.1%")

    result = loss_result(st["log"], shape, hardware)
    result.update({"command": command, "files": files, "heldout_ppl": ppl,
                   "engine_ppl": engine_ppl, "train_seconds": st["train_seconds"],
                   "steps": st["step"], "tokens_seen": st["tokens"], "file_bytes": file_bytes})
    with open(os.path.join(args.out, "loss.json"), "w") as f:
        json.dump(result, f, indent=1)
    engine(args, "plot", os.path.join(args.out, "loss.json"))
    samples = [(p, engine(args, "generate", "-m", args.out, "-p", p, "--greedy", "-n", "48"))
               for p in SAMPLE_PROMPTS]
    info = {
        "command": command, "hardware": hardware, "minutes": st["train_seconds"] / 60,
        "wall_hours": (time.time() - st["wall_start"]) / 3600,
        "train_tokens": int(len(train_ids)), "heldout_tokens": int(len(heldout_ids)),
        "shape": {"n_layer": args.n_layer, "n_embd": args.n_embd, "n_head": args.n_head,
                  "n_positions": args.ctx},
        "params": n_params, "file_bytes": file_bytes, "steps": st["step"], "batch": args.batch,
        "check_bytes": args.check_bytes,
        "lr": args.lr, "warmup": args.warmup, "min_lr_ratio": args.min_lr_ratio,
        "weight_decay": args.weight_decay, "seed": args.seed,
        "precision": "bf16 autocast" if cuda else "float32",
        "tokens_seen": st["tokens"], "epochs": st["tokens"] / len(train_ids),
        "tokens_per_s": st["tokens"] / st["train_seconds"], "ppl": ppl,
        "engine_ppl": engine_ppl["ppl"], "ppl_gap_pct": gap,
        "unigram_ppl": unigram_ppl(train_ids, heldout_ids), "samples": samples,
    }
    write_card(os.path.join(args.out, "README.md"), info)
    print(f"saved {args.out} ({file_bytes:,} bytes)", flush=True)


if __name__ == "__main__":
    main()
