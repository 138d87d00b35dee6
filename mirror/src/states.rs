//! Every state an operator reads, with its one spelling.
//!
//! The CLI, the JSON reports and API, the dashboard's pages, the metrics' labels and the
//! README all spell a state the way its enum here does: `as_str`, `Display` and serde give the
//! same word, and `ALL` lists every word (the README's table is checked against it).
//!
//! ```
//! use tern_mirror::states::{Health, TranslationState};
//! assert_eq!(TranslationState::AheadOfReplication.to_string(), "ahead-of-replication");
//! assert_eq!(serde_json::to_string(&Health::FailedOver).unwrap(), "\"failed-over\"");
//! assert_eq!("nothing-replicated".parse::<TranslationState>(), Ok(TranslationState::NothingReplicated));
//! ```

/// Declares an enum whose variants each have one spelling, and gives it `as_str`, `ALL`,
/// `Display`, `FromStr` and serde in that spelling.
macro_rules! spelled {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let words: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    format!("{s:?} is not one of {}", words.join(", "))
                })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

spelled! {
    /// How a flow is doing, as the topology, the flow pages and `/api/v1/flows` show it.
    pub enum Health {
        /// Replicating, within the lagging threshold.
        Ok = "ok",
        /// The oldest record not yet on the target is older than the threshold.
        Lagging = "lagging",
        /// An operator paused the flow.
        Paused = "paused",
        /// Clients use the target; the flow does not replicate.
        FailedOver = "failed-over",
        /// A partition stopped or a cluster is unreachable.
        Error = "error",
        /// Not known yet (no poll finished).
        Unknown = "unknown",
    }
}

spelled! {
    /// Where a flow stands in the failover cycle.
    #[derive(Default)]
    pub enum FailoverState {
        /// Replicating source to target.
        #[default]
        Active = "active",
        /// `tern failover` is draining the flow and moving groups to the target.
        FailingOver = "failing-over",
        /// Clients use the target; the flow does not replicate.
        FailedOver = "failed-over",
        /// `tern failback` is copying back what the target received and moving groups home.
        FailingBack = "failing-back",
    }
}

spelled! {
    /// The outcome of a drill for one group, and for the drill as a whole (worst first is
    /// the largest).
    pub enum Verdict {
        /// A failover now would neither lose nor repeat a record for this group.
        Pass = "pass",
        /// The group has no committed offsets on the flow's topics: nothing to move (its
        /// consumers would start by their `auto.offset.reset`).
        NoOffsets = "no-offsets",
        /// A failover now would lose records (not replicated yet, or skipped by translation)
        /// or re-deliver records the group already consumed.
        Fail = "fail",
        /// The drill could not decide (a cluster unreachable, a read failed).
        Error = "error",
    }
}

spelled! {
    /// Which way a flow's or partition's lag is going over the last minute.
    pub enum Trend {
        CaughtUp = "caught-up",
        Shrinking = "shrinking",
        Steady = "steady",
        Growing = "growing",
        /// Not enough samples yet.
        Unknown = "unknown",
    }
}

spelled! {
    /// How a group's committed source offset translates to the target.
    pub enum TranslationState {
        /// The target offset of the first replicated record at or after the committed one.
        Exact = "exact",
        /// The group is at or past what was replicated: it resumes at the replicated end.
        AheadOfReplication = "ahead-of-replication",
        /// Nothing of the partition was replicated yet: no target offset.
        NothingReplicated = "nothing-replicated",
    }
}

spelled! {
    /// A drill's comparison of the target record at the translated offset with the source
    /// record at the committed one (key, value, headers, timestamp).
    pub enum Check {
        /// The consumer would resume at exactly the right record.
        Match = "match",
        /// The consumer would skip records.
        Skips = "skips",
        /// The consumer would read records again.
        Repeats = "repeats",
        /// The record at the translated offset is not one of the source's.
        Mismatch = "mismatch",
        /// The group is at the end of what was replicated: no record to compare.
        NothingToCompare = "nothing-to-compare",
    }
}

spelled! {
    /// What a drill's consumer of the drill group found when it read from the applied
    /// offsets.
    pub enum ReadThrough {
        /// It got the applied offset and read the record the drill compared.
        Read = "read",
        /// It got the applied offset, at the end of what was replicated: nothing to read yet,
        /// and nothing to get wrong. Neutral, not a failure.
        NothingToRead = "nothing-to-read",
        /// It got another offset, no offset, or could not read the record.
        Failed = "failed",
    }
}

impl ReadThrough {
    /// A group's result from its partitions': failed if any failed, read if any read,
    /// otherwise nothing to read.
    pub fn combine(parts: impl IntoIterator<Item = ReadThrough>) -> ReadThrough {
        parts.into_iter().fold(ReadThrough::NothingToRead, |acc, p| match (acc, p) {
            (ReadThrough::Failed, _) | (_, ReadThrough::Failed) => ReadThrough::Failed,
            (ReadThrough::Read, _) | (_, ReadThrough::Read) => ReadThrough::Read,
            _ => ReadThrough::NothingToRead,
        })
    }

    pub fn ok(self) -> bool {
        self != ReadThrough::Failed
    }
}

