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
        toml += &format!("[clusters.{c}]\nbootstrap = {}\n\n", toml_string(&bootstrap));
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
            if let Some(secs) = setting(&name, "emit.checkpoints.interval.seconds", &mut used).and_then(|v| v.parse::<u64>().ok()) {
                toml += &format!("checkpoint_interval = \"{secs}s\"\n");
            }
            toml += "\n";
        }
    }
    if flows == 0 {
        return Err("no flow is enabled (no `A->B.enabled = true`)".into());
    }
    if let Some(secs) = get("refresh.topics.interval.seconds", &mut used).and_then(|v| v.parse::<u64>().ok()) {
        toml += &format!("[mirror]\ntopic_refresh_interval = \"{secs}s\"\n\n");
    }
    let reasons: &[(&str, &str)] = &[
        ("sync.topic.configs.enabled", "Tern always copies topic configs (minus its documented exclusion list)"),
        ("sync.group.offsets.interval.seconds", "Tern syncs group offsets with every checkpoint (checkpoint_interval)"),
        ("replication.factor", "remote topics get the target cluster's default replication factor"),
        ("tasks.max", "scale out by starting more `tern run` workers with the same config"),
        ("offset.lag.max", "Tern's offset translation is exact; there is no lag to tune"),
        ("security.protocol", "TLS and SASL settings are not converted yet"),
    ];
    for (k, _) in &props {
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
    fn refuses_what_it_cannot_convert() {
        assert!(import("a.bootstrap.servers = x:1").is_err());
        assert!(import("clusters = a, b\na.bootstrap.servers = x:1\nb.bootstrap.servers = y:1\n").is_err(), "no flow enabled");
    }
}
