#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need first: headless Chromium, which the
# report test uses to render report.html to a PNG, and kubernetes-validate for the manifests.
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
# Manifests first (seconds, and a broken manifest is the cheapest failure to report): every
# YAML file under manifests/ validates offline against the Kubernetes 1.37 schemas of the PyPI
# package kubernetes-validate (custom resources against crds/yaml/); see manifests/validate.py.
if ! python3 -c 'import kubernetes_validate' >/dev/null 2>&1; then
  python3 -m pip install --quiet kubernetes-validate \
    || { echo "error: cannot install kubernetes-validate (pip install kubernetes-validate)" >&2; exit 1; }
fi
python3 manifests/validate.py
# Release mode: the end-to-end tests replay real traces, which debug builds make slow.
cargo test --workspace --release
