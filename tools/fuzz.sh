#!/usr/bin/env bash
# Run the cargo-fuzz targets for SECONDS each: `tools/fuzz.sh SECONDS [TARGET...]`.
# The translate_* targets run for a third of SECONDS (at least 1 s; FUZZ_TRANSLATE_SECONDS
# overrides): small inputs, shallow code, and they keep `make fuzz-smoke` short.
# Installs cargo-fuzz if missing. Uses the nightly toolchain with AddressSanitizer when one
# is installed; otherwise the stable toolchain with RUSTC_BOOTSTRAP=1 and no sanitizer
# (Rust's own bounds and overflow checks still catch panics; the targets are safe Rust).
# FUZZ_TOOLCHAIN=stable forces the second path.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-15}; shift || true
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(body_scan body_chunks config_parse translate_request translate_response translate_stream)
translate_seconds=${FUZZ_TRANSLATE_SECONDS:-$(( seconds / 3 > 0 ? seconds / 3 : 1 ))}

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
if [ "${FUZZ_TOOLCHAIN:-}" != stable ] && rustup run nightly rustc --version >/dev/null 2>&1; then
  fuzz=(cargo +nightly fuzz); sanitizer=()
else
  export RUSTC_BOOTSTRAP=1; fuzz=(cargo fuzz); sanitizer=(--sanitizer none)
fi

for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  log=$(mktemp)
  case $t in
    translate_*) secs=$translate_seconds; dict=translate.dict ;;
    *) secs=$seconds; dict=body.dict ;;
  esac
  if ! "${fuzz[@]}" run "${sanitizer[@]}" "$t" "corpus/$t" "seeds/$t" -- \
       -max_total_time="$secs" -max_len=65536 -dict="$dict" >"$log" 2>&1; then
    tail -n 40 "$log"; echo "fuzz target $t FAILED (crash input under fuzz/artifacts/$t)"; exit 1
  fi
  runs=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -n 1)
  echo "fuzz $t: ${runs:-finished} — no crashes"
  rm -f "$log"
done
