#!/usr/bin/env python3
"""Trains the small default GPT-2 model that `gpt2 generate` uses when no -m is given.

Not part of the engine: a PyTorch + transformers script meant for a GPU machine (it also runs,
slowly, on a CPU). It trains a GPT-2-architecture model (GPT2LMHeadModel, tied embeddings,
dropout 0, head size 64) with the GPT-2 vocabulary on the public-domain corpus in
../shared/corpus (tdavid.txt and web.txt). The last 5% of each file (cut at a line start) is held
out; the model never trains on it. At the end it saves a standard HF GPT-2 checkpoint in float16
(save_pretrained, safetensors; at most 16 MB), a loss curve as a `gpt2 plot` result JSON, and a
card (README.md) with the held-out perplexity from the sliding-window method of HF's perplexity
guide (ctx = n_positions, stride = ctx / 2), computed in float32 on the saved float16 weights,
exactly as `gpt2 ppl -m OUT -f HELDOUT` computes it.

Tokenization: the HF `tokenizers` byte-level BPE that GPT2TokenizerFast wraps, built offline from
weights/encoder.json and weights/vocab.bpe with no special tokens, so <|endoftext|> in the text is
plain text; this gives the same ids as the engine's tokenizer (`gpt2 tokenize -f FILE`, which is
tiktoken's gpt2). The
training parts of the files are joined with the <|endoftext|> token (50256) between them.

  python3 tools/train_default_model.py --device cuda --minutes 5 --out weights/default
  gpt2 plot weights/default/loss.json            # draws loss.png from the result JSON
  gpt2 ppl -m weights/default -f HELDOUT          # HELDOUT: the path the script prints
"""

import argparse
import hashlib
import json
import math
import os
import platform
import shlex
import sys
import tempfile
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EOT = 50256
VOCAB = 50257
MAX_BYTES = 16_000_000  # the F16 safetensors file may not pass 16 MB
HEAD_SIZE = 64
HELDOUT_FRACTION = 0.05
CORPUS_FILES = ("tdavid.txt", "web.txt")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--n-layer", type=int, default=7)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--n-head", type=int, default=0, help="default n_embd / 64 (head size 64)")
    p.add_argument("--ctx", type=int, default=256, help="n_positions and training length")
    p.add_argument("--steps", type=int, default=0,
                   help="optimizer steps (0: as many as --minutes allows)")
    p.add_argument("--minutes", type=float, default=0.0,
                   help="training time budget; the LR schedule follows whichever of --steps "
                        "and --minutes runs out first")
    p.add_argument("--batch", type=int, default=0, help="sequences per step (default: 64 on "
                                                         "cuda, 16 on cpu)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--min-lr-ratio", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=100, help="warmup steps")
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--eval-every", type=int, default=100, help="held-out loss every N steps")
    p.add_argument("--eval-windows", type=int, default=64,
                   help="held-out windows of ctx tokens for the logged held-out loss")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--corpus-dir", default=os.path.join(os.path.dirname(REPO), "shared", "corpus"))
    p.add_argument("--vocab-dir", default=os.path.join(REPO, "weights"),
                   help="folder with encoder.json and vocab.bpe")
    p.add_argument("--heldout-file", default=os.path.join(tempfile.gettempdir(),
                                                          "gpt2_default_heldout.txt"),
                   help="where to write the held-out text (for `gpt2 ppl -f`); keep it out of "
                        "the repository")
    p.add_argument("--out", default=os.path.join(REPO, "weights", "default"))
    p.add_argument("--hardware", default="", help="hardware description for the card")
    p.add_argument("--ppl-tokens", type=int, default=0,
                   help="score only the first N held-out tokens for the final perplexity, and "
                        "write only their text to --heldout-file (0: all; for slow CPU runs)")
    p.add_argument("--eval-only", action="store_true",
                   help="only print the held-out perplexity of the model already in --out")
    a = p.parse_args()
    if a.n_head == 0:
        a.n_head = a.n_embd // HEAD_SIZE
    if a.n_head < 1 or a.n_embd != a.n_head * HEAD_SIZE:
        p.error(f"head size must be 64: n_embd {a.n_embd} != n_head {a.n_head} * 64")
    if a.steps <= 0 and a.minutes <= 0 and not a.eval_only:
        p.error("give --steps, --minutes, or both")
    if a.batch == 0:
        a.batch = 64 if a.device.startswith("cuda") else 16
    return a


