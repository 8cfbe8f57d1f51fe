"""A tiny random-weight llama model in GGUF, written by the test setup itself (no downloads).

Two layers, 32-wide, f32, seeded: a few hundred KB that llama.cpp loads in milliseconds. Its
text is gibberish; tests assert on the protocol, not on words. The tokenizer is a llama
SentencePiece vocabulary: the three specials, the 256 byte-fallback tokens (so any text
tokenizes) and the most frequent pieces of the cl100k vocabulary that ships with the package
(so prompts are a few characters per token, not one byte each).
"""

from __future__ import annotations

import base64
import gzip
from pathlib import Path

import gguf
import numpy as np

CL100K = Path(__file__).resolve().parents[2] / "src/anthropic_router/data/cl100k_base.tiktoken.gz"
N_EMBD, N_FF, N_HEAD, N_LAYER = 32, 64, 4, 2
CONTEXT = 16384
PIECES = 1500


def _pieces(limit: int) -> list[str]:
    """The first `limit` multi-byte cl100k tokens that are whole UTF-8 text, in rank order,
    spelled the SentencePiece way (a space is U+2581)."""
    found: list[str] = []
    seen: set[str] = set()
    with gzip.open(CL100K, "rt") as lines:
        for line in lines:
            token = base64.b64decode(line.split()[0])
            if len(token) < 2:
                continue
            try:
                text = token.decode("utf-8")
            except UnicodeDecodeError:
                continue
            if not text.isprintable() and text.strip(" ") != "":
                continue
            piece = text.replace(" ", "\u2581")
            if piece not in seen:
                seen.add(piece)
                found.append(piece)
            if len(found) == limit:
                break
    return found


def _vocab() -> tuple[list[str], list[float], list[int]]:
    tokens = ["<unk>", "<s>", "</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    tokens += [f"<0x{byte:02X}>" for byte in range(256)]
    types += [gguf.TokenType.BYTE] * 256
    pieces = ["\u2581", *(p for p in _pieces(PIECES) if p != "\u2581")]
    tokens += pieces
    types += [gguf.TokenType.NORMAL] * len(pieces)
    # SentencePiece merges the highest-scoring pair first: frequent pieces score highest.
    scores = [0.0] * (3 + 256) + [-float(rank) for rank in range(len(pieces))]
    return tokens, scores, [int(t) for t in types]


def write_model(path: Path, seed: int = 0) -> Path:
    """Write the model to `path` (a .gguf file) and return it."""
    tokens, scores, types = _vocab()
    rng = np.random.default_rng(seed)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("anthropic-router tiny random llama")
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    # numpy shape is GGUF's ne reversed: (rows, columns) = (out, in).
    writer.add_tensor("token_embd.weight", weight(len(tokens), N_EMBD))
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    writer.add_tensor("output.weight", weight(len(tokens), N_EMBD))
    for layer in range(N_LAYER):
        block = f"blk.{layer}"
        writer.add_tensor(f"{block}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{block}.{name}.weight", weight(N_EMBD, N_EMBD))
        writer.add_tensor(f"{block}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{block}.ffn_gate.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(f"{block}.ffn_up.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(f"{block}.ffn_down.weight", weight(N_EMBD, N_FF))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
