#!/usr/bin/env bash
# Generation speed, ours against llama.cpp, in the same run: `anjeon bench generate` and
# `llama-bench` on the same GGUF with the same threads, 1024 prompt tokens, 128 generated.
# Both decode after the prompt: ours continues its prefill, llama-bench's run gets `-d 1024`
# (its plain tg128 would decode from an empty cache, skipping the attention over the prompt).
# Prints one JSON object: both figures and the ratios ours/llama.cpp (goal: >= 1.0).
# Run it on an otherwise idle machine: with any other load on the 2 cores, llama.cpp's
# spinning threads collapse (decode fell from 74 to 2 tok/s here while cargo was building).
# Usage: benches/generate.sh [MODEL.gguf]   (env: ANJEON_BIN, ANJEON_CACHE_DIR, THREADS)
set -euo pipefail

CACHE="${ANJEON_CACHE_DIR:-.cache}"
MODEL="${1:-$CACHE/models/gemma-3-270m-q4_k_m.gguf}"
ANJEON="${ANJEON_BIN:-target/release/anjeon}"
THREADS="${THREADS:-2}"
PROMPT=1024 GEN=128

[[ -f "$MODEL" ]] || { echo "model not found: $MODEL" >&2; exit 1; }
[[ -x "$ANJEON" ]] || { echo "anjeon binary not found: $ANJEON (cargo build --release)" >&2; exit 1; }
LLAMA_BIN=$(ANJEON_CACHE_DIR="$CACHE" "$(dirname "$0")/llama_cpp.sh")

ours=$("$ANJEON" bench generate --model "$MODEL" --prompt-tokens $PROMPT --gen-tokens $GEN --threads "$THREADS" --json)
peer_pp=$("$LLAMA_BIN/llama-bench" -m "$MODEL" -p $PROMPT -n 0 -t "$THREADS" -o json 2>/dev/null)
peer_tg=$("$LLAMA_BIN/llama-bench" -m "$MODEL" -p 0 -n $GEN -d $PROMPT -t "$THREADS" -o json 2>/dev/null)

OURS="$ours" PEER_PP="$peer_pp" PEER_TG="$peer_tg" python3 - "$MODEL" "$THREADS" <<'PY'
import json, os, sys
ours = json.loads(os.environ["OURS"])
pp = next(r for r in json.loads(os.environ["PEER_PP"]) if r["n_prompt"] > 0 and r["n_gen"] == 0)
tg = next(r for r in json.loads(os.environ["PEER_TG"]) if r["n_gen"] > 0 and r["n_prompt"] == 0)
peer = {"prefill_tok_s": pp["avg_ts"], "prefill_stddev": pp["stddev_ts"],
        "decode_tok_s": tg["avg_ts"], "decode_stddev": tg["stddev_ts"]}
print(json.dumps({
    "model": sys.argv[1], "threads": int(sys.argv[2]), "prompt_tokens": pp["n_prompt"], "gen_tokens": tg["n_gen"],
    "decode_depth": tg.get("n_depth", 0),
    "ours": ours, "llama_cpp": peer,
    "ratio": {"prefill": round(ours["prefill_tok_s"] / peer["prefill_tok_s"], 3),
              "decode": round(ours["decode_tok_s"] / peer["decode_tok_s"], 3)},
}, indent=2))
PY
