#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz, libFuzzer) of the broker's request decoding and the
# mirror's batch preparation, each for a bounded time, from the committed seed corpus.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]
#       (default 600 s each, for broker_request and mirror_prepare)
#
# Needs Rust's nightly toolchain (cargo fuzz builds with sanitizer flags) and cargo-fuzz from
# crates.io (installed when missing). Each run starts from fuzz/corpus/<target> (committed;
# written by `cargo +nightly run --manifest-path fuzz/Cargo.toml --bin seeds -- fuzz/corpus`)
# copied into fuzz/work/<target> (ignored), which grows as libFuzzer finds new paths. An input
# that panics, allocates more than 1 GiB at once, takes the process past 1 GiB of RSS or runs
# longer than 10 s is a crash, saved in fuzz/artifacts/<target>/. Prints, per target, the
# inputs run, the corpus size and the crashes; exits non-zero when there is a crash.
# FUZZ_SANITIZER=none runs without AddressSanitizer (several times the inputs per second; the
# C codecs' memory errors then go unseen and the single-allocation limit is not enforced).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(broker_request mirror_prepare)

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzzing needs the nightly toolchain (rustup toolchain install nightly)" >&2
  exit 2
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked

sanitizer="${FUZZ_SANITIZER:-address}"
cargo +nightly fuzz build --fuzz-dir fuzz --sanitizer "$sanitizer"
status=0
for target in "${targets[@]}"; do
  work="fuzz/work/$target"
  mkdir -p "$work" "fuzz/artifacts/$target"
  cp -n fuzz/corpus/"$target"/* "$work"/
  log="fuzz/work/$target.log"
  started=$(date +%s)
  if ! cargo +nightly fuzz run --fuzz-dir fuzz --sanitizer "$sanitizer" "$target" "$work" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=1024 \
      -print_final_stats=1 >"$log" 2>&1; then
    status=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  crashes=$(find "fuzz/artifacts/$target" -type f | wc -l)
  corpus=$(find "$work" -type f | wc -l)
  echo "$target: $runs inputs in $(( $(date +%s) - started )) s, corpus $corpus, crashes $crashes"
  [ "$crashes" -eq 0 ] || { status=1; tail -40 "$log"; }
done
exit "$status"
