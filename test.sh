#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need first: headless Chromium, which the
# report test uses to render report.html to a PNG.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "warning: could not install chromium; the report screenshot test will fail" >&2
  else
    echo "warning: chromium is not installed and cannot be installed here" >&2
  fi
fi
# Release mode: the end-to-end tests replay real traces, which debug builds make slow.
cargo test --workspace --release
