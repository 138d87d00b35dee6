//! The MirrorMaker 2 comparison (`cargo bench --bench mm2`) on a tiny input, so the harness
//! cannot rot: the same code as the benchmark, on the suite's shared Apache Kafka clusters,
//! with MirrorMaker 2 (defaults and tuned) and this build's `tern run` on one bulk row, the
//! failover groups and the latency phase. Tern's failover must be exact and MM2's
//! `translateOffsets` must read Tern's checkpoints as Tern translated them; MM2's own numbers
//! must be produced, whatever they are.

#[path = "../../benches/common/mod.rs"]
mod common;
// Parts only the benchmark uses (full sizes, row parsing) are unused here.
#[allow(dead_code)]
#[path = "../../benches/mm2_harness/mod.rs"]
mod harness;

use harness::{Payload, Replicator, Row, Setup, Sizes};

use crate::apache_kafka::{java, kafka_libs, kafka_version, shared};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_maker_2_and_tern_side_by_side_on_a_tiny_input() {
    let clusters = shared().await;
    let work = tempfile::Builder::new().prefix("tern-mm2-it-").tempdir().expect("temp dir");
    let setup = Setup {
        source: clusters.a.bootstrap(),
        target: clusters.b.bootstrap(),
        java: java(),
        kafka_libs: kafka_libs(),
        kafka_version: kafka_version(),
        tern: env!("CARGO_BIN_EXE_tern").into(),
        // Small JVMs: the suite runs many side by side on two cores.
        mm2_jvm: ["-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"].iter().map(|s| s.to_string()).collect(),
        mm2_log_level: "INFO".into(),
        work: work.path().to_path_buf(),
        tag: format!("-it{}", std::process::id()),
        sizes: Sizes { stable: std::time::Duration::from_secs(8), ..Sizes::tiny() },
        rows: vec![Row { payload: Payload::Text, partitions: 8 }],
        replicators: Replicator::all(),
    };
    let report = match harness::run(&setup).await {
        Ok(r) => r,
        Err(e) => {
            let kept = work.keep();
            panic!("the harness failed: {e:#}\n(configuration files and logs in {})", kept.display());
        }
    };
    println!("{}", harness::report::markdown(&report));

    // Every replicator replicated the bulk row and measured something.
    for rep in Replicator::all() {
        let b = report.bulk.iter().find(|b| b.replicator == rep).unwrap_or_else(|| panic!("no bulk result for {rep:?}"));
        assert!(b.mbps_from_start > 0.0 && b.cpu_secs > 0.0 && b.peak_rss_mib > 0.0 && b.first_record_secs > 0.0, "{b:?}");
        let l = report.latency.iter().find(|l| l.replicator == rep).unwrap_or_else(|| panic!("no latency for {rep:?}"));
        assert_eq!(l.records, l.sent, "{rep:?}: every record of the latency phase reached the target: {l:?}");
        let groups: Vec<_> = report.failover.iter().filter(|g| g.replicator == rep).collect();
        assert_eq!(groups.len(), 3, "{rep:?}: a failover result per group: {groups:?}");
    }

    // Tern resumes every group exactly, in both deliveries: nothing re-delivered, nothing
    // skipped, on content.
    for g in report.failover.iter().filter(|g| !g.replicator.is_mm2()) {
        assert!(g.unsynced.is_empty(), "{} was not synced onto the target: {g:?}", g.group);
        assert_eq!((g.redelivered, g.skipped), (0, 0), "{}: {g:?}", g.group);
    }
    let lagging = report.failover.iter().find(|g| g.replicator == Replicator::Tern && g.group.starts_with("fo-lagging")).expect("lagging group");
    assert_eq!(lagging.remaining, 1_000, "the lagging group has 1,000 records left to read");
    let hole = report.failover.iter().find(|g| g.replicator == Replicator::Tern && g.group.starts_with("fo-in-hole")).expect("hole group");
    assert!(hole.remaining > 0, "{hole:?}");

    // MM2's client library reads Tern's checkpoints as Tern translated them.
    let translate = report.translate.as_ref().expect("translateOffsets check");
    assert!(translate.equal, "translateOffsets differs from Tern's offsets: {translate:?}");
    assert_eq!(translate.groups.len(), 3);

    // `tern import-mm2` of the run's mm2.properties names and replicates the same topics.
    let import = report.import.as_ref().expect("import-mm2 check");
    assert!(import.same_names, "{import:?}");
    assert!(import.replicated_live, "{import:?}");
    assert_eq!(import.planned.len(), 3, "{import:?}");

    // The chart renders every replicator.
    let svg = harness::report::svg(&report);
    for rep in Replicator::all() {
        assert!(svg.contains(rep.label()), "{rep:?} missing from the chart");
    }
}

/// Kafka answers a fetch with a byte range of the log, which may end inside a batch: the
/// harness reads whole batches only and fetches the rest next.
#[test]
fn a_partial_last_batch_is_left_for_the_next_fetch() {
    use bytes::Bytes;
    use kafka_protocol::records::Compression;
    use tern_kafka::records::{encode_batch, PlainRecord};
    let batch = |n: usize| {
        let records: Vec<PlainRecord> = (0..n).map(|i| PlainRecord::new(format!("k{i}"), Some(Bytes::from(vec![b'x'; 200])), 0)).collect();
        encode_batch(&records, Compression::None).expect("encode")
    };
    let (a, b) = (batch(3), batch(5));
    let mut both = a.to_vec();
    both.extend_from_slice(&b);
    assert_eq!(harness::data::whole_batches(Bytes::from(both.clone())), (Bytes::from(both.clone()), Some(4)));
    let cut = Bytes::from(both[..a.len() + b.len() / 2].to_vec());
    assert_eq!(harness::data::whole_batches(cut), (a.clone(), Some(2)));
    assert_eq!(harness::data::whole_batches(a.slice(..20)), (Bytes::new(), None));
}
