#!/usr/bin/env bash
# Installs Apache Kafka's jars (the version pinned in scripts/kafka/pom.xml) from Maven Central
# into .kafka/libs, for the tests and benchmarks. Idempotent: when .kafka/libs already holds the
# jars of this pom.xml, nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."

pom=scripts/kafka/pom.xml
stamp=.kafka/installed.sha256
want=$(sha256sum "$pom" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -n "$(ls .kafka/libs/kafka_2.13-*.jar 2>/dev/null)" ]; then
  exit 0
fi

if [ -z "${JAVA_HOME:-}" ] && command -v javac >/dev/null 2>&1; then
  JAVA_HOME=$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")
  export JAVA_HOME
fi
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")
echo "installing Apache Kafka $version jars from Maven Central into .kafka/libs"
rm -rf .kafka/libs.new
mkdir -p .kafka
mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$PWD/.kafka/libs.new"
rm -rf .kafka/libs
mv .kafka/libs.new .kafka/libs
echo "$version" > .kafka/VERSION
echo "$want" > "$stamp"