def f16_file_bytes(n_layer, n_embd, ctx):
    """Tensor bytes of the F16 checkpoint (tied lm_head is not stored) plus a header allowance."""
    e = n_embd
    per_layer = 12 * e * e + 13 * e  # ln_1, c_attn, attn c_proj, ln_2, c_fc, mlp c_proj
    params = VOCAB * e + ctx * e + n_layer * per_layer + 2 * e
    return 2 * params + 16 * 1024


# ---------------------------------------------------------------------------------------------
# data

def load_tokenizer(vocab_dir):
    """The GPT-2 byte-level BPE as a HF `tokenizers` Tokenizer (what GPT2TokenizerFast wraps),
    built offline from encoder.json and vocab.bpe with no special tokens registered, so that
    <|endoftext|> in the text is plain text, as in the engine's default."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    bpe = models.BPE.from_file(os.path.join(vocab_dir, "encoder.json"),
                               os.path.join(vocab_dir, "vocab.bpe"))
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def encode(tok, data: bytes):
    """Token ids of some UTF-8 bytes (cached in the temp folder by content hash)."""
    cache = os.path.join(tempfile.gettempdir(),
                         "gpt2_default_ids_" + hashlib.sha256(data).hexdigest()[:24] + ".npy")
    if os.path.exists(cache):
        return np.load(cache)
    ids = np.asarray(tok.encode(data.decode("utf-8")).ids, dtype=np.int32)
    np.save(cache, ids)
    return ids


def split_heldout(data: bytes):
    """First 95% of the bytes for training, the rest held out, cut at the next line start."""
    cut = int(len(data) * (1 - HELDOUT_FRACTION))
    nl = data.find(b"\n", cut)
    cut = len(data) if nl < 0 else nl + 1
    return data[:cut], data[cut:]


def load_corpus(args, tok):
    train_parts, heldout_bytes, files = [], b"", []
    for name in CORPUS_FILES:
        with open(os.path.join(args.corpus_dir, name), "rb") as f:
            data = f.read()
        train, held = split_heldout(data)
        ids = encode(tok, train)
        train_parts.append(ids)
        heldout_bytes += held
        files.append({"file": name, "bytes": len(data), "train_bytes": len(train),
                      "heldout_bytes": len(held), "train_tokens": int(len(ids))})
    train_ids = np.concatenate([np.concatenate([p, [EOT]]) for p in train_parts]).astype(np.int64)
    heldout_ids = encode(tok, heldout_bytes).astype(np.int64)
    if args.ppl_tokens and args.ppl_tokens < len(heldout_ids):
        # A prefix of the held-out text that tokenizes to exactly the first ppl_tokens ids.
        heldout_bytes = tok.decode(heldout_ids[:args.ppl_tokens].tolist()).encode("utf-8")
        sub = encode(tok, heldout_bytes).astype(np.int64)
        if not np.array_equal(sub, heldout_ids[:args.ppl_tokens]):
            sys.exit("--ppl-tokens: the prefix does not tokenize to the same ids; try another N")
        heldout_ids = sub
    os.makedirs(os.path.dirname(os.path.abspath(args.heldout_file)), exist_ok=True)
    with open(args.heldout_file, "wb") as f:
        f.write(heldout_bytes)
    return train_ids, heldout_ids, files


# ---------------------------------------------------------------------------------------------
# evaluation

@torch.no_grad()
def heldout_loss(model, heldout, ctx, n_windows, device, autocast):
    """Mean next-token loss over n_windows evenly spaced held-out windows (for the curve)."""
    model.eval()
    n_windows = max(1, min(n_windows, (len(heldout) - 1) // ctx))
    starts = np.linspace(0, len(heldout) - ctx - 1, n_windows).astype(np.int64)
    total, count = 0.0, 0
    for i in range(0, n_windows, 16):
        x = torch.stack([torch.from_numpy(heldout[s:s + ctx + 1]) for s in starts[i:i + 16]])
        x = x.to(device)
        with autocast():
            logits = model(x[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, VOCAB),
                                                 x[:, 1:].reshape(-1), reduction="sum")
        total += loss.item()
        count += x[:, 1:].numel()
    model.train()
    return total / count


@torch.no_grad()
def sliding_window_ppl(model, ids, ctx, stride, device, batch=8):
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
        hidden = model.transformer(x).last_hidden_state[:, first - 1:length - 1]
        logp = torch.log_softmax(model.lm_head(hidden).double(), dim=-1)
        nll = -logp.gather(2, x[:, first:length, None])[..., 0].sum(dim=1)
        for (_, _, trg_len), w in zip(group, nll.tolist()):
            nll_sum += w / (length - first) * (trg_len - 1)
            tokens += trg_len - 1
        i += len(group)
    return {"ppl": math.exp(nll_sum / tokens), "nll": nll_sum / tokens, "tokens": tokens,
            "windows": len(windows), "ctx": ctx, "stride": stride}


# ---------------------------------------------------------------------------------------------
# output

def loss_result(log, args, shape, hardware):
    steps = [r["step"] for r in log]
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
        }] if steps else [],
    }


def write_card(path, args, info):
    cmd = info["command"]
    sh = info["shape"]
    lines = [
        "# weights/default: a small GPT-2-architecture model trained from scratch",
        "",
        "The model `gpt2 generate` (and every command taking `-m`) uses when no `-m DIR` and no",
        "`GPT2_MODEL` are given. It is a standard HuggingFace GPT-2 checkpoint (`config.json`,",
        "`model.safetensors` in float16) written by `save_pretrained`, trained by",
        "`tools/train_default_model.py` (PyTorch + transformers, not part of the engine).",
        "",
        f"- Hardware: {info['hardware']}, {info['minutes']:.1f} minutes of training.",
        f"- Corpus: `../shared/corpus/tdavid.txt` and `web.txt` (public domain). The last 5% of",
        "  each file (cut at the next line start) is held out and never trained on; the training",
        f"  parts are joined by `<|endoftext|>`: {info['train_tokens']:,} training tokens,",
        f"  {info['heldout_tokens']:,} held-out tokens.",
        f"- Tokenizer: the GPT-2 BPE (`weights/encoder.json`, `weights/vocab.bpe`), vocab {VOCAB}.",
        f"- Shape: {sh['n_layer']} layers, n_embd {sh['n_embd']}, {sh['n_head']} heads of 64,",
        f"  n_positions {sh['n_positions']}, tied embeddings, dropout 0: {info['params']:,}",
        f"  parameters, `model.safetensors` {info['file_bytes']:,} bytes (limit 16,000,000).",
        f"- Training: {info['steps']} AdamW steps of {args.batch} x {args.ctx} tokens, peak LR"
        f" {args.lr:g}",
        f"  ({args.warmup} warmup steps, cosine to {args.min_lr_ratio:g} x peak), weight decay"
        f" {args.weight_decay:g},",
        f"  {info['precision']}, seed {args.seed}; {info['tokens_seen']:,} tokens seen"
        f" ({info['epochs']:.2f} epochs), {info['tokens_per_s']:,.0f} tokens/s.",
        f"- Held-out perplexity: **{info['ppl']['ppl']:.3f}** (NLL {info['ppl']['nll']:.4f}"
        f" nats/token) over {info['ppl']['tokens']:,}"
        + (f" (only the first {args.ppl_tokens:,} held-out tokens, --ppl-tokens)"
           if args.ppl_tokens else ""),
        f"  scored tokens: HF's sliding-window method, ctx {info['ppl']['ctx']}, stride"
        f" {info['ppl']['stride']}, float32",
        "  on the saved float16 weights. `gpt2 ppl -m weights/default -f HELDOUT` computes the same",
        "  number (HELDOUT: the held-out text the script writes, see `--heldout-file`).",
        f"- Final logged held-out loss ({args.eval_windows} evenly spaced windows): "
        f"{info['final_heldout_loss']:.4f}; train loss {info['final_train_loss']:.4f}.",
        "- Loss curve: `loss.png`, drawn by `gpt2 plot weights/default/loss.json`.",
        "",
        "![loss curve](loss.png)",
        "",
        "Reproduce:",
        "",
        "```",
        cmd,
        "gpt2 plot weights/default/loss.json",
        "```",
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


# ---------------------------------------------------------------------------------------------

def main():
    args = parse_args()
    command = "python3 tools/train_default_model.py " + " ".join(shlex.quote(a)
                                                                  for a in sys.argv[1:])
    need = f16_file_bytes(args.n_layer, args.n_embd, args.ctx)
    if need > MAX_BYTES:
        sys.exit(f"shape too large: n_layer {args.n_layer}, n_embd {args.n_embd}, ctx {args.ctx} "
                 f"needs about {need:,} bytes as F16 safetensors (limit {MAX_BYTES:,})")

    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    hardware = args.hardware or (torch.cuda.get_device_name(device) if cuda else
                                 f"CPU ({platform.processor() or platform.machine()}, "
                                 f"{torch.get_num_threads()} threads)")

    t0 = time.time()
    tok = load_tokenizer(args.vocab_dir)
    train_ids, heldout_ids, files = load_corpus(args, tok)
    print(f"corpus: {len(train_ids):,} training tokens, {len(heldout_ids):,} held-out tokens "
          f"({time.time() - t0:.1f} s); held-out text in {args.heldout_file}", flush=True)

    if args.eval_only:
        saved = GPT2LMHeadModel.from_pretrained(args.out, dtype=torch.float32).to(device)
        n_pos = saved.config.n_positions
        print(json.dumps(sliding_window_ppl(saved, heldout_ids, n_pos, n_pos // 2, device)))
        return

    config = GPT2Config(vocab_size=VOCAB, n_positions=args.ctx, n_embd=args.n_embd,
                        n_layer=args.n_layer, n_head=args.n_head, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True,
                        bos_token_id=EOT, eos_token_id=EOT)
    model = GPT2LMHeadModel(config).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    shape = (f"{args.n_layer} layers, n_embd {args.n_embd}, {args.n_head} heads, "
             f"ctx {args.ctx}, {n_params / 1e6:.2f} M params")
    print(shape, flush=True)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "wpe" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "wpe" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8, **({"fused": True} if cuda
                                                                          else {}))
    autocast = ((lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else
                (lambda: torch.autocast("cpu", enabled=False)))

    budget = args.minutes * 60.0

    def progress(step, elapsed):
        p = 0.0
        if args.steps > 0:
            p = max(p, step / args.steps)
        if budget > 0:
            p = max(p, elapsed / budget)
        return p

    def lr_at(step, elapsed):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        p = min(1.0, progress(step, elapsed))
        return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) *
                          0.5 * (1 + math.cos(math.pi * p)))

    log, step, tokens_seen = [], 0, 0
    run_loss, run_n = 0.0, 0
    per_step = args.batch * args.ctx
    high = len(train_ids) - args.ctx - 1
    model.train()
    start = time.time()
    while True:
        elapsed = time.time() - start
        if progress(step, elapsed) >= 1.0:
            break
        lr = lr_at(step, elapsed)
        for g in opt.param_groups:
            g["lr"] = lr
        starts = rng.integers(0, high, size=args.batch)
        x = torch.from_numpy(np.stack([train_ids[s:s + args.ctx + 1] for s in starts]))
        x = x.to(device, non_blocking=True)
        with autocast():
            logits = model(x[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, VOCAB),
                                                 x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens_seen += per_step
        run_loss += loss.item()
        run_n += 1
        last = progress(step, time.time() - start) >= 1.0
        if step % args.eval_every == 0 or step == 1 or last:
            h = heldout_loss(model, heldout_ids, args.ctx, args.eval_windows, device, autocast)
            el = time.time() - start
            log.append({"step": step, "tokens": tokens_seen, "seconds": round(el, 2),
                        "lr": lr, "train_loss": run_loss / run_n, "heldout_loss": h})
            print(f"step {step:6d}  tokens {tokens_seen:,}  train {run_loss / run_n:.4f}  "
                  f"held-out {h:.4f}  lr {lr:.2e}  {tokens_seen / el:,.0f} tok/s  {el:.0f} s",
                  flush=True)
            run_loss, run_n = 0.0, 0
    train_seconds = time.time() - start

    os.makedirs(args.out, exist_ok=True)
    model.half().save_pretrained(args.out, safe_serialization=True)
    file_bytes = os.path.getsize(os.path.join(args.out, "model.safetensors"))
    if file_bytes > MAX_BYTES:
        sys.exit(f"model.safetensors is {file_bytes:,} bytes, over {MAX_BYTES:,}")
    for extra in ("generation_config.json",):  # the engine needs only these two files
        if os.path.exists(os.path.join(args.out, extra)):
            os.remove(os.path.join(args.out, extra))

    # Held-out perplexity in float32 on the saved float16 weights, as `gpt2 ppl` computes it.
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    saved = GPT2LMHeadModel.from_pretrained(args.out, dtype=torch.float32).to(device)
    t1 = time.time()
    ppl = sliding_window_ppl(saved, heldout_ids, args.ctx, args.ctx // 2, device)
    print(f"held-out ppl {ppl['ppl']:.4f} (nll {ppl['nll']:.5f}) over {ppl['tokens']:,} tokens, "
          f"{ppl['windows']} windows ({time.time() - t1:.0f} s)", flush=True)

    result = loss_result(log, args, shape, hardware)
    result.update({"command": command, "files": files, "heldout_ppl": ppl,
                   "train_seconds": train_seconds, "steps": step, "tokens_seen": tokens_seen,
                   "file_bytes": file_bytes, "heldout_file": args.heldout_file})
    with open(os.path.join(args.out, "loss.json"), "w") as f:
        json.dump(result, f, indent=1)
    info = {
        "command": command, "hardware": hardware, "minutes": train_seconds / 60,
        "train_tokens": int(len(train_ids)), "heldout_tokens": int(len(heldout_ids)),
        "shape": {"n_layer": args.n_layer, "n_embd": args.n_embd, "n_head": args.n_head,
                  "n_positions": args.ctx},
        "params": n_params, "file_bytes": file_bytes, "steps": step,
        "precision": "bf16 autocast" if cuda else "float32",
        "tokens_seen": tokens_seen, "epochs": tokens_seen / len(train_ids),
        "tokens_per_s": tokens_seen / train_seconds, "ppl": ppl,
        "final_heldout_loss": log[-1]["heldout_loss"], "final_train_loss": log[-1]["train_loss"],
    }
    write_card(os.path.join(args.out, "README.md"), args, info)
    print(f"saved {args.out} ({file_bytes:,} bytes); draw the curve with "
          f"`gpt2 plot {os.path.join(args.out, 'loss.json')}`", flush=True)


if __name__ == "__main__":
    main()
