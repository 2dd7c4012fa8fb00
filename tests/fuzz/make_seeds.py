#!/usr/bin/env python3
"""Writes the small seed corpora under tests/fuzz/seeds/ (run once; the output is committed).

seeds/safetensors/: valid and broken safetensors files (a tiny GPT-2-like table and the
failure shapes the parser must reject). seeds/config/: config.json variants. seeds/ids/: --ids
lists. seeds/plot/: result JSON with charts, as `gpt2 plot` reads it back. seeds/prompts/:
--prompts files (one prompt per line).
Standard library only.
"""
import json
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent


def safetensors(header, data=b"", header_len=None, raw_header=None):
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    length = len(text) if header_len is None else header_len
    return struct.pack("<Q", length) + text + data


def table(entries, metadata=None):
    """entries: (name, dtype, shape, nbytes_per_element) laid out back to back."""
    header, offset = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, size in entries:
        numel = 1
        for d in shape:
            numel *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + numel * size]}
        offset += numel * size
    return header, bytes(range(256)) * (offset // 256) + bytes(offset % 256)


def tiny_gpt2(dtype="F32", size=4, prefix=""):
    C = 4  # tiny, so the seed stays small; shapes are what matter to the parser
    entries = [(prefix + "wte.weight", dtype, [5, C], size), (prefix + "wpe.weight", dtype, [3, C], size)]
    for name, shape in [("ln_1.weight", [C]), ("attn.c_attn.weight", [C, 3 * C]), ("attn.c_attn.bias", [3 * C]),
                        ("attn.bias", [1, 1, 3, 3]), ("mlp.c_proj.weight", [4 * C, C])]:
        entries.append((prefix + "h.0." + name, "BOOL" if name == "attn.bias" else dtype, shape,
                        1 if name == "attn.bias" else size))
    entries.append((prefix + "ln_f.bias", dtype, [C], size))
    return table(entries, metadata={"format": "pt"})


def safetensors_seeds():
    seeds = {}
    seeds["gpt2_f32"] = safetensors(*tiny_gpt2())
    seeds["gpt2_f16_prefixed"] = safetensors(*tiny_gpt2("F16", 2, "transformer."))
    seeds["gpt2_bf16"] = safetensors(*tiny_gpt2("BF16", 2))
    all_dtypes = [("b", "BOOL", 1), ("u8", "U8", 1), ("i8", "I8", 1), ("e4", "F8_E4M3", 1), ("e5", "F8_E5M2", 1),
                  ("i16", "I16", 2), ("f16", "F16", 2), ("bf", "BF16", 2), ("i32", "I32", 4), ("f32", "F32", 4),
                  ("i64", "I64", 8), ("f64", "F64", 8), ("u64", "U64", 8)]
    seeds["all_dtypes"] = safetensors(*table([(n, d, [2], s) for n, d, s in all_dtypes]))
    seeds["scalar_and_empty"] = safetensors(*table([("s", "F32", [], 4), ("e", "F16", [0, 7], 2)]))
    seeds["empty_table"] = safetensors({})
    seeds["padded_header"] = safetensors(None, b"\0" * 8, raw_header=b'{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}   ')
    header, data = tiny_gpt2()
    seeds["truncated"] = safetensors(header, data)[:-7]
    seeds["header_past_end"] = safetensors(header, b"", header_len=1 << 20)
    seeds["header_absurd"] = safetensors({}, header_len=(1 << 64) - 1)
    seeds["short"] = b"\x02\x00\x00"
    seeds["not_json"] = safetensors(None, raw_header=b"{not json}")
    seeds["array_root"] = safetensors([1, 2, 3])
    seeds["escapes"] = safetensors(None, b"\0" * 4, raw_header='{"\\u00e9\\ud83d\\ude00\\n":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}'.encode())
    seeds["overlap"] = safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                    "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12))
    seeds["end_before_begin"] = safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, bytes(8))
    seeds["size_mismatch"] = safetensors({"a": {"dtype": "F16", "shape": [3], "data_offsets": [0, 8]}}, bytes(8))
    seeds["unknown_dtype"] = safetensors({"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, bytes(2))
    seeds["negative_dim"] = safetensors({"a": {"dtype": "F32", "shape": [-1, 2], "data_offsets": [0, 8]}}, bytes(8))
    seeds["numel_overflow"] = safetensors({"a": {"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 8]}}, bytes(8))
    seeds["bad_metadata"] = safetensors({"__metadata__": {"k": 1}})
    # The tensors must cover the data section exactly: gaps and trailing bytes are rejected.
    seeds["gap"] = safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                "b": {"dtype": "F32", "shape": [1], "data_offsets": [12, 16]}}, bytes(16))
    seeds["gap_before_first"] = safetensors({"a": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}}, bytes(4))
    seeds["trailing_bytes"] = safetensors(*table([("a", "F16", [3], 2)]))[:] + b"\x01\x02"
    seeds["data_without_tensors"] = safetensors({"__metadata__": {"format": "pt"}}, b"\x00" * 5)
    seeds["empty_inside"] = safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                         "e": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}}, bytes(8))
    seeds["empty_at_boundaries"] = safetensors({"z": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]},
                                                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                                "e": {"dtype": "I8", "shape": [0, 4], "data_offsets": [8, 8]}}, bytes(8))
    seeds["duplicate_key"] = safetensors(None, raw_header=b'{"a":{},"a":{}}')
    return seeds


