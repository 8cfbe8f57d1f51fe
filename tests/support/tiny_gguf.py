"""A tiny random-weight llama model in GGUF, written by the test setup itself (no downloads).

Two layers, 32-wide, f32, seeded: a few hundred KB that llama.cpp loads in milliseconds. Its
text is gibberish; tests assert on the protocol, not on words.

The weights are random except for one thing: answers must end by themselves (Claude Code
treats a max_tokens stop as an error and retries). Every token embedding carries the same
constant in dimension 0, which no layer writes to, and the output head reads only that
dimension, for end-of-text and a few word pieces alike: those share one logit far above the
rest, so each step ends the answer with probability 1/(1 + len(WORDS)) whatever the sampler
settings (about 1e-7 to run past 128 tokens). Dimension 1 flags tokens that end a line (the
chat template's prompt ends with one), and there end-of-text is far less likely, so answers
are rarely empty. Grammar-constrained output (tool arguments)
samples uniformly among the tokens the grammar allows. The tokenizer is a llama
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
WORDS = (
    "\u2581the",
    "\u2581model",
    "\u2581is",
    "\u2581a",
    "\u2581to",
    "\u2581of",
    "\u2581and",
    "\u2581it",
)
EOS = 2


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
    embeddings = weight(len(tokens), N_EMBD)
    embeddings[:, 0] = 4.0
    embeddings[:, 1] = [4.0 if _ends_line(token) else 0.0 for token in tokens]
    head = np.zeros((len(tokens), N_EMBD), dtype=np.float32)
    for token in (EOS, *(tokens.index(word) for word in WORDS)):
        head[token, 0] = 2.0
    head[EOS, 1] = -3.0
    writer.add_tensor("token_embd.weight", embeddings)
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    writer.add_tensor("output.weight", head)
    for layer in range(N_LAYER):
        block = f"blk.{layer}"
        writer.add_tensor(f"{block}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v"):
            writer.add_tensor(f"{block}.{name}.weight", weight(N_EMBD, N_EMBD))
        writer.add_tensor(f"{block}.attn_output.weight", _keep_flags(weight(N_EMBD, N_EMBD)))
        writer.add_tensor(f"{block}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{block}.ffn_gate.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(f"{block}.ffn_up.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(f"{block}.ffn_down.weight", _keep_flags(weight(N_EMBD, N_FF)))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _keep_flags(matrix: np.ndarray) -> np.ndarray:
    """A layer's output projection that leaves the residual stream's dimensions 0 and 1
    (the constant and the end-of-line flag) alone."""
    matrix[0:2, :] = 0.0
    return matrix


def _ends_line(token: str) -> bool:
    return token == "<0x0A>" or token.endswith(("\n", ":"))
