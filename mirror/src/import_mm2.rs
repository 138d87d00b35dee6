//! `tern import-mm2`: a MirrorMaker 2 `mm2.properties` becomes the equivalent `tern.toml`,
//! with a list of the keys that could not be carried over and why.

use std::collections::BTreeMap;

/// The converted configuration and what was left behind.
#[derive(Debug)]
pub struct Imported {
    pub toml: String,
    /// `key: reason` for every MM2 key with no Tern equivalent (or a different meaning).
    pub not_carried: Vec<String>,
}

/// Java properties: `key=value` or `key: value`, `#`/`!` comments, `\` line continuations.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!')) {
            continue;
        }
        if let Some(stripped) = line.strip_suffix('\\') {
            pending.push_str(stripped);
            continue;
        }
        pending.push_str(line);
        let entry = std::mem::take(&mut pending);
        let split = entry.find(['=', ':']).unwrap_or(entry.len());
        let (k, v) = entry.split_at(split);
        let v = v.get(1..).unwrap_or("");
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    out
}

fn list(v: &str) -> Vec<String> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| toml_string(i)).collect();
    format!("[{}]", quoted.join(", "))
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The `username` or `password` option of a JAAS login module line.
fn jaas_option(jaas: &str, option: &str) -> Option<String> {
    let start = jaas.find(&format!("{option}="))? + option.len() + 1;
    let rest = jaas[start..].trim_start();
    let value = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => rest.split([' ', ';']).next()?,
    };
    Some(value.to_string())
}

/// The environment variable a converted cluster's password is expected in.
pub fn password_env_name(alias: &str) -> String {
    let upper: String = alias.chars().map(|ch| if ch.is_ascii_alphanumeric() { ch.to_ascii_uppercase() } else { '_' }).collect();
    format!("TERN_{upper}_SASL_PASSWORD")
}