def config_seeds():
    gpt2 = {"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
            "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
            "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12,
            "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1, "summary_activation": None,
            "summary_first_dropout": 0.1, "summary_proj_to_labels": True, "summary_type": "cls_index",
            "summary_use_proj": True, "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
            "vocab_size": 50257}
    seeds = {"gpt2": json.dumps(gpt2, indent=2).encode()}
    seeds["n_ctx_only"] = b'{"n_layer":2,"n_head":2,"n_embd":128,"n_ctx":32,"vocab_size":100}'
    seeds["variants"] = json.dumps(dict(gpt2, n_inner=None, scale_attn_weights=True,
                                        scale_attn_by_inverse_layer_idx=False,
                                        activation_function="gelu_pytorch_tanh")).encode()
    seeds["bad_head"] = b'{"n_layer":2,"n_head":3,"n_embd":128,"n_positions":32,"vocab_size":100}'
    seeds["strings"] = '["\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\ud83d\\ude00", "é€😀", -0.5e-3, 1E+2, 9223372036854775807, -9223372036854775808, true, false, null, {}, []]'.encode()
    seeds["deep"] = b"[" * 70 + b"]" * 70
    seeds["broken"] = b'{"n_layer": 2, "n_head": [1, 2,], "x": "\\ud800"}'
    return seeds


def ids_seeds():
    return {"sentence": b"464 3616 286 1204 318", "commas": b"1,2,3\n4\t5\r\n", "eot": b"50256",
            "vocab_edge": b"50257", "negative": b"-1", "fraction": b"1.5", "separators": b" \t\r\n,,",
            "empty": b"", "hex": b"0x10", "huge": b"99999999999999999999", "nul": b"1\x002",
            "leading_zeros": b"000000000000000000000000001 0", "plus": b"+5"}


def prompts_seeds():
    return {"three": b"Hello, my name is\nThe meaning of life is\nOnce upon a time\n",
            "unterminated": b"first\nlast", "empty": b"", "newline": b"\n", "blank_lines": b"a\n\n\nb\n",
            "crlf": b"one\r\ntwo\r\n\r\nthree", "lone_cr": b"a\rb\r", "cr_cr_lf": b"x\r\r\n\r",
            "nul": b"a\x00b\n\x00\n", "special": b"<|endoftext|>\n<|endoftext|>hi\n",
            "utf8": "héllo wörld\n日本語\r\n😀".encode()}


def plot_seeds():
    """The charts of tests/plot_examples/ (one result file per chart kind), and broken specs."""
    seeds = {path.stem: path.read_bytes() for path in sorted((HERE.parent / "plot_examples").glob("*.json"))}
    seeds["nonfinite"] = json.dumps({"charts": [{"file": "a.png", "kind": "line", "y_log": True,
                                                 "series": [{"name": "s", "x": [1, 2, 3], "y": [None, -1, 1e308]}],
                                                 "reference_lines": [{"y": 0}]}]}).encode()
    seeds["empty_series"] = b'{"charts": [{"file": "b.png", "kind": "bar", "categories": [], "series": []}]}'
    seeds["heatmap_ragged"] = b'{"charts": [{"file": "h.png", "kind": "heatmap", "matrix": [[1, 2], [3]]}]}'
    seeds["one_spec"] = b'{"kind": "roofline", "ceilings": {"bandwidth_bytes_per_s": 3e12, "flops_per_s": 7e14}, "points": [{"name": "p", "intensity": 1e-300, "flops_per_s": 1e300}]}'
    seeds["bad_size"] = b'{"charts": [{"file": "c.png", "kind": "line", "width": 199, "series": []}]}'
    return seeds


def write(directory, seeds, suffix):
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        (directory / (name + suffix)).write_bytes(data)


if __name__ == "__main__":
    write(HERE / "seeds" / "safetensors", safetensors_seeds(), ".safetensors")
    write(HERE / "seeds" / "config", config_seeds(), ".json")
    write(HERE / "seeds" / "ids", ids_seeds(), ".txt")
    write(HERE / "seeds" / "plot", plot_seeds(), ".json")
    write(HERE / "seeds" / "prompts", prompts_seeds(), ".txt")
