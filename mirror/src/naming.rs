//! Which source topics a flow replicates and what they are called on the target, following
//! MirrorMaker 2's replication policies so MM2 tooling reads Tern's topology the same way.

use crate::config::{Flow, Naming};

/// Topics MirrorMaker 2 never replicates by default: internal topics of Kafka, Connect and
/// MM2 itself (`__consumer_offsets`, `mm2-offset-syncs.b.internal`, `a.checkpoints.internal`)
/// and replica-placement helpers.
pub fn is_internal(topic: &str) -> bool {
    topic.starts_with("__")
        || topic.ends_with(".internal")
        || topic.ends_with("-internal")
        || topic.ends_with(".replica")
}

/// MM2's heartbeat topic and its remote copies (`heartbeats`, `us-east.heartbeats`, ...):
/// always replicated, which is how tooling discovers the replication hops.
pub fn is_heartbeats(topic: &str) -> bool {
    topic == "heartbeats" || topic.ends_with(".heartbeats")
}

/// Whether `flow` replicates source topic `topic`.
pub fn replicates(flow: &Flow, topic: &str) -> bool {
    if is_internal(topic) {
        return false;
    }
    // With prefix naming a topic that came from the target carries its alias: sending it back
    // would loop in active/active setups.
    if flow.naming == Naming::Prefix && came_from(topic, &flow.target) {
        return false;
    }
    if is_heartbeats(topic) {
        return true;
    }
    flow.topics.iter().any(|r| r.is_match(topic)) && !flow.topics_exclude.iter().any(|r| r.is_match(topic))
}

/// Whether `topic` is (somewhere along its path) a copy of a topic from `cluster`.
fn came_from(topic: &str, cluster: &str) -> bool {
    topic.split('.').collect::<Vec<_>>().split_last().is_some_and(|(_, hops)| hops.contains(&cluster))
}

/// The name of `topic`'s copy on the flow's target.
pub fn remote_topic(flow: &Flow, topic: &str) -> String {
    match flow.naming {
        Naming::Prefix => format!("{}.{}", flow.source, topic),
        Naming::Identity => topic.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn flow(naming: &str) -> Flow {
        let text = format!(
            "[clusters.us-east]\nbootstrap = \"h:1\"\n[clusters.eu-west]\nbootstrap = \"h:2\"\n[[flows]]\nsource = \"us-east\"\ntarget = \"eu-west\"\ntopics = [\"orders.*\", \".*\\\\.orders\"]\ntopics_exclude = [\"orders-tmp\"]\nnaming = \"{naming}\"\n"
        );
        parse(&text).expect("config").flows.remove(0)
    }

    #[test]
    fn prefix_naming_and_cycle_safety() {
        let f = flow("prefix");
        assert!(replicates(&f, "orders"));
        assert_eq!(remote_topic(&f, "orders"), "us-east.orders");
        assert!(!replicates(&f, "orders-tmp"), "excluded");
        assert!(!replicates(&f, "payments"), "not included");
        assert!(!replicates(&f, "eu-west.orders"), "came from the target: would loop");
        assert!(replicates(&f, "ap-south.orders"), "a third cluster's copy travels on");
        assert!(!replicates(&f, "__consumer_offsets"));
        assert!(!replicates(&f, "mm2-offset-syncs.eu-west.internal"));
        assert!(!replicates(&f, "us-east.checkpoints.internal"));
        assert!(replicates(&f, "heartbeats"));
        assert!(replicates(&f, "ap-south.heartbeats"));
        assert!(!replicates(&f, "eu-west.heartbeats"));
        assert_eq!(remote_topic(&f, "ap-south.heartbeats"), "us-east.ap-south.heartbeats");
    }

    #[test]
    fn identity_naming_keeps_names() {
        let f = flow("identity");
        assert_eq!(remote_topic(&f, "orders"), "orders");
        assert!(replicates(&f, "eu-west.orders"), "no alias rule without prefixes");
    }
}
