#!/usr/bin/env bash
# Fidelity of our log-likelihoods against llama.cpp on the same GGUF: `anjeon eval` scores N
# documents of a task and records every context and continuation (samples/<task>.jsonl); the
# same strings are then tokenised by llama-server (/tokenize, split as lm-evaluation-harness
# does) and scored token by token through /completion (the target forced by logit_bias,
# its probability read before sampling). Prints one JSON object: per-choice |Δ log-likelihood|
# (max, mean, p95), token-count agreement, and the task's accuracy by each engine.
# Usage: benches/fidelity.sh [TASK] [N]   (default kobest_copa 50)
# Env: ANJEON_BIN (default target/release/anjeon), ANJEON_CACHE_DIR, MODEL, THREADS,
#      LLAMA_BIN (folder with llama-server; default: built by benches/llama_cpp.sh),
#      DATA_ROOT (default ../shared/bench), OUT (default a temporary folder), PORT,
#      LLAMA_ARGS (more llama-server flags, e.g. "-ctk f32 -ctv f32" for an f32 KV cache).
set -euo pipefail

TASK="${1:-kobest_copa}"
N="${2:-50}"
CACHE="${ANJEON_CACHE_DIR:-.cache}"
MODEL="${MODEL:-$CACHE/models/gemma-3-270m-q4_k_m.gguf}"
ANJEON="${ANJEON_BIN:-target/release/anjeon}"
THREADS="${THREADS:-2}"
DATA_ROOT="${DATA_ROOT:-../shared/bench}"
PORT="${PORT:-18087}"
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"

[[ -f "$MODEL" ]] || { echo "model not found: $MODEL" >&2; exit 1; }
[[ -x "$ANJEON" ]] || { echo "anjeon binary not found: $ANJEON (cargo build --release)" >&2; exit 1; }
if [[ -z "${LLAMA_BIN:-}" ]]; then
  [[ -x "$(dirname "$0")/llama_cpp.sh" ]] || { echo "set LLAMA_BIN to a folder with llama-server" >&2; exit 1; }
  LLAMA_BIN=$(ANJEON_CACHE_DIR="$CACHE" "$(dirname "$0")/llama_cpp.sh")
fi

start=$(date +%s%N)
"$ANJEON" eval --tasks "$TASK" --limit "$N" --model "$MODEL" --threads "$THREADS" \
  --data-root "$DATA_ROOT" --out "$OUT" --json >"$OUT/ours.json"
ours_ms=$(( ($(date +%s%N) - start) / 1000000 ))

"$LLAMA_BIN/llama-server" -m "$MODEL" -t "$THREADS" -c 4096 --port "$PORT" --host 127.0.0.1 \
  -np 1 --no-webui ${LLAMA_ARGS:-} >"$OUT/llama-server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  sleep 0.5
done

python3 - "$OUT/samples/$TASK.jsonl" "$PORT" "$ours_ms" "$TASK" "$MODEL" "$OUT/pairs.jsonl" <<'PY'
import json, sys, time, urllib.request

samples, port, ours_s, task, model = sys.argv[1], sys.argv[2], float(sys.argv[3]) / 1000, sys.argv[4], sys.argv[5]
pairs = open(sys.argv[6], "w", encoding="utf-8")  # per choice: both scores, for a closer look
base = f"http://127.0.0.1:{port}"

def post(path, body):
    req = urllib.request.Request(base + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())

def tokenize(text):
    return post("/tokenize", {"content": text, "add_special": True})["tokens"]

def encode_pair(context, continuation):
    # lm-evaluation-harness `_encode_pair`: trailing whitespace moves onto the continuation
    n = len(context) - len(context.rstrip())
    if n:
        continuation = context[-n:] + continuation
        context = context[:-n]
    ctx = tokenize(context)
    whole = tokenize(context + continuation)
    return ctx, whole[len(ctx):]

ASCII = post("/tokenize", {"content": "a", "add_special": False})["tokens"][0]

def step(prompt, forced, n_probs):
    return post("/completion", {
        "prompt": prompt, "n_predict": 1, "n_probs": n_probs, "post_sampling_probs": False,
        "logit_bias": [[forced, 1000.0]], "temperature": 0, "cache_prompt": True,
    }).get("completion_probabilities")

def score(ctx, cont):
    """Summed log-probability of `cont` after `ctx`, and whether every token is the argmax."""
    total, greedy, prompt = 0.0, True, list(ctx)
    for tok in cont:
        probs = step(prompt, tok, 1)
        if probs:
            assert probs[0]["id"] == tok, (probs[0]["id"], tok)
            lp, top = probs[0]["logprob"], probs[0]["top_logprobs"][0]["id"]
        else:
            # A byte token that is not a whole character on its own: the server reports no
            # probabilities for it, so force a complete token and find it among the rest.
            for n in (4096, 1 << 20):
                found = [t for t in step(prompt, ASCII, n)[0]["top_logprobs"]]
                match = [t["logprob"] for t in found if t["id"] == tok]
                if match:
                    lp, top = match[0], found[0]["id"]
                    break
            else:
                raise SystemExit(f"token {tok} has no probability in llama-server's answer")
        total += lp
        greedy &= top == tok
        prompt.append(tok)
    return total, greedy

diffs, same_tokens, n_choices = [], 0, 0
acc = {"ours": [], "llama_cpp": []}
preds = {"ours": [], "llama_cpp": []}
greedy_agree = 0
t0 = time.time()
for line in open(samples, encoding="utf-8"):
    rec = json.loads(line)
    theirs = []
    for c in rec["continuations"]:
        ctx, cont = encode_pair(rec["context"], c["continuation"])
        lp, greedy = score(ctx, cont)
        theirs.append(lp)
        pairs.write(json.dumps({"doc": rec["doc_id"], "continuation": c["continuation"], "tokens": len(cont),
                                "ours": c["logprob"], "llama_cpp": lp}, ensure_ascii=False) + "\n")
        diffs.append(abs(lp - c["logprob"]))
        same_tokens += len(cont) == c["tokens"]
        greedy_agree += greedy == c["is_greedy"]
        n_choices += 1
    for ans in rec["answers"]:
        idx = ans["continuations"]
        for name, lps in (("ours", [rec["continuations"][i]["logprob"] for i in idx]), ("llama_cpp", [theirs[i] for i in idx])):
            pred = max(range(len(lps)), key=lambda i: lps[i])
            acc[name].append(1.0 if pred in ans["gold"] else 0.0)
            preds[name].append(pred)
        break  # the first answer set is the task's accuracy
peer_s = time.time() - t0
diffs.sort()
mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")
print(json.dumps({
    "task": task, "model": model, "documents": len(acc["ours"]), "choices": n_choices,
    "abs_diff_nats": {"max": round(diffs[-1], 4), "mean": round(mean(diffs), 4),
                      "p95": round(diffs[int(0.95 * (len(diffs) - 1))], 4)},
    "same_token_count": f"{same_tokens}/{n_choices}",
    "same_greedy_flag": f"{greedy_agree}/{n_choices}",
    "acc": {"ours": round(mean(acc["ours"]), 4), "llama_cpp": round(mean(acc["llama_cpp"]), 4)},
    "same_prediction": sum(a == b for a, b in zip(preds["ours"], preds["llama_cpp"])),
    "seconds": {"ours_eval_incl_load": round(ours_s, 1), "llama_cpp_token_by_token": round(peer_s, 1)},
}, indent=2))
PY
