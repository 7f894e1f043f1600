#!/usr/bin/env bash
# Builds the opsdeck image without pulling a base image: a statically linked binary
# (x86_64-unknown-linux-gnu, crt-static) on `FROM scratch`.
#   deploy/build-image.sh [IMAGE]        IMAGE defaults to opsdeck:latest
# PROFILE=dev builds a debug binary without debug info (faster; what the test uses).
set -euo pipefail
cd "$(dirname "$0")/.."
image="${1:-opsdeck:latest}"
profile="${PROFILE:-release}"
target=x86_64-unknown-linux-gnu
target_dir="${CARGO_TARGET_DIR:-target}"
dir=release
if [ "$profile" = dev ]; then
  dir=debug
  export CARGO_PROFILE_DEV_DEBUG=0
fi
RUSTFLAGS="-C target-feature=+crt-static" "${CARGO:-cargo}" build --locked --profile "$profile" \
  --target "$target" --bin opsdeck
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp "$target_dir/$target/$dir/opsdeck" "$ctx/opsdeck"
mkdir -p "$ctx/skel/exports" "$ctx/skel/data" "$ctx/skel/tmp"
docker build -q -f deploy/Dockerfile -t "$image" "$ctx"