spelled! {
    /// What the last sync of a group's translated offsets onto the same-named group on the
    /// target did.
    pub enum SyncState {
        /// The flow does not sync group offsets (`sync_group_offsets = false`), or the group
        /// has no translation yet.
        Off = "off",
        /// Translated offsets were committed to the target group.
        Synced = "synced",
        /// The target group already had these offsets or later ones.
        InSync = "in-sync",
        /// The target group has active members; Tern never moves a group under them.
        Blocked = "blocked",
        /// The target could not be asked or refused the commit.
        Failed = "failed",
    }
}

spelled! {
    /// Something the source did under a running flow that cost records or moved replication.
    pub enum SourceEvent {
        /// The topic was deleted and created again (its topic id changed): replication starts
        /// over from the new topic's log start; what the old one held past the replicated
        /// position is lost.
        Recreated = "recreated",
        /// The log start moved past the replicated position (retention, DeleteRecords): the
        /// records in between were deleted before they were replicated.
        LogStartMoved = "log-start-moved",
        /// The log now ends below the replicated position (an unclean leader election):
        /// replication goes on from the new end; the target keeps records the source lost.
        Truncated = "truncated",
    }
}

impl SyncState {
    /// Whether the target group is missing offsets it should have.
    pub fn not_synced(self) -> bool {
        matches!(self, SyncState::Blocked | SyncState::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: serde::Serialize + serde::de::DeserializeOwned + std::str::FromStr + std::fmt::Display + Copy + PartialEq + std::fmt::Debug>(all: &[T], words: &[&str])
    where
        <T as std::str::FromStr>::Err: std::fmt::Debug,
    {
        let spelled: Vec<String> = all.iter().map(|v| v.to_string()).collect();
        assert_eq!(spelled, words);
        for v in all {
            let json = serde_json::to_string(v).expect("serialize");
            assert_eq!(json, format!("\"{v}\""));
            assert_eq!(serde_json::from_str::<T>(&json).expect("deserialize"), *v);
            assert_eq!(v.to_string().parse::<T>().expect("parse"), *v);
            assert!(words.iter().all(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '-')), "kebab-case: {words:?}");
        }
    }

    #[test]
    fn every_state_has_one_kebab_case_spelling() {
        check(Health::ALL, &["ok", "lagging", "paused", "failed-over", "error", "unknown"]);
        check(FailoverState::ALL, &["active", "failing-over", "failed-over", "failing-back"]);
        check(Verdict::ALL, &["pass", "no-offsets", "fail", "error"]);
        check(Trend::ALL, &["caught-up", "shrinking", "steady", "growing", "unknown"]);
        check(TranslationState::ALL, &["exact", "ahead-of-replication", "nothing-replicated"]);
        check(Check::ALL, &["match", "skips", "repeats", "mismatch", "nothing-to-compare"]);
        check(ReadThrough::ALL, &["read", "nothing-to-read", "failed"]);
        check(SyncState::ALL, &["off", "synced", "in-sync", "blocked", "failed"]);
        check(SourceEvent::ALL, &["recreated", "log-start-moved", "truncated"]);
        assert!("ahead_of_replication".parse::<TranslationState>().is_err());
        assert!(serde_json::from_str::<Health>("\"failed_over\"").is_err());
    }

    #[test]
    fn a_partition_with_nothing_to_read_is_neutral() {
        use ReadThrough::*;
        assert_eq!(ReadThrough::combine([Read, NothingToRead]), Read);
        assert_eq!(ReadThrough::combine([NothingToRead, NothingToRead]), NothingToRead);
        assert_eq!(ReadThrough::combine([Read, Failed, NothingToRead]), Failed);
        assert_eq!(ReadThrough::combine([]), NothingToRead);
        assert!(NothingToRead.ok() && Read.ok() && !Failed.ok());
    }
}

#[cfg(test)]
mod readme {
    use super::*;

    /// The README's table of states lists exactly the words of each enum, in order.
    #[test]
    fn the_readme_spells_every_state_as_the_code_does() {
        let readme = include_str!("../../README.md");
        let words = |state: &str| -> Vec<String> {
            let row = readme.lines().find(|l| l.starts_with(&format!("| {state} |"))).unwrap_or_else(|| panic!("no README row for {state}"));
            let cell = row.split('|').nth(2).expect("words cell");
            let cell = cell.split(" (").next().unwrap_or(cell);
            cell.split('`').skip(1).step_by(2).map(String::from).collect()
        };
        fn all<T: Copy + std::fmt::Display>(v: &[T]) -> Vec<String> {
            v.iter().map(|x| x.to_string()).collect()
        }
        assert_eq!(words("health"), all(Health::ALL));
        assert_eq!(words("failover"), all(FailoverState::ALL));
        assert_eq!(words("verdict"), all(Verdict::ALL));
        assert_eq!(words("translation"), all(TranslationState::ALL));
        assert_eq!(words("trend"), all(Trend::ALL));
        assert_eq!(words("check"), all(Check::ALL));
        assert_eq!(words("read-through"), all(ReadThrough::ALL));
        assert_eq!(words("sync"), all(SyncState::ALL));
        assert_eq!(words("source event"), all(SourceEvent::ALL));
    }
}