/// `security_protocol`, `[clusters.<alias>.tls]` and `[clusters.<alias>.sasl]` from MM2's
/// client security keys. Secrets are never copied: an inline JAAS password becomes a
/// `password_env` reference; key store passwords are reported as not carried.
fn cluster_security(
    alias: &str,
    setting: impl Fn(&str, &mut Vec<String>) -> Option<String>,
    used: &mut Vec<String>,
    not_carried: &mut Vec<String>,
) -> String {
    use tern_kafka::security::SecurityProtocol;
    let Some(protocol_text) = setting("security.protocol", used) else { return String::new() };
    let Ok(protocol) = protocol_text.parse::<SecurityProtocol>() else {
        not_carried.push(format!("{alias}.security.protocol: unknown protocol {protocol_text:?}"));
        return String::new();
    };
    let mut out = String::new();
    let mut tls = String::new();
    let mut sasl = String::new();
    if protocol.uses_sasl() {
        // Kafka's default mechanism is GSSAPI.
        let mechanism = setting("sasl.mechanism", used).unwrap_or_else(|| "GSSAPI".into());
        let jaas = setting("sasl.jaas.config", used).unwrap_or_default();
        match mechanism.parse::<tern_kafka::sasl::Mechanism>() {
            Err(_) => {
                not_carried.push(format!("{alias}.security.protocol: SASL mechanism {mechanism} is not supported (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER are); the cluster was converted without security"));
                return String::new();
            }
            Ok(tern_kafka::sasl::Mechanism::OAuthBearer) => {
                let var = password_env_name(alias).replace("_SASL_PASSWORD", "_OAUTH_TOKEN");
                sasl += &format!("mechanism = \"OAUTHBEARER\"\n# MM2 obtained tokens through its login callback handler; give Tern the token\n# in this variable, or use token_command = \"...\" to run a command that prints one.\ntoken_env = \"{var}\"\n");
            }
            Ok(m) => {
                let username = jaas_option(&jaas, "username");
                if username.is_none() {
                    not_carried.push(format!("{alias}.sasl.jaas.config: no username found; set clusters.{alias}.sasl.username"));
                }
                sasl += &format!("mechanism = \"{}\"\nusername = {}\n", m.name(), toml_string(username.as_deref().unwrap_or("SET-ME")));
                let var = password_env_name(alias);
                if jaas_option(&jaas, "password").is_some() {
                    sasl += &format!("# mm2.properties had this password inline ({alias}.sasl.jaas.config); Tern does not copy it.\n# Export it as {var} (or use password_file = \"...\").\n");
                }
                sasl += &format!("password_env = \"{var}\"\n");
            }
        }
    }
    if protocol.uses_tls() {
        if let Some(store) = setting("ssl.truststore.location", used) {
            if is_pem(&store, setting("ssl.truststore.type", used).as_deref()) {
                tls += &format!("ca_file = {}\n", toml_string(&store));
            } else {
                tls += "# MM2 used a JKS/PKCS12 trust store; convert it to PEM and set ca_file:\n#   keytool -exportcert -rfc -keystore <store> -alias <ca> > ca.pem\n";
                not_carried.push(format!("{alias}.ssl.truststore.location: {store} is not PEM; convert it and set clusters.{alias}.tls.ca_file"));
            }
        }
        if let Some(store) = setting("ssl.keystore.location", used) {
            if is_pem(&store, setting("ssl.keystore.type", used).as_deref()) {
                // A Kafka PEM key store holds the certificate chain and the key in one file.
                tls += &format!("cert_file = {0}\nkey_file = {0}\n", toml_string(&store));
            } else {
                not_carried.push(format!("{alias}.ssl.keystore.location: {store} is not PEM; export the certificate and key as PEM and set clusters.{alias}.tls.cert_file and key_file"));
            }
        }
        if setting("ssl.endpoint.identification.algorithm", used).is_some_and(|v| v.trim().is_empty()) {
            not_carried.push(format!("{alias}.ssl.endpoint.identification.algorithm: Tern always checks the broker's name; set clusters.{alias}.tls.server_name if the certificates name another host"));
        }
    }
    out += &format!("security_protocol = \"{}\"\n", protocol.name());
    if protocol.uses_tls() {
        out += &format!("[clusters.{alias}.tls]\n{tls}");
    }
    if !sasl.is_empty() {
        out += &format!("[clusters.{alias}.sasl]\n{sasl}");
    }
    out
}

fn is_pem(path: &str, store_type: Option<&str>) -> bool {
    store_type.is_some_and(|t| t.eq_ignore_ascii_case("PEM")) || [".pem", ".crt", ".cer"].iter().any(|ext| path.to_ascii_lowercase().ends_with(ext))
}

