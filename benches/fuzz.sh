#!/usr/bin/env bash
# Fuzzes every parser and the API's JSON for a bounded time each (libFuzzer via cargo-fuzz,
# nightly Rust). Installs cargo-fuzz into the anjeon cache the first time.
#
#   benches/fuzz.sh                          # every target, 60 s each
#   FUZZ_SECONDS=600 FUZZ_TARGETS="pdf hwpx" benches/fuzz.sh
#
# Seeds: the real corpus files of each format plus ingest/tests/crashers/<parser>/. New
# coverage is kept in fuzz/corpus/<target>/ (ignored by git). A crash is written to
# fuzz/artifacts/<target>/; copy it into ingest/tests/crashers/<parser>/ so that
# `cargo test -p anjeon-ingest --test crashers` keeps it fixed. Exit status 1 when a target
# crashed, 2 when nightly is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${ANJEON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/anjeon}
TOOLS=$CACHE/tools
export PATH="$TOOLS/bin:$PATH"
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-"pdf hwpx hwp statute_markdown statute_law mfds_json api_json"}
DOCS=${ANJEON_CORPUS:-$ROOT/../shared/corpus/docs}

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh needs a nightly toolchain: rustup toolchain install nightly" >&2
    exit 2
fi
if ! command -v cargo-fuzz >/dev/null; then
    echo "installing cargo-fuzz into $TOOLS"
    cargo install --locked cargo-fuzz --root "$TOOLS"
fi

# parser name (crashers folder) and seed files of each target
parser_of() {
    case $1 in
        statute_markdown) echo statute-markdown ;;
        statute_law) echo statute-law ;;
        mfds_json) echo json ;;
        api_json) echo api ;;
        *) echo "$1" ;;
    esac
}
seed() {
    local target=$1 dir=$ROOT/fuzz/corpus/$1
    mkdir -p "$dir"
    case $target in
        pdf) cp -n "$DOCS"/pdf/정오표_*.pdf "$dir"/ 2>/dev/null || true ;;
        hwpx) cp -n "$DOCS"/hwp/*.hwpx "$dir"/ 2>/dev/null || true ;;
        hwp) cp -n "$DOCS"/hwp/*.hwp "$dir"/ 2>/dev/null || true ;;
        statute_markdown) cp -n "$ROOT"/ingest/tests/fixtures/*.md "$DOCS"/statutes/식품위생분야종사자의건강진단규칙.md "$dir"/ 2>/dev/null || true ;;
        statute_law) cp -n "$ROOT"/ingest/tests/fixtures/*.xml "$ROOT"/ingest/tests/fixtures/*.json "$dir"/ 2>/dev/null || true ;;
        mfds_json) cp -n "$DOCS"/mfds_data/*.json "$dir"/ 2>/dev/null || true ;;
        api_json)
            # first byte picks the route (see fuzz/fuzz_targets/api_json.rs)
            printf '\000{"question":"건강진단은 언제 받나요?","history":[{"question":"a","answer":"b"}],"stream":false}' > "$dir/ask"
            printf '\001{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"stop":["a"]}' > "$dir/chat"
            printf '\002{"model":"m","prompt":"x","echo":true,"logprobs":1,"max_tokens":0}' > "$dir/completion"
            printf '\003{"model":"m","input":["query: a","b"]}' > "$dir/embeddings" ;;
    esac
}

crashed=()
summary=()
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
for target in $TARGETS; do
    seed "$target"
    extra=()
    crashers=$ROOT/ingest/tests/crashers/$(parser_of "$target")
    [ -d "$crashers" ] && extra+=("$crashers")
    features=()
    [ "$target" = api_json ] && features=(--features api)
    echo "== $target: ${SECONDS_EACH}s"
    status=ok
    if ! cargo +nightly fuzz run "${features[@]}" "$target" "$ROOT/fuzz/corpus/$target" "${extra[@]}" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        2>&1 | tee "$logs/$target"; then
        crashed+=("$target")
        status=CRASH
    fi
    final_stat() { grep -m1 "^stat::$1:" "$logs/$target" | awk '{print $2}'; }
    cov=$(grep -o 'cov: [0-9]*' "$logs/$target" | tail -1 | awk '{print $2}')
    summary+=("$(printf '%-18s %10s %8s %8s %8s %6s  %s' "$target" "$(final_stat number_of_executed_units)" \
        "$(final_stat average_exec_per_sec)" "${cov:-?}" "$(final_stat new_units_added)" "$(final_stat peak_rss_mb)" "$status")")
done
printf '\n%-18s %10s %8s %8s %8s %6s  %s\n' target runs exec/s edges new-units rss-MB result
printf '%s\n' "${summary[@]}"
if [ ${#crashed[@]} -gt 0 ]; then
    echo "crashes in: ${crashed[*]} (see fuzz/artifacts/<target>/)" >&2
    exit 1
fi
echo "no crashes"
