//! What the tests and the benchmarks both need to run Apache Kafka's JVMs: where the jars
//! `scripts/install-kafka.sh` installed are, which Java, a Log4j 2 configuration, and the
//! watchdog shell that kills a JVM when the process that started it is gone. Included by both
//! with `#[path]` (benchmarks cannot import test modules).

use std::path::{Path, PathBuf};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Apache Kafka version of `.kafka/libs` (written by the install script).
pub fn kafka_version() -> String {
    std::fs::read_to_string(repo_root().join(".kafka/VERSION")).map(|v| v.trim().to_string()).unwrap_or_else(|_| "unknown".into())
}

/// Where the jars are: `TERN_KAFKA_LIBS`, or `.kafka/libs` in the checkout; an error that says
/// how to install them when they are missing.
pub fn kafka_libs() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("TERN_KAFKA_LIBS") {
        return Ok(PathBuf::from(p));
    }
    let p = repo_root().join(".kafka/libs");
    if p.join(format!("kafka_2.13-{}.jar", kafka_version())).exists() {
        Ok(p)
    } else {
        Err(format!("Apache Kafka's jars are missing from {}: run the README's test command (scripts/test.sh) or scripts/install-kafka.sh, which install them", p.display()))
    }
}

pub fn java() -> PathBuf {
    match std::env::var_os("JAVA_HOME") {
        Some(home) if Path::new(&home).join("bin/java").exists() => Path::new(&home).join("bin/java"),
        _ => PathBuf::from("java"),
    }
}

/// Log4j 2: `level` and up, to the process's stderr (which goes to its log file).
pub fn log4j2_xml(level: &str) -> String {
    format!(
        r#"<Configuration status="WARN">
  <Appenders>
    <Console name="STDERR" target="SYSTEM_ERR"><PatternLayout pattern="[%d] %p %m (%c)%n"/></Console>
  </Appenders>
  <Loggers>
    <Logger name="org.apache.kafka.clients.NetworkClient" level="ERROR"/>
    <Root level="{level}"><AppenderRef ref="STDERR"/></Root>
  </Loggers>
</Configuration>
"#
    )
}

/// Runs `"$@"` and kills it when the process `$1` is gone, then removes `$2` (unless empty).
/// The child's pid goes to `$3`, so a caller can read `/proc` or kill -9 the JVM itself.
pub const WATCHDOG: &str = r#"parent=$1; dir=$2; pidfile=$3; shift 3
"$@" & child=$!
echo "$child" > "$pidfile"
while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.5; done
kill -9 "$child" 2>/dev/null
wait "$child" 2>/dev/null
if [ -n "$dir" ] && ! kill -0 "$parent" 2>/dev/null; then rm -rf "$dir"; fi
"#;
