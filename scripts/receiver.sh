# Sourced by the scripts that stream to our receiver (demo, benchmarks, compat).
# start_receiver TIMEOUT_S OUTFILE [MORE OPTIONS]: starts target/debug/examples/mock_sfu in the background with its
# output in OUTFILE, waits (at most 5 s) for the WHIP URL it prints, and sets $sfu (its pid) and $url.
start_receiver() {
  target/debug/examples/mock_sfu --timeout "$1" "${@:3}" >"$2" &
  sfu=$!
  for _ in $(seq 100); do grep -q '^whip-url ' "$2" && break; sleep 0.05; done
  url=$(sed -n 's/^whip-url //p' "$2")
}
