#!/bin/sh
# Writes the tern.toml passed in TERN_CONFIG (as the cloud modules do) to /etc/tern/tern.toml,
# then runs tern with the image's arguments (`run --config /etc/tern/tern.toml` by default).
set -eu
if [ -n "${TERN_CONFIG:-}" ]; then
  umask 027
  printf '%s\n' "$TERN_CONFIG" > /etc/tern/tern.toml
fi
exec /usr/local/bin/tern "$@"