pub fn import(text: &str) -> Result<Imported, String> {
    let props = parse_properties(text);
    let mut used: Vec<String> = Vec::new();
    let mut not_carried = Vec::new();
    let get = |k: &str, used: &mut Vec<String>| -> Option<String> {
        let v = props.get(k).cloned();
        if v.is_some() {
            used.push(k.to_string());
        }
        v
    };
    let clusters = list(&get("clusters", &mut used).ok_or("mm2.properties has no `clusters` key")?);
    if clusters.is_empty() {
        return Err("`clusters` is empty".into());
    }
    let mut toml = String::from("# Converted from mm2.properties by `tern import-mm2`.\n\n");
    for c in &clusters {
        let bootstrap = get(&format!("{c}.bootstrap.servers"), &mut used).ok_or_else(|| format!("no {c}.bootstrap.servers"))?;
        toml += &format!("[clusters.{c}]\nbootstrap = {}\n", toml_string(&bootstrap));
        // Client settings of a cluster: `{alias}.key`, else the top-level `key`.
        let cluster_setting = |key: &str, used: &mut Vec<String>| get(&format!("{c}.{key}"), used).or_else(|| get(key, used));
        toml += &cluster_security(c, cluster_setting, &mut used, &mut not_carried);
        toml += "\n";
    }
    let naming = match get("replication.policy.class", &mut used).as_deref() {
        None => "prefix",
        Some(p) if p.ends_with("DefaultReplicationPolicy") => "prefix",
        Some(p) if p.ends_with("IdentityReplicationPolicy") => "identity",
        Some(p) => {
            not_carried.push(format!("replication.policy.class: {p} is a custom policy; converted as prefix naming"));
            "prefix"
        }
    };
    if let Some(sep) = get("replication.policy.separator", &mut used) {
        if sep != "." {
            not_carried.push(format!("replication.policy.separator: Tern prefixes with \".\", not {sep:?}; remote topic names will differ"));
        }
    }
    // Flow-level keys fall back to the top-level defaults, as in MM2.
    let setting = |flow: &str, key: &str, used: &mut Vec<String>| get(&format!("{flow}.{key}"), used).or_else(|| get(key, used));
    // A dedicated MM2 cluster's exactly-once setting covers every flow.
    let exactly_once = get("exactly.once.source.support", &mut used).is_some_and(|v| v.trim() == "enabled");
    let mut flows = 0;
    for s in &clusters {
        for t in &clusters {
            if s == t {
                continue;
            }
            let name = format!("{s}->{t}");
            if setting(&name, "enabled", &mut used).as_deref() != Some("true") {
                continue;
            }
            flows += 1;
            let topics = setting(&name, "topics", &mut used).map(|v| list(&v)).unwrap_or_else(|| vec![".*".into()]);
            let topics_exclude = setting(&name, "topics.exclude", &mut used).or_else(|| setting(&name, "topics.blacklist", &mut used)).map(|v| list(&v)).unwrap_or_default();
            let groups = setting(&name, "groups", &mut used).map(|v| list(&v)).unwrap_or_else(|| vec![".*".into()]);
            let groups_exclude = setting(&name, "groups.exclude", &mut used).or_else(|| setting(&name, "groups.blacklist", &mut used)).map(|v| list(&v)).unwrap_or_default();
            // MM2 does not sync group offsets unless asked; Tern's default is to sync.
            let sync = setting(&name, "sync.group.offsets.enabled", &mut used).as_deref() == Some("true");
            let heartbeats = setting(&name, "emit.heartbeats.enabled", &mut used).as_deref() != Some("false");
            toml += &format!("[[flows]]\nsource = {}\ntarget = {}\ntopics = {}\n", toml_string(s), toml_string(t), toml_list(&topics));
            if !topics_exclude.is_empty() {
                toml += &format!("topics_exclude = {}\n", toml_list(&topics_exclude));
            }
            toml += &format!("groups = {}\n", toml_list(&groups));
            if !groups_exclude.is_empty() {
                toml += &format!("groups_exclude = {}\n", toml_list(&groups_exclude));
            }
            toml += &format!("naming = \"{naming}\"\nsync_group_offsets = {sync}\nemit_heartbeats = {heartbeats}\n");
            if exactly_once {
                toml += "delivery = \"exactly-once\"\n";
            }
            if let Some(secs) = setting(&name, "emit.checkpoints.interval.seconds", &mut used).and_then(|v| v.parse::<u64>().ok()) {
                toml += &format!("checkpoint_interval = \"{secs}s\"\n");
            }
            toml += "\n";
        }
    }
    if flows == 0 {
        return Err("no flow is enabled (no `A->B.enabled = true`)".into());
    }
    let mut mirror = String::new();
    if let Some(secs) = get("refresh.topics.interval.seconds", &mut used).and_then(|v| v.parse::<u64>().ok()) {
        mirror += &format!("topic_refresh_interval = \"{secs}s\"\n");
    }
    // The consumer's fetch sizes, set for all clusters (`consumer.`), one (`A.consumer.`) or a
    // flow (`A->B.consumer.`): Tern has one setting for every flow, so the largest is taken.
    for (mm2_key, tern_key) in [("consumer.fetch.max.bytes", "fetch_max_bytes"), ("consumer.max.partition.fetch.bytes", "partition_max_bytes")] {
        let keys: Vec<String> = props.keys().filter(|k| *k == mm2_key || k.ends_with(&format!(".{mm2_key}"))).cloned().collect();
        let largest = keys.iter().filter_map(|k| props.get(k).and_then(|v| v.trim().parse::<u64>().ok())).max();
        if let Some(bytes) = largest {
            used.extend(keys);
            mirror += &format!("{tern_key} = {bytes}\n");
        }
    }
    if !mirror.is_empty() {
        toml += &format!("[mirror]\n{mirror}\n");
    }
    let reasons: &[(&str, &str)] = &[
        ("topic.replication.factor", "Tern's internal topics get the target cluster's default replication factor"),
        ("storage.replication.factor", "Tern keeps no Kafka Connect topics"),
        ("sync.topic.configs.enabled", "Tern always copies topic configs (minus its documented exclusion list)"),
        ("sync.group.offsets.interval.seconds", "Tern syncs group offsets with every checkpoint (checkpoint_interval)"),
        ("replication.factor", "remote topics get the target cluster's default replication factor"),
        ("tasks.max", "scale out by starting more `tern run` workers with the same config"),
        ("offset.lag.max", "Tern's offset translation is exact; there is no lag to tune"),
        ("ssl.truststore.password", "Tern reads PEM files, which have no store password"),
        ("ssl.keystore.password", "Tern reads PEM files, which have no store password"),
        ("ssl.key.password", "Tern reads unencrypted PEM keys; decrypt the key (openssl pkey) and protect the file instead"),
        ("ssl.truststore.type", "Tern reads PEM files"),
        ("ssl.keystore.type", "Tern reads PEM files"),
    ];
    for k in props.keys() {
        if used.contains(k) {
            continue;
        }
        let base = k.rsplit_once("->").map(|(_, r)| r.split_once('.').map(|(_, k)| k).unwrap_or(r)).unwrap_or(k);
        let base = clusters.iter().find_map(|c| base.strip_prefix(&format!("{c}."))).unwrap_or(base);
        let reason = reasons.iter().find(|(key, _)| base == *key || base.ends_with(key)).map(|(_, r)| *r).unwrap_or("no Tern equivalent");
        not_carried.push(format!("{k}: {reason}"));
    }
    Ok(Imported { toml, not_carried })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MM2: &str = r#"
# MirrorMaker 2, active/active
clusters = us-east, eu-west
us-east.bootstrap.servers = 10.0.0.1:9092,10.0.0.2:9092
eu-west.bootstrap.servers = 10.1.0.1:9092

us-east->eu-west.enabled = true
us-east->eu-west.topics = orders.*, payments
eu-west->us-east.enabled = true
topics.exclude = .*[\-\.]internal, .*\.replica, __.*
groups = billing.*, \
   shipping
sync.group.offsets.enabled = true
emit.checkpoints.interval.seconds = 10
replication.factor = 3
tasks.max = 4
us-east.security.protocol = SASL_SSL
refresh.topics.interval.seconds = 30
exactly.once.source.support = enabled
"#;

    #[test]
    fn converts_flows_filters_and_settings_and_lists_what_it_left() {
        let out = import(MM2).expect("import");
        let v = crate::config::parse(&out.toml).unwrap_or_else(|e| panic!("{e}\n{}", out.toml));
        assert_eq!(v.flows.len(), 2);
        let f = v.flows.iter().find(|f| f.name() == "us-east->eu-west").expect("flow");
        assert!(f.topics.iter().any(|r| r.is_match("orders.v1")) && f.topics.iter().any(|r| r.is_match("payments")));
        assert!(f.topics_exclude.iter().any(|r| r.is_match("a.internal")));
        assert!(f.groups.iter().any(|r| r.is_match("shipping")) && !f.groups.iter().any(|r| r.is_match("marketing")));
        assert!(f.sync_group_offsets);
        assert_eq!(f.delivery, crate::config::Delivery::ExactlyOnce);
        assert_eq!(f.checkpoint_interval, std::time::Duration::from_secs(10));
        let back = v.flows.iter().find(|f| f.name() == "eu-west->us-east").expect("flow");
        assert!(back.topics[0].is_match("anything"), "MM2's default topic filter is everything");
        assert_eq!(v.config.mirror.topic_refresh_interval, std::time::Duration::from_secs(30));
        let left = out.not_carried.join("\n");
        for k in ["replication.factor", "tasks.max", "us-east.security.protocol"] {
            assert!(left.contains(k), "{k} should be reported:\n{left}");
        }
    }

    #[test]
    fn security_keys_become_references_never_secrets() {
        let mm2 = r#"
clusters = src, dst
src.bootstrap.servers = 10.0.0.1:9093
dst.bootstrap.servers = 10.1.0.1:9093
src->dst.enabled = true
src.security.protocol = SASL_SSL
src.sasl.mechanism = SCRAM-SHA-512
src.sasl.jaas.config = org.apache.kafka.common.security.scram.ScramLoginModule required username="mirror" password="hunter2-inline";
src.ssl.truststore.location = /etc/kafka/ca.pem
src.ssl.truststore.type = PEM
dst.security.protocol = SSL
dst.ssl.truststore.location = /etc/kafka/truststore.jks
dst.ssl.truststore.password = changeit-store
dst.ssl.keystore.location = /etc/kafka/client.pem
dst.ssl.keystore.type = PEM
"#;
        let out = import(mm2).expect("import");
        let all = format!("{}\n{}", out.toml, out.not_carried.join("\n"));
        assert!(!all.contains("hunter2-inline") && !all.contains("changeit-store"), "a secret leaked:\n{all}");
        let v = crate::config::parse(&out.toml).unwrap_or_else(|e| panic!("{e}\n{}", out.toml));
        let src = &v.config.clusters["src"];
        assert_eq!(src.security_protocol.as_deref(), Some("SASL_SSL"));
        let sasl = src.sasl.as_ref().expect("sasl");
        assert_eq!((sasl.mechanism.as_str(), sasl.username.as_deref()), ("SCRAM-SHA-512", Some("mirror")));
        assert_eq!(sasl.password_env.as_deref(), Some("TERN_SRC_SASL_PASSWORD"));
        assert!(out.toml.contains("# mm2.properties had this password inline"), "{}", out.toml);
        assert_eq!(src.tls.as_ref().and_then(|t| t.ca_file.as_ref()).map(|p| p.display().to_string()).as_deref(), Some("/etc/kafka/ca.pem"));
        let dst = v.config.clusters["dst"].tls.as_ref().expect("tls");
        assert!(dst.ca_file.is_none() && dst.cert_file.is_some() && dst.key_file.is_some());
        let left = out.not_carried.join("\n");
        assert!(left.contains("dst.ssl.truststore.location") && left.contains("dst.ssl.truststore.password"), "{left}");
    }

    #[test]
    fn refuses_what_it_cannot_convert() {
        assert!(import("a.bootstrap.servers = x:1").is_err());
        assert!(import("clusters = a, b\na.bootstrap.servers = x:1\nb.bootstrap.servers = y:1\n").is_err(), "no flow enabled");
    }

    #[test]
    fn consumer_fetch_sizes_become_the_mirror_settings() {
        let mm2 = "clusters = a, b\na.bootstrap.servers = 127.0.0.1:1\nb.bootstrap.servers = 127.0.0.1:2\na->b.enabled = true\n\
                   a.consumer.fetch.max.bytes = 104857600\nconsumer.fetch.max.bytes = 1048576\n\
                   a->b.consumer.max.partition.fetch.bytes = 4194304\ncheckpoints.topic.replication.factor = 1\n";
        let imported = import(mm2).expect("converts");
        let v = crate::config::parse(&imported.toml).expect("the converted config validates");
        assert_eq!(v.config.mirror.fetch_max_bytes, 104_857_600, "{}", imported.toml);
        assert_eq!(v.config.mirror.partition_max_bytes, 4_194_304);
        assert!(!imported.not_carried.iter().any(|n| n.contains("fetch")), "{:?}", imported.not_carried);
        assert!(imported.not_carried.iter().any(|n| n.starts_with("checkpoints.topic.replication.factor: Tern's internal topics")), "{:?}", imported.not_carried);
    }
}
