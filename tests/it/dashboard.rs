//! The dashboard, REST API and /metrics against a real setup in this process: two brokers, a
//! running flow, a consumer group. Pages are parsed as HTML and checked by structure.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use bytes::Bytes;
use kafka_protocol::records::Compression;
use scraper::{Html, Selector};
use tern_kafka::client::{Client, ClientConfig, Membership};
use tern_kafka::records::{encode_batch, PlainRecord};
use tower::ServiceExt;

use crate::helpers::*;
use crate::mirror::TestMirror;

const TOKEN: &str = "operator-token-for-tests";

struct Web {
    app: axum::Router,
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn html(&self) -> Html {
        Html::parse_document(&self.body)
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl Web {
    async fn send(&self, req: Request<Body>) -> Reply {
        let resp = self.app.clone().oneshot(req).await.expect("response");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), 16 << 20).await.expect("body");
        Reply { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Reply {
        let mut req = Request::get(path);
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        self.send(req.body(Body::empty()).expect("request")).await
    }

    /// What htmx fetches: only the page's live part.
    async fn get_live(&self, path: &str) -> Reply {
        self.send(Request::get(path).header("hx-request", "true").body(Body::empty()).expect("request")).await
    }

    async fn post_form(&self, path: &str, cookie: Option<&str>, form: &str) -> Reply {
        let mut req = Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        self.send(req.body(Body::from(form.to_string())).expect("request")).await
    }

    async fn post_api(&self, path: &str, token: Option<&str>) -> Reply {
        let mut req = Request::post(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        self.send(req.body(Body::empty()).expect("request")).await
    }
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap_or_else(|e| panic!("selector {s}: {e}"))
}

/// The text of the first element matching `selector`.
fn text(doc: &Html, selector: &str) -> String {
    let el = doc.select(&sel(selector)).next().unwrap_or_else(|| panic!("no element {selector}"));
    el.text().collect::<String>().trim().to_string()
}

/// `data-field` cells of the table row matching `row`, by field name.
fn row_fields(doc: &Html, row: &str) -> BTreeMap<String, String> {
    let tr = doc.select(&sel(row)).next().unwrap_or_else(|| panic!("no row {row}"));
    tr.select(&sel("[data-field]")).map(|c| (c.value().attr("data-field").unwrap_or_default().to_string(), c.text().collect::<String>().trim().to_string())).collect()
}

fn records(tag: &str, n: usize) -> Bytes {
    let recs: Vec<PlainRecord> = (0..n).map(|i| PlainRecord::new(format!("{tag}-{i}"), Some(Bytes::from(format!("value {tag} {i}"))), 1_700_000_000_000 + i as i64)).collect();
    encode_batch(&recs, Compression::Lz4).expect("encode")
}

/// One sample of the Prometheus text format: `name{labels} value`.
#[derive(Debug)]
pub(crate) struct PromSample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text exposition format strictly: comments must be HELP or TYPE,
/// every sample needs a valid name, well-formed quoted labels and a float value, and every
/// sample's family must have been declared with TYPE before it.
pub(crate) fn parse_prometheus(text: &str) -> Vec<PromSample> {
    let mut typed = std::collections::BTreeSet::new();
    let mut histograms = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let valid_name = |n: &str| !n.is_empty() && n.chars().enumerate().all(|(i, c)| c == '_' || c == ':' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap_or_default();
            let name = parts.next().unwrap_or_default();
            assert!(kind == "HELP" || kind == "TYPE", "unexpected comment: {line}");
            assert!(valid_name(name), "bad metric name in {line}");
            if kind == "TYPE" {
                let t = parts.next().unwrap_or_default();
                assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&t), "bad type in {line}");
                typed.insert(name.to_string());
                if t == "histogram" {
                    histograms.insert(name.to_string());
                }
            }
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => panic!("sample without value: {line}"),
        };
        assert!(valid_name(name), "bad sample name: {line}");
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let mut end = None;
            loop {
                let Some(&(i, c)) = chars.peek() else { panic!("unterminated labels: {line}") };
                if c == '}' {
                    end = Some(i);
                    break;
                }
                if c == ',' {
                    chars.next();
                    continue;
                }
                let mut key = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if c == '=' {
                        break;
                    }
                    key.push(c);
                    chars.next();
                }
                assert!(valid_name(&key), "bad label name {key:?}: {line}");
                chars.next();
                assert_eq!(chars.next().map(|x| x.1), Some('"'), "label value not quoted: {line}");
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c)) => value.push(c),
                            None => panic!("bad escape: {line}"),
                        },
                        Some((_, '"')) => break,
                        Some((_, c)) => value.push(c),
                        None => panic!("unterminated label value: {line}"),
                    }
                }
                labels.insert(key, value);
                if end.is_some() {
                    break;
                }
            }
            let end = end.unwrap_or_else(|| panic!("unterminated labels: {line}"));
            rest = &body[end + 1..];
        }
        let value: f64 = rest.trim().split(' ').next().unwrap_or_default().parse().unwrap_or_else(|e| panic!("bad value in {line}: {e}"));
        // A histogram's samples are its family's name with _bucket, _sum or _count.
        let family = ["_bucket", "_sum", "_count"].iter().find_map(|suffix| name.strip_suffix(suffix).filter(|f| histograms.contains(*f))).unwrap_or(name);
        assert!(typed.contains(family), "sample of an undeclared family: {line}");
        out.push(PromSample { name: name.to_string(), labels, value });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_api_and_metrics_show_a_running_flow() {
    let src = TestBroker::start().await;
    let dst = TestBroker::start().await;
    let source = Client::connect(ClientConfig::new(&src.bootstrap())).await.expect("source client");
    let mut configs = BTreeMap::new();
    configs.insert("retention.ms".to_string(), "86400000".to_string());
    configs.insert("min.insync.replicas".to_string(), "1".to_string());
    source.create_topic("orders", 4, &configs).await.expect("create");
    for p in 0..4 {
        source.produce("orders", p, records(&format!("p{p}"), 100), -1, 10_000).await.expect("produce");
    }
    let mut committed = BTreeMap::new();
    committed.insert(("orders".to_string(), 0), 40i64);
    source.commit_offsets("billing", &Membership::none(), &committed).await.expect("commit");

    // Topics are synced once (the refresh interval is long), so config drift made on the
    // source afterwards stays visible.
    let toml = format!(
        "[clusters.src]\nbootstrap = \"{}\"\nregion = \"us-east-1\"\ncloud = \"aws\"\n[clusters.dst]\nbootstrap = \"{}\"\nregion = \"eu-west-1\"\ncloud = \"gcp\"\n\n\
         [[flows]]\nsource = \"src\"\ntarget = \"dst\"\ntopics = [\"orders\"]\ncheckpoint_interval = \"500ms\"\n\n\
         [mirror]\ntopic_refresh_interval = \"1h\"\nfetch_max_wait = \"100ms\"\n",
        src.bootstrap(),
        dst.bootstrap()
    );
    let validated = tern_mirror::config::parse(&toml).expect("config");
    let topology = tern_web::Topology::from_validated(&validated);
    let mirror = TestMirror::start(&toml);
    let state = tern_web::AppState::new(topology, mirror.status.clone(), Some(TOKEN.into()));
    let _pollers = state.spawn_pollers_every(Duration::from_millis(200));
    let web = Web { app: tern_web::router(state) };
    let flow_path = "/flows/src-%3Edst";

    // Everything replicated: the flow page shows every partition caught up.
    wait_until(Duration::from_secs(30), "400 records replicated", async || {
        let json = web.get("/api/v1/flows/src-%3Edst", None).await.json();
        let parts = json["partitions"].as_array()?;
        (parts.len() == 4 && parts.iter().all(|p| p["replicated_offset"] == 100 && p["lag_records"] == 0)).then_some(())
    })
    .await;
    let page = web.get(flow_path, None).await;
    assert_eq!(page.status, StatusCode::OK);
    let doc = page.html();
    assert_eq!(text(&doc, "h1"), "Flow src->dst");
    let rows: Vec<_> = doc.select(&sel("#partitions tbody tr")).collect();
    assert_eq!(rows.len(), 4, "one row per partition");
    for p in 0..4 {
        let f = row_fields(&doc, &format!("#partitions tr[data-topic=orders][data-partition=\"{p}\"]"));
        assert_eq!((f["replicated_offset"].as_str(), f["source_end_offset"].as_str(), f["lag_records"].as_str()), ("100", "100", "0"), "partition {p}: {f:?}");
        assert_eq!(f["error"], "");
    }
    assert_eq!(text(&doc, "#flow-paused"), "no");
    assert_eq!(text(&doc, "#flow-failover"), "active");
    // Without a session there is no pause button, only the way to log in.
    assert!(doc.select(&sel("#pause")).next().is_none());
    assert!(doc.select(&sel("#controls a[href^=\"/login\"]")).next().is_some());
    // The live part re-fetches itself.
    let live = doc.select(&sel("#live")).next().expect("#live");
    assert_eq!(live.value().attr("hx-get"), Some(flow_path));
    assert!(live.value().attr("hx-trigger").is_some_and(|t| t.starts_with("every ")));
    assert!(doc.select(&sel(&format!("script[src=\"{}\"]", tern_web::HTMX_PATH))).next().is_some());
    // htmx gets the live part alone: the same rows, without the page around them.
    for path in [flow_path, "/", "/flows", "/topics", "/groups", "/drills"] {
        let part = web.get_live(path).await;
        assert_eq!(part.status, StatusCode::OK, "{path}");
        assert!(part.body.trim_start().starts_with("<div id=\"live\""), "{path}: {}", &part.body[..part.body.len().min(200)]);
        let doc = Html::parse_fragment(&part.body);
        assert!(doc.select(&sel("header, nav, link, script")).next().is_none(), "{path}: the live part carries no page frame");
    }
    let part = Html::parse_fragment(&web.get_live(flow_path).await.body);
    assert_eq!(part.select(&sel("#partitions tbody tr")).count(), 4);
    let htmx = web.get(tern_web::HTMX_PATH, None).await;
    assert_eq!(htmx.status, StatusCode::OK);
    assert!(htmx.body.contains("htmx"), "the vendored htmx is served");

    // Topology: both clusters with region, cloud and broker count; the flow as an edge.
    let doc = web.get("/", None).await.html();
    let nodes: Vec<String> = doc.select(&sel("svg#topology g.cluster")).filter_map(|g| g.value().attr("data-cluster").map(String::from)).collect();
    assert_eq!(nodes, vec!["dst", "src"]);
    let src_node = doc.select(&sel("svg#topology g.cluster[data-cluster=src]")).next().expect("src node");
    let src_text: Vec<String> = src_node.select(&sel("text")).map(|t| t.text().collect()).collect();
    assert_eq!(src_text, vec!["src", "us-east-1 · aws", "1 broker"]);
    let edge = doc.select(&sel("svg#topology a.flow-edge")).next().expect("edge");
    assert_eq!(edge.value().attr("data-flow"), Some("src->dst"));
    assert_eq!(edge.value().attr("href"), Some(flow_path));
    assert!(edge.value().classes().any(|c| c == "ok"), "a caught-up flow is healthy: {:?}", edge.value().attr("class"));
    let label: String = edge.select(&sel("text")).flat_map(|t| t.text()).collect();
    assert!(label.contains("lag 0s"), "{label}");

    // Consumer groups: billing committed 40 on partition 0, which is target offset 40.
    wait_until(Duration::from_secs(30), "billing translated", async || {
        let doc = web.get("/groups", None).await.html();
        let row = doc.select(&sel("#groups tr[data-group=billing][data-partition=\"0\"]")).next()?;
        let f: BTreeMap<String, String> = row.select(&sel("[data-field]")).map(|c| (c.value().attr("data-field").unwrap_or_default().to_string(), c.text().collect::<String>())).collect();
        (f["committed_offset"] == "40" && f["translated_offset"] == "40" && f["state"] == "exact").then_some(())
    })
    .await;
    let groups = web.get("/api/v1/groups", None).await.json();
    let billing = groups["groups"].as_array().expect("groups").iter().find(|g| g["group"] == "billing").expect("billing").clone();
    assert_eq!((billing["committed_offset"].as_i64(), billing["translated_offset"].as_i64()), (Some(40), Some(40)));

    // Topics: configs side by side; drift made on the source shows; excluded keys are marked.
    let mut changed = BTreeMap::new();
    changed.insert("retention.ms".to_string(), "3600000".to_string());
    source.alter_topic_configs("orders", &changed, &[]).await.expect("alter");
    wait_until(Duration::from_secs(30), "drift on the topics page", async || {
        let doc = web.get("/topics", None).await.html();
        let row = doc.select(&sel("section.topic[data-topic=orders] tr.drift[data-key=\"retention.ms\"]")).next()?;
        let cells: Vec<String> = row.select(&sel("td")).map(|c| c.text().collect()).collect();
        (cells == ["3600000", "86400000"]).then_some(())
    })
    .await;
    let doc = web.get("/topics", None).await.html();
    let section = "section.topic[data-flow=\"src->dst\"][data-topic=orders]";
    assert_eq!(text(&doc, &format!("{section} tr[data-key=\"retention.ms\"] td[data-side=source]")), "3600000");
    assert_eq!(text(&doc, &format!("{section} tr[data-key=\"retention.ms\"] td[data-side=target]")), "86400000");
    assert_eq!(text(&doc, &format!("{section} tr[data-key=partitions] td[data-side=source]")), "4");
    assert_eq!(text(&doc, &format!("{section} tr[data-key=partitions] td[data-side=target]")), "4");
    assert!(doc.select(&sel(&format!("{section} tr.excluded[data-key=\"min.insync.replicas\"]"))).next().is_some(), "excluded keys are marked");
    assert!(doc.select(&sel(&format!("{section} tr.drift[data-key=\"min.insync.replicas\"]"))).next().is_none(), "excluded keys are not drift");
    let topics = web.get("/api/v1/topics", None).await.json();
    assert_eq!(topics["topics"][0]["drift"], true);

    // Changing anything needs the token: no session, wrong token, forged CSRF are refused.
    let refused = web.post_form(&format!("{flow_path}/pause"), None, "csrf=x").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(text(&refused.html(), "#message").contains("operator token"));
    assert_eq!(web.post_api("/api/v1/flows/src-%3Edst/pause", None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(web.post_api("/api/v1/flows/src-%3Edst/pause", Some("wrong")).await.status, StatusCode::UNAUTHORIZED);
    let bad_login = web.post_form("/login", None, "token=wrong&next=%2F").await;
    assert_eq!(bad_login.status, StatusCode::UNAUTHORIZED);
    assert!(bad_login.headers.get(header::SET_COOKIE).is_none());
    assert_eq!(text(&bad_login.html(), "#login-error"), "That token is not right.");
    let login = web.post_form("/login", None, &format!("token={TOKEN}&next=%2Fflows%2Fsrc-%253Edst")).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    assert_eq!(login.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()), Some("/flows/src-%3Edst"));
    let set_cookie = login.headers.get(header::SET_COOKIE).and_then(|v| v.to_str().ok()).expect("session cookie").to_string();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().expect("cookie").to_string();
    let doc = web.get(flow_path, Some(&cookie)).await.html();
    let form = doc.select(&sel("#controls form")).next().expect("pause form");
    assert_eq!(form.value().attr("action"), Some(flow_path.to_string() + "/pause").as_deref());
    let csrf = form.select(&sel("input[name=csrf]")).next().and_then(|i| i.value().attr("value")).expect("csrf").to_string();
    let forged = web.post_form(&format!("{flow_path}/pause"), Some(&cookie), "csrf=forged").await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(web.get("/api/v1/flows/src-%3Edst", None).await.json()["paused"], false, "refused requests change nothing");

    // Pause: replication stops for the flow, the lag grows on the page.
    let paused = web.post_form(&format!("{flow_path}/pause"), Some(&cookie), &format!("csrf={csrf}")).await;
    assert_eq!(paused.status, StatusCode::SEE_OTHER, "{}", paused.body);
    let doc = web.get(flow_path, Some(&cookie)).await.html();
    assert_eq!(text(&doc, "#flow-paused"), "yes");
    assert_eq!(text(&doc, "#flow-state"), "paused");
    assert!(doc.select(&sel("#resume")).next().is_some());
    for p in 0..4 {
        source.produce("orders", p, records(&format!("late{p}"), 25), -1, 10_000).await.expect("produce");
    }
    let doc = wait_until(Duration::from_secs(30), "lag of 100 while paused", async || {
        let doc = web.get(flow_path, None).await.html();
        let lag = text(&doc, "#flow-lag-records");
        (lag == "100").then_some(doc)
    })
    .await;
    let f = row_fields(&doc, "#partitions tr[data-topic=orders][data-partition=\"2\"]");
    assert_eq!((f["replicated_offset"].as_str(), f["source_end_offset"].as_str(), f["lag_records"].as_str()), ("100", "125", "25"));
    let edge_doc = web.get("/", None).await.html();
    let edge = edge_doc.select(&sel("svg#topology a.flow-edge")).next().expect("edge");
    assert!(edge.value().classes().any(|c| c == "paused"));

    // /metrics is valid Prometheus text with per-partition lag.
    let metrics = web.get("/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let samples = parse_prometheus(&metrics.body);
    let lag: BTreeMap<String, f64> = samples
        .iter()
        .filter(|s| s.name == "tern_lag_records" && s.labels.get("flow").map(String::as_str) == Some("src->dst") && s.labels.get("topic").map(String::as_str) == Some("orders"))
        .map(|s| (s.labels["partition"].clone(), s.value))
        .collect();
    assert_eq!(lag, (0..4).map(|p| (p.to_string(), 25.0)).collect::<BTreeMap<_, _>>());
    assert!(samples.iter().any(|s| s.name == "tern_group_translated_offset" && s.labels.get("group").map(String::as_str) == Some("billing") && s.value == 40.0));
    // States carry their one spelling in labels, pages and JSON alike.
    let state_of = |name: &str, group: Option<&str>| -> Vec<String> {
        samples.iter().filter(|s| s.name == name && s.labels.get("group").map(String::as_str) == group && s.value == 1.0).map(|s| s.labels["state"].clone()).collect()
    };
    assert_eq!(state_of("tern_flow_failover_state", None), ["active"]);
    assert!(state_of("tern_group_translation_state", Some("billing")).contains(&"exact".to_string()));
    let flow_json = web.get("/api/v1/flows/src-%3Edst", None).await.json();
    assert_eq!((flow_json["health"].as_str(), flow_json["failover_state"].as_str()), (Some("paused"), Some("active")));
    let billing_row = flow_json["groups"].as_array().expect("groups").iter().find(|g| g["group"] == "billing" && g["partition"] == 0).expect("billing").clone();
    assert_eq!(billing_row["state"], "exact");
    let sync = billing_row["sync"].as_str().expect("sync word");
    assert_eq!(state_of("tern_group_sync_state", Some("billing")).first().map(String::as_str), Some(sync));
    assert!(tern_mirror::states::SyncState::ALL.iter().any(|s| s.as_str() == sync), "{sync}");

    // Resume through the API with the bearer token: everything arrives.
    let resumed = web.post_api("/api/v1/flows/src-%3Edst/resume", Some(TOKEN)).await;
    assert_eq!(resumed.status, StatusCode::OK, "{}", resumed.body);
    assert_eq!(resumed.json()["control"]["paused"], false);
    wait_until(Duration::from_secs(30), "caught up after resume", async || {
        let json = web.get("/api/v1/flows/src-%3Edst", None).await.json();
        let parts = json["partitions"].as_array()?;
        (parts.iter().all(|p| p["replicated_offset"] == 125 && p["lag_records"] == 0)).then_some(())
    })
    .await;
    let target = Client::connect(ClientConfig::new(&dst.bootstrap())).await.expect("target client");
    for p in 0..4 {
        assert_eq!(target.list_offset("src.orders", p, tern_kafka::client::LATEST).await.expect("end").0, 125);
    }
    let history = web.get("/api/v1/flows/src-%3Edst/history?minutes=5", None).await;
    assert_eq!(history.status, StatusCode::OK);
    let samples = history.json()["samples"].as_array().expect("samples").clone();
    assert!(samples.iter().any(|s| s["lag_records"] == 100), "the pause shows in the lag history");

    // Unknown paths and bad parameters.
    let missing = web.get("/no/such/page", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(text(&missing.html(), "#status"), "404 Not Found");
    let missing_api = web.get("/api/v1/nothing", None).await;
    assert_eq!(missing_api.status, StatusCode::NOT_FOUND);
    assert!(missing_api.json()["error"].as_str().is_some());
    assert_eq!(web.get("/flows/a-%3Ez", None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(web.get("/api/v1/flows/a-%3Ez", None).await.status, StatusCode::NOT_FOUND);
    for bad in ["minutes=0", "minutes=61", "minutes=ten", "window=5"] {
        let r = web.get(&format!("/api/v1/flows/src-%3Edst/history?{bad}"), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.json()["error"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let bad_action = web.post_api("/api/v1/flows/src-%3Edst/explode", Some(TOKEN)).await;
    assert_eq!(bad_action.status, StatusCode::NOT_FOUND);
    // Pages may not be framed by other sites.
    assert_eq!(web.get("/", None).await.headers.get("x-frame-options").and_then(|v| v.to_str().ok()), Some("DENY"));

    mirror.stop().await;
}

/// A `tern demo` child process, killed when dropped.
struct Demo {
    child: std::process::Child,
    url: String,
    output: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Demo {
    fn start(data: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> Demo {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(tern_bin());
        cmd.args(["demo", "--web", "127.0.0.1:0", "--data"]).arg(data).args(args).env("RUST_LOG", "info").stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start tern demo");
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = output.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("output").push_str(&(line + "\n"));
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let sink = output.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("dashboard ") {
                    let _ = tx.send(url.trim().trim_end_matches('/').to_string());
                }
                sink.lock().expect("output").push_str(&(line + "\n"));
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("tern demo printed no dashboard address:\n{}", output.lock().expect("output")));
        Demo { child, url, output }
    }

    fn output(&self) -> String {
        self.output.lock().expect("output").clone()
    }

    /// `(first word, second word)` of every stdout line that starts with `kind`: the demo
    /// prints `broker <cluster> <address>` and `group <cluster> <group>` before the dashboard.
    fn listed(&self, kind: &str) -> BTreeMap<String, String> {
        self.output()
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some(kind)).then_some(())?;
                Some((words.next()?.to_string(), words.next()?.to_string()))
            })
            .collect()
    }

    /// GET of a dashboard API path, parsed as JSON.
    async fn api(&self, path: &str) -> serde_json::Value {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.url.trim_start_matches("http://");
        let mut http = tokio::net::TcpStream::connect(addr).await.expect("connect to the dashboard");
        http.write_all(format!("GET {path} HTTP/1.0\r\nHost: tern\r\n\r\n").as_bytes()).await.expect("request");
        let mut reply = Vec::new();
        http.read_to_end(&mut reply).await.expect("response");
        let reply = String::from_utf8_lossy(&reply);
        let (head, body) = reply.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP body: {reply}"));
        assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{path} is not JSON ({e}): {body}"))
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_chromium_against_tern_demo() {
    let data = tempfile::tempdir().expect("tempdir");
    let token = format!("tok-{}", std::process::id());
    let demo = Demo::start(data.path(), &["--burst-every", "15s", "--burst-for", "3s"], &[("TERN_WEB_TOKEN", &token)]);
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    let mut cmd = std::process::Command::new(python());
    cmd.arg(compat_script("dashboard_browser.py")).arg(&demo.url).arg(&shots).env("TERN_WEB_TOKEN", &token);
    run_client(cmd, Duration::from_secs(360)).await;
    for name in ["topology.png", "flows-burst.png", "flows-caught-up.png", "flow-paused.png", "topology-paused.png", "flow-resumed.png", "drill-progress.png", "drill-report.png"] {
        let png = std::fs::read(shots.join(name)).unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{name} is a real screenshot");
    }
    println!("screenshots in {}", shots.display());
    // The token was used throughout but never printed.
    let output = demo.output();
    assert!(output.contains("flow paused"), "the pause is logged:\n{output}");
    assert!(!output.contains(&token), "the operator token appeared in the demo's output");
    assert!(!output.contains("exporting traces"), "no OTLP endpoint set, so no trace export");
}

/// `tern demo` as a user runs it: load on every partition of every topic in every region, a
/// consumer group in every region that reads and commits, clusters labelled with the cloud
/// regions their names say, and the groups translated onto the flows out of their region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tern_demo_loads_every_partition_and_consumes_in_every_region() {
    let data = tempfile::tempdir().expect("tempdir");
    let demo = Demo::start(data.path(), &["--burst-every", "0s"], &[]);
    let (brokers, groups) = (demo.listed("broker"), demo.listed("group"));
    let clusters = ["ap-south", "eu-west", "us-east"];
    assert!(brokers.keys().eq(clusters.iter()), "a broker per region:\n{}", demo.output());
    assert!(groups.keys().eq(clusters.iter()), "a consumer group per region:\n{}", demo.output());
    assert_eq!(groups.values().collect::<std::collections::BTreeSet<_>>().len(), 3, "a group of its own in each region: {groups:?}");

    // Region labels: the cloud region each cluster's name stands for, on the topology.
    let topology = demo.api("/api/v1/topology").await;
    let labels: BTreeMap<String, (String, String)> = topology["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .map(|c| (c["name"].as_str().unwrap_or_default().to_string(), (c["region"].as_str().unwrap_or_default().to_string(), c["cloud"].as_str().unwrap_or_default().to_string())))
        .collect();
    let want: BTreeMap<String, (String, String)> = [("ap-south", "centralindia", "azure"), ("eu-west", "europe-west1", "gcp"), ("us-east", "us-east-1", "aws")]
        .into_iter()
        .map(|(c, r, k)| (c.to_string(), (r.to_string(), k.to_string())))
        .collect();
    assert_eq!(labels, want);

    // The topics each region must have: its own where applications write, and the remote
    // copies every flow into it creates.
    let expected: BTreeMap<&str, [&str; 2]> =
        [("us-east", ["orders", "payments"]), ("eu-west", ["orders", "payments"]), ("ap-south", ["us-east.orders", "us-east.payments"])].into_iter().collect();
    let remote: BTreeMap<&str, [&str; 2]> = [("us-east", ["eu-west.orders", "eu-west.payments"]), ("eu-west", ["us-east.orders", "us-east.payments"])].into_iter().collect();
    let mut clients = BTreeMap::new();
    for (cluster, addr) in &brokers {
        clients.insert(cluster.clone(), Client::connect(ClientConfig::new(addr)).await.expect("connect"));
    }
    // Every partition of every topic but the internal ones (heartbeats included).
    let partitions: Vec<(String, String, i32)> = wait_until(Duration::from_secs(90), "every region's topics", async || {
        let mut all = Vec::new();
        for (cluster, client) in &clients {
            let md = client.refresh_metadata(None).await.ok()?;
            let needed = expected[cluster.as_str()].iter().chain(remote.get(cluster.as_str()).into_iter().flatten());
            for topic in needed {
                if md.topics.get(*topic).map(|t| t.partitions.len()) != Some(4) {
                    return None;
                }
            }
            for (topic, t) in &md.topics {
                if !tern_mirror::naming::is_internal(topic) {
                    all.extend(t.partitions.iter().map(|p| (cluster.clone(), topic.clone(), p.partition)));
                }
            }
        }
        Some(all)
    })
    .await;
    let ends = async || {
        let mut out = BTreeMap::new();
        for (cluster, topic, partition) in &partitions {
            let (end, _) = clients[cluster].list_offset(topic, *partition, tern_kafka::client::LATEST).await.expect("end offset");
            out.insert((cluster.clone(), topic.clone(), *partition), end);
        }
        out
    };
    let (before, since) = (ends().await, std::time::Instant::now());
    let after = wait_until(Duration::from_secs(60), "every partition of every topic to grow", async || {
        let now = ends().await;
        (since.elapsed() >= Duration::from_secs(5) && now.iter().all(|(k, end)| *end > before[k])).then_some(now)
    })
    .await;
    let secs = since.elapsed().as_secs_f64();
    for (k, end) in &after {
        println!("{:<9} {:<28} {}  {:>6.1} records/s", k.0, k.1, k.2, (end - before[k]) as f64 / secs);
    }

    // A member in each region's group reads every orders and payments topic there and commits
    // as it goes.
    for (cluster, group) in &groups {
        let client = &clients[cluster];
        let consumed: Vec<(String, i32)> = partitions
            .iter()
            .filter(|(c, t, _)| c == cluster && (t.ends_with("orders") || t.ends_with("payments")))
            .map(|(_, t, p)| (t.clone(), *p))
            .collect();
        assert_eq!(consumed.len(), if cluster == "ap-south" { 8 } else { 16 }, "{cluster}: {consumed:?}");
        let first = wait_until(Duration::from_secs(60), &format!("{group} in {cluster} to commit on every partition it reads"), async || {
            let info = client.describe_group(group).await.ok()?;
            let committed = client.all_committed_offsets(group).await.ok()?;
            (info.state == "Stable" && info.members == 1 && consumed.iter().all(|tp| committed.get(tp).is_some_and(|o| *o > 0))).then_some(committed)
        })
        .await;
        wait_until(Duration::from_secs(30), &format!("{group} in {cluster} to commit further on every partition"), async || {
            let committed = client.all_committed_offsets(group).await.ok()?;
            consumed.iter().all(|tp| committed.get(tp) > first.get(tp)).then_some(())
        })
        .await;
    }

    // The groups of both source regions are translated onto every flow out of their region,
    // on every partition.
    let translated = [("us-east->eu-west", "us-east"), ("us-east->ap-south", "us-east"), ("eu-west->us-east", "eu-west")];
    wait_until(Duration::from_secs(60), "translated offsets of every source region's group", async || {
        let rows = demo.api("/api/v1/groups").await;
        let rows = rows["groups"].as_array()?.clone();
        translated.iter().all(|(flow, cluster)| {
            let mine: Vec<&serde_json::Value> = rows.iter().filter(|r| r["flow"] == *flow && r["group"] == groups[*cluster].as_str()).collect();
            mine.len() == 8 && mine.iter().all(|r| r["translated_offset"].as_i64().is_some_and(|o| o > 0)) && mine.iter().any(|r| r["state"] == "exact")
        })
        .then_some(())
    })
    .await;
}

/// A stand-in OTLP/HTTP collector: accepts every POST, keeps (path, body).
async fn otlp_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = received.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // One request: headers, then Content-Length bytes of body.
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 8192];
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or_default().to_string();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        let mut chunk = [0u8; 8192];
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = buf[head_end..head_end + length].to_vec();
                    buf.drain(..head_end + length);
                    sink.lock().expect("received").push((path, body));
                    if socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_reach_an_otlp_receiver_when_the_endpoint_is_set() {
    let (endpoint, received) = otlp_receiver().await;
    let data = tempfile::tempdir().expect("tempdir");
    let demo = Demo::start(
        data.path(),
        &[],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint), ("OTEL_SERVICE_NAME", "tern-trace-test"), ("OTEL_BSP_SCHEDULE_DELAY", "500")],
    );
    // One dashboard request, for an HTTP span.
    let addr = demo.url.trim_start_matches("http://").to_string();
    let mut http = tokio::net::TcpStream::connect(&addr).await.expect("connect to the dashboard");
    tokio::io::AsyncWriteExt::write_all(&mut http, b"GET /flows HTTP/1.0\r\nHost: tern\r\n\r\n").await.expect("request");
    let mut page = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut http, &mut page).await.expect("response");
    assert!(page.starts_with(b"HTTP/1.0 200") || page.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&page[..page.len().min(200)]));

    // OTLP/HTTP protobuf carries span names and attribute strings verbatim.
    let contains = |needle: &[u8]| received.lock().expect("received").iter().any(|(_, body)| body.windows(needle.len()).any(|w| w == needle));
    wait_until(Duration::from_secs(60), "replication and HTTP spans at the receiver", async || {
        (contains(b"replicate") && contains(b"/flows") && contains(b"tern-trace-test") && contains(b"us-east->eu-west")).then_some(())
    })
    .await;
    let paths: std::collections::BTreeSet<String> = received.lock().expect("received").iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(paths, ["/v1/traces".to_string()].into_iter().collect(), "only traces are exported, to the standard path");
    assert!(demo.output().contains("exporting traces over OTLP"));
}

/// Logs in with the operator token; returns the session cookie.
async fn log_in(web: &Web) -> String {
    let login = web.post_form("/login", None, &format!("token={TOKEN}&next=%2F")).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    let set_cookie = login.headers.get(header::SET_COOKIE).and_then(|v| v.to_str().ok()).expect("session cookie");
    set_cookie.split(';').next().expect("cookie").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drills_from_the_dashboard_and_failover_state_on_the_topology() {
    let src = TestBroker::start().await;
    let dst = TestBroker::start().await;
    let source = Client::connect(ClientConfig::new(&src.bootstrap())).await.expect("source client");
    // Partition 2 stays empty: a group at its start has nothing to lose there.
    source.create_topic("ledger", 3, &BTreeMap::new()).await.expect("create");
    for p in 0..2 {
        source.produce("ledger", p, records(&format!("l{p}"), 50), -1, 10_000).await.expect("produce");
    }
    let mut committed = BTreeMap::new();
    committed.insert(("ledger".to_string(), 0), 20i64);
    committed.insert(("ledger".to_string(), 1), 50i64);
    committed.insert(("ledger".to_string(), 2), 0i64);
    source.commit_offsets("payments-app", &Membership::none(), &committed).await.expect("commit");
    let toml = format!(
        "[clusters.src]\nbootstrap = \"{}\"\n[clusters.dst]\nbootstrap = \"{}\"\n\n[[flows]]\nsource = \"src\"\ntarget = \"dst\"\ntopics = [\"ledger\"]\ncheckpoint_interval = \"500ms\"\n\n[mirror]\ntopic_refresh_interval = \"500ms\"\nfetch_max_wait = \"100ms\"\n",
        src.bootstrap(),
        dst.bootstrap()
    );
    let state_dir = tempfile::tempdir().expect("tempdir");
    let validated = tern_mirror::config::parse(&toml).expect("config");
    let topology = tern_web::Topology::from_validated(&validated).with_state_dir(state_dir.path().to_path_buf());
    let mirror = TestMirror::start(&toml);
    let state = tern_web::AppState::new(topology, mirror.status.clone(), Some(TOKEN.into()));
    let _pollers = state.spawn_pollers_every(Duration::from_millis(200));
    let web = Web { app: tern_web::router(state) };
    wait_until(Duration::from_secs(30), "100 records replicated", async || {
        let json = web.get("/api/v1/flows/src-%3Edst", None).await.json();
        let parts = json["partitions"].as_array()?;
        let ends: Vec<i64> = parts.iter().filter_map(|p| p["replicated_offset"].as_i64()).collect();
        (ends == [50, 50, 0] && parts.iter().all(|p| p["lag_records"] == 0)).then_some(())
    })
    .await;

    // Starting a drill needs the token, from the page and from the API.
    let doc = web.get("/drills", None).await.html();
    assert!(doc.select(&sel("#start-drill")).next().is_none(), "no start button without a session");
    assert_eq!(web.post_form("/drills", None, "flow=src-%3Edst&csrf=x").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(web.post_api("/api/v1/drills", None).await.status, StatusCode::UNAUTHORIZED);
    let cookie = log_in(&web).await;
    let doc = web.get("/drills", Some(&cookie)).await.html();
    let form = doc.select(&sel("#start form")).next().expect("drill form");
    let csrf = form.select(&sel("input[name=csrf]")).next().and_then(|i| i.value().attr("value")).expect("csrf").to_string();
    let flows: Vec<&str> = form.select(&sel("select[name=flow] option")).filter_map(|o| o.value().attr("value")).collect();
    assert_eq!(flows, vec!["src->dst"]);
    assert_eq!(web.post_form("/drills", Some(&cookie), "flow=src-%3Edst&csrf=forged").await.status, StatusCode::FORBIDDEN);
    let bad_regex = web.post_form("/drills", Some(&cookie), &format!("flow=src-%3Edst&groups=%28&csrf={csrf}")).await;
    assert_eq!(bad_regex.status, StatusCode::BAD_REQUEST, "an invalid groups regex is a 400");
    assert_eq!(web.post_form("/drills", Some(&cookie), &format!("flow=nope&csrf={csrf}")).await.status, StatusCode::NOT_FOUND);

    let started = web.post_form("/drills", Some(&cookie), &format!("flow=src-%3Edst&groups=payments.%2A&csrf={csrf}")).await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let run_path = started.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).expect("location").to_string();
    assert!(run_path.starts_with("/drills/runs/"), "{run_path}");
    // The progress page follows the drill until it links its report.
    let report_path = wait_until(Duration::from_secs(60), "the drill to finish", async || {
        let doc = web.get(&run_path, None).await.html();
        doc.select(&sel("#report-link")).next().and_then(|a| a.value().attr("href").map(String::from))
    })
    .await;
    let doc = web.get(&run_path, None).await.html();
    let events: Vec<String> = doc.select(&sel("#events li")).map(|li| li.text().collect()).collect();
    assert!(events.first().is_some_and(|e| e.starts_with("drill ")), "{events:?}");
    assert!(events.iter().any(|e| e.starts_with("payments-app: applied to tern-drill.")), "{events:?}");
    assert!(events.last().is_some_and(|e| e == "finished: pass"), "{events:?}");

    // The report: nothing to lose, the group translated exactly; the same numbers as JSON.
    let report = web.get(&report_path, None).await;
    assert_eq!(report.status, StatusCode::OK);
    let doc = report.html();
    assert_eq!(text(&doc, "#verdict"), "pass");
    assert_eq!(text(&doc, "#rpo-records"), "0");
    assert_eq!((text(&doc, "#redelivered"), text(&doc, "#missed")), ("0".to_string(), "0".to_string()));
    // Per partition: the committed offset, where it resumes on the target, and the check.
    let rows: Vec<Vec<String>> = doc
        .select(&sel("section.drill-group[data-group=payments-app] tbody tr"))
        .map(|tr| tr.select(&sel("td")).map(|c| c.text().collect::<String>()).collect())
        .collect();
    let resume: Vec<Vec<String>> = rows.iter().map(|r| r[1..6].to_vec()).collect();
    let expected = [["0", "20", "20", "exact", "match"], ["1", "50", "50", "ahead-of-replication", "match"], ["2", "0", "-", "nothing-replicated", "nothing-to-compare"]];
    assert_eq!(resume, expected.map(|r| r.map(String::from).to_vec()), "{rows:?}");
    let id = report_path.trim_start_matches("/drills/").to_string();
    let json = web.get(&format!("/api/v1/drills/{id}"), None).await.json();
    assert_eq!((json["verdict"].as_str(), json["rpo_records"].as_i64(), json["schema_version"].as_i64()), (Some("pass"), Some(0), Some(2)));
    assert_eq!(json["groups"][0]["group"], "payments-app");
    assert!(json["rto_ms"].as_u64().is_some(), "RTO measured");

    // A second drill through the API; both are in the history, and on disk.
    let mut req = Request::post("/api/v1/drills").header(header::AUTHORIZATION, format!("Bearer {TOKEN}")).header(header::CONTENT_TYPE, "application/json");
    req = req.header(header::ACCEPT, "application/json");
    let accepted = web.send(req.body(Body::from(r#"{"flow": "src->dst"}"#)).expect("request")).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    let status_path = accepted.json()["status"].as_str().expect("status path").to_string();
    let second = wait_until(Duration::from_secs(60), "the API drill to finish", async || {
        let run = web.get(&status_path, None).await.json();
        (run["done"] == true).then(|| run["report_id"].as_str().map(String::from)).flatten()
    })
    .await;
    let history = web.get("/api/v1/drills", None).await.json();
    let ids: Vec<&str> = history["drills"].as_array().expect("drills").iter().filter_map(|d| d["id"].as_str()).collect();
    assert_eq!(ids, vec![second.as_str(), id.as_str()], "newest first");
    assert!(state_dir.path().join("drills").join(format!("{id}.json")).exists());
    let doc = web.get("/drills", None).await.html();
    let listed: Vec<&str> = doc.select(&sel("#history tbody tr")).filter_map(|tr| tr.value().attr("data-drill")).collect();
    assert_eq!(listed, vec![second.as_str(), id.as_str()]);
    let trend = doc.select(&sel("figure.trend[data-flow=\"src->dst\"] polyline.rpo")).next().expect("RPO chart");
    assert_eq!(trend.value().attr("points").map(|p| p.split(' ').count()), Some(2), "one point per drill");
    assert_eq!(web.get("/drills/20000101T000000Z-0000", None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(web.get("/api/v1/drills/..%2Fetc", None).await.status, StatusCode::NOT_FOUND);

    // Failover state shows on the topology and the flow.
    let target = Client::connect(ClientConfig::new(&dst.bootstrap())).await.expect("target client");
    tern_mirror::control::update(&target, "dst", "src->dst", "test: failed over", |c| c.state = tern_mirror::control::FailoverState::FailedOver).await.expect("control");
    wait_until(Duration::from_secs(30), "failed-over on the topology", async || {
        let doc = web.get("/", None).await.html();
        let edge = doc.select(&sel("svg#topology a.flow-edge[data-flow=\"src->dst\"]")).next()?;
        let label: String = edge.select(&sel("text")).flat_map(|t| t.text()).collect();
        (edge.value().classes().any(|c| c == "failed-over") && label.contains("failed-over")).then_some(())
    })
    .await;
    assert_eq!(text(&web.get("/flows/src-%3Edst", None).await.html(), "#flow-failover"), "failed-over");
    tern_mirror::control::update(&target, "dst", "src->dst", "test: back", |c| c.state = tern_mirror::control::FailoverState::Active).await.expect("control");
    mirror.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_workers_dashboard_shows_the_whole_flow() {
    let src = TestBroker::start().await;
    let dst = TestBroker::start().await;
    let source = Client::connect(ClientConfig::new(&src.bootstrap())).await.expect("source client");
    source.create_topic("events", 4, &BTreeMap::new()).await.expect("create");
    let toml = format!(
        "[clusters.src]\nbootstrap = \"{}\"\n[clusters.dst]\nbootstrap = \"{}\"\n\n[[flows]]\nsource = \"src\"\ntarget = \"dst\"\ntopics = [\"events\"]\nemit_heartbeats = false\n\n[mirror]\ntopic_refresh_interval = \"500ms\"\nfetch_max_wait = \"100ms\"\n",
        src.bootstrap(),
        dst.bootstrap()
    );
    // Two workers of the same flow share its partitions.
    let first = TestMirror::start(&toml);
    let second = TestMirror::start(&toml);
    let status = |m: &TestMirror| m.status["src->dst"].snapshot().partitions.len();
    wait_until(Duration::from_secs(60), "the partitions split between the workers", async || (status(&first) == 2 && status(&second) == 2).then_some(())).await;
    for p in 0..4 {
        source.produce("events", p, records(&format!("e{p}"), 30 + p as usize * 10), -1, 10_000).await.expect("produce");
    }
    let validated = tern_mirror::config::parse(&toml).expect("config");
    let state = tern_web::AppState::new(tern_web::Topology::from_validated(&validated), first.status.clone(), None);
    let _pollers = state.spawn_pollers_every(Duration::from_millis(200));
    let web = Web { app: tern_web::router(state) };
    // The first worker's page lists all four partitions, the other worker's too, caught up.
    let doc = wait_until(Duration::from_secs(30), "all partitions replicated on the first worker's page", async || {
        let doc = web.get("/flows/src-%3Edst", None).await.html();
        let rows: Vec<BTreeMap<String, String>> = (0..4).filter_map(|p| doc.select(&sel(&format!("#partitions tr[data-partition=\"{p}\"]"))).next().map(|_| row_fields(&doc, &format!("#partitions tr[data-partition=\"{p}\"]")))).collect();
        let done = rows.len() == 4 && rows.iter().enumerate().all(|(p, f)| f["replicated_offset"] == (30 + p * 10).to_string() && f["lag_records"] == "0");
        done.then_some(doc)
    })
    .await;
    let workers: Vec<String> = (0..4).map(|p| row_fields(&doc, &format!("#partitions tr[data-partition=\"{p}\"]"))["worker"].clone()).collect();
    // "this one" exactly where the first worker replicates, "another" elsewhere.
    let owned = first.status["src->dst"].snapshot().partitions;
    let expected: Vec<&str> = (0..4).map(|p| if owned.contains_key(&("events".to_string(), p)) { "this one" } else { "another" }).collect();
    assert_eq!(workers, expected);
    assert_eq!(owned.len(), 2);
    let json = web.get("/api/v1/flows/src-%3Edst", None).await.json();
    assert_eq!(json["partitions"].as_array().map(Vec::len), Some(4));
    // A partition of the other worker shows its lag too: pause the flow, write to it.
    let other: i32 = (0..4).find(|p| !first.status["src->dst"].snapshot().partitions.contains_key(&("events".to_string(), *p))).expect("another worker's partition");
    let target = Client::connect(ClientConfig::new(&dst.bootstrap())).await.expect("target client");
    tern_mirror::control::update(&target, "dst", "src->dst", "test: pause", |c| c.paused = true).await.expect("pause");
    wait_until(Duration::from_secs(30), "both workers paused", async || (first.status["src->dst"].control().paused && second.status["src->dst"].control().paused).then_some(())).await;
    source.produce("events", other, records("late", 7), -1, 10_000).await.expect("produce");
    wait_until(Duration::from_secs(30), "the other worker's partition lagging by 7 on the first worker's page", async || {
        let doc = web.get("/flows/src-%3Edst", None).await.html();
        let f = row_fields(&doc, &format!("#partitions tr[data-partition=\"{other}\"]"));
        (f["lag_records"] == "7" && f["worker"] == "another").then_some(())
    })
    .await;
    assert_eq!(text(&web.get("/flows/src-%3Edst", None).await.html(), "#flow-lag-records"), "7", "the flow's lag counts every worker's partitions");
    tern_mirror::control::update(&target, "dst", "src->dst", "test: resume", |c| c.paused = false).await.expect("resume");
    second.stop().await;
    first.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_shows_as_such_and_holds_up_nothing_else() {
    let src = TestBroker::start().await;
    let dst = TestBroker::start().await;
    // A port nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let source = Client::connect(ClientConfig::new(&src.bootstrap())).await.expect("source client");
    source.create_topic("orders", 1, &BTreeMap::new()).await.expect("create");
    let toml = format!(
        "[clusters.src]\nbootstrap = \"{}\"\n[clusters.dst]\nbootstrap = \"{}\"\n[clusters.gone]\nbootstrap = \"{dead}\"\n\n\
         [[flows]]\nsource = \"src\"\ntarget = \"dst\"\ntopics = [\"orders\"]\n\n[[flows]]\nsource = \"src\"\ntarget = \"gone\"\ntopics = [\"orders\"]\n\n\
         [mirror]\ntopic_refresh_interval = \"500ms\"\nfetch_max_wait = \"100ms\"\n",
        src.bootstrap(),
        dst.bootstrap()
    );
    let validated = tern_mirror::config::parse(&toml).expect("config");
    let mirror = TestMirror::start(&toml);
    let state = tern_web::AppState::new(tern_web::Topology::from_validated(&validated), mirror.status.clone(), Some(TOKEN.into()));
    let _pollers = state.spawn_pollers_every(Duration::from_millis(200));
    let web = Web { app: tern_web::router(state) };
    let doc = wait_until(Duration::from_secs(30), "the unreachable cluster marked on the topology", async || {
        let doc = web.get("/", None).await.html();
        let node = doc.select(&sel("svg#topology g.cluster[data-cluster=gone]")).next()?;
        let reachable = doc.select(&sel("svg#topology g.cluster[data-cluster=dst] text.brokers")).next().map(|t| t.text().collect::<String>());
        (node.value().classes().any(|c| c == "error") && reachable.as_deref() == Some("1 broker")).then_some(doc)
    })
    .await;
    let gone_text: String = doc.select(&sel("svg#topology g.cluster[data-cluster=gone] text.brokers")).flat_map(|t| t.text()).collect();
    assert_eq!(gone_text, "unreachable");
    let cluster = web.get("/api/v1/topology", None).await.json();
    let gone = cluster["clusters"].as_array().expect("clusters").iter().find(|c| c["name"] == "gone").expect("gone").clone();
    assert_eq!(gone["reachable"], false);
    assert!(gone["error"].as_str().is_some_and(|e| !e.is_empty()), "{gone}");
    // Errors are shown without a login; the address they name is not.
    let clusters = web.get("/api/v1/clusters", None).await;
    assert!(clusters.body.contains("<address>") && !clusters.body.contains(&dead.to_string()), "{}", clusters.body);
    // The healthy flow can still be paused and resumed; the flow into the lost cluster says why not.
    let paused = web.post_api("/api/v1/flows/src-%3Edst/pause", Some(TOKEN)).await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.body);
    assert_eq!(web.post_api("/api/v1/flows/src-%3Edst/resume", Some(TOKEN)).await.status, StatusCode::OK);
    let refused = web.post_api("/api/v1/flows/src-%3Egone/pause", Some(TOKEN)).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    let message = refused.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("cluster gone") && message.ends_with("the flow was not changed"), "{message}");
    // The flow into the lost cluster reports it, without the address.
    wait_until(Duration::from_secs(30), "the flow's error on its page", async || {
        let doc = web.get("/flows/src-%3Egone", None).await.html();
        doc.select(&sel("p.flow-error")).next().map(|_| ())
    })
    .await;
    let flow = web.get("/api/v1/flows/src-%3Egone", None).await;
    assert!(flow.body.contains("<address>") && !flow.body.contains(&dead.to_string()), "{}", flow.body);
    assert!(!web.get("/healthz", None).await.body.contains(&dead.to_string()));
    mirror.stop().await;
}

/// A raw HTTP/1.1 response (see [`http_request`]) as a [`Reply`].
fn parse_reply(raw: &str) -> Reply {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse::<u16>().ok()).unwrap_or_else(|| panic!("no status line: {raw}"));
    let mut headers = axum::http::HeaderMap::new();
    for (k, v) in lines.filter_map(|l| l.split_once(':')) {
        if let (Ok(k), Ok(v)) = (header::HeaderName::from_bytes(k.trim().as_bytes()), header::HeaderValue::from_str(v.trim())) {
            headers.append(k, v);
        }
    }
    assert!(headers.get(header::TRANSFER_ENCODING).is_none(), "a chunked answer: {raw}");
    Reply { status: StatusCode::from_u16(status).expect("status"), headers, body: body.to_string() }
}

/// Whether the description lists `status` for the operation, as a JSON `Error`.
fn describes_error(doc: &serde_json::Value, method: &str, path: &str, status: StatusCode) -> bool {
    let mut response = &doc["paths"][path][method]["responses"][status.as_str()];
    if let Some(name) = response["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/responses/")) {
        response = &doc["components"]["responses"][name];
    }
    response["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Error"
}

/// The REST API against its OpenAPI description (`/api/v1/openapi.json`) on a running `tern
/// demo`: changes refused without the token, every error answered as described, and then
/// schemathesis fuzzes every operation with the token (no 5xx; status, content type and body as
/// described; nothing accepted without the token). Half of its flow names, drill ids and run ids
/// are real ones, so it gets past 404 into paused flows and full drill reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_as_its_openapi_description_says() {
    let data = tempfile::tempdir().expect("tempdir");
    let token = format!("tok-{}", std::process::id());
    let demo = Demo::start(data.path(), &[], &[("TERN_WEB_TOKEN", &token)]);
    let addr = demo.url.trim_start_matches("http://").to_string();
    let bearer = format!("Bearer {token}");
    let call = async |method: &str, path: &str, auth: Option<&str>, body: &str| {
        let mut headers = vec![("Content-Type", "application/json")];
        headers.extend(auth.map(|a| ("Authorization", a)));
        parse_reply(&http_request(&addr, method, path, &headers, body).await)
    };

    let description = call("GET", "/api/v1/openapi.json", None, "").await;
    assert_eq!(description.status, StatusCode::OK);
    assert_eq!(description.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some("application/json"));
    let doc = description.json();
    let operations: usize = doc["paths"].as_object().expect("paths").values().map(|ops| ops.as_object().map_or(0, |o| o.len())).sum();
    let flows: Vec<String> = call("GET", "/api/v1/flows", None, "").await.json()["flows"].as_array().expect("flows").iter().filter_map(|f| f["name"].as_str().map(String::from)).collect();
    assert_eq!(flows.len(), 3, "{flows:?}");

    // Every change is refused without the token, with a wrong one and with the token outside
    // the Bearer scheme: 401 before anything else, as described, and nothing changes.
    let changes = [
        ("/api/v1/flows/{name}/{action}", "/api/v1/flows/us-east-%3Eeu-west/pause", ""),
        ("/api/v1/flows/{name}/{action}", "/api/v1/flows/us-east-%3Eeu-west/resume", ""),
        ("/api/v1/flows/{name}/{action}", "/api/v1/flows/no-%3Esuch/pause", ""),
        ("/api/v1/drills", "/api/v1/drills", r#"{"flow": "us-east->eu-west"}"#),
    ];
    for (operation, path, body) in changes {
        assert!(describes_error(&doc, "post", operation, StatusCode::UNAUTHORIZED), "POST {operation}: 401");
        for auth in [None, Some("Bearer wrong"), Some(token.as_str())] {
            let refused = call("POST", path, auth, body).await;
            assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "POST {path} with {auth:?}: {}", refused.body);
            assert!(refused.json()["error"].as_str().is_some_and(|e| e.contains("operator token")), "{}", refused.body);
        }
    }
    let flow = call("GET", "/api/v1/flows/us-east-%3Eeu-west", None, "").await.json();
    assert_eq!((flow["paused"].as_bool(), flow["control_reason"].as_str()), (Some(false), Some("")), "{flow}");
    assert_eq!(call("GET", "/api/v1/drills", None, "").await.json()["drills"], serde_json::json!([]));

    // Errors the fuzzer reaches only by chance, every time: a status the description lists for
    // the operation, with a JSON error.
    let errors = [
        ("GET", "/api/v1/flows/{name}", "/api/v1/flows/no-%3Esuch", "", StatusCode::NOT_FOUND),
        ("GET", "/api/v1/flows/{name}", "/api/v1/flows/%FF", "", StatusCode::BAD_REQUEST),
        ("GET", "/api/v1/flows/{name}/history", "/api/v1/flows/no-%3Esuch/history", "", StatusCode::NOT_FOUND),
        ("GET", "/api/v1/flows/{name}/history", "/api/v1/flows/us-east-%3Eeu-west/history?minutes=61", "", StatusCode::BAD_REQUEST),
        ("GET", "/api/v1/flows/{name}/history", "/api/v1/flows/us-east-%3Eeu-west/history?seconds=5", "", StatusCode::BAD_REQUEST),
        ("GET", "/api/v1/drills/{id}", "/api/v1/drills/..%2F..%2Ftern", "", StatusCode::NOT_FOUND),
        ("GET", "/api/v1/drills/runs/{run}", "/api/v1/drills/runs/none", "", StatusCode::NOT_FOUND),
        ("POST", "/api/v1/flows/{name}/{action}", "/api/v1/flows/no-%3Esuch/pause", "", StatusCode::NOT_FOUND),
        ("POST", "/api/v1/flows/{name}/{action}", "/api/v1/flows/us-east-%3Eeu-west/explode", "", StatusCode::NOT_FOUND),
        ("POST", "/api/v1/drills", "/api/v1/drills", "{}", StatusCode::BAD_REQUEST),
        ("POST", "/api/v1/drills", "/api/v1/drills", r#"{"flow": "us-east->eu-west", "groups": "("}"#, StatusCode::BAD_REQUEST),
        ("POST", "/api/v1/drills", "/api/v1/drills", r#"{"flow": "no->such"}"#, StatusCode::NOT_FOUND),
    ];
    for (method, operation, path, body, status) in errors {
        let reply = call(method, path, Some(&bearer), body).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
        assert!(reply.json()["error"].as_str().is_some_and(|e| !e.is_empty()), "{method} {path}: {}", reply.body);
        assert!(describes_error(&doc, &method.to_lowercase(), operation, status), "{method} {operation}: {status} is not described");
    }

    // A method a path does not answer: 405 with the methods it does, and a JSON error.
    let refused = call("DELETE", "/api/v1/flows/us-east-%3Eeu-west", Some(&bearer), "").await;
    assert_eq!(refused.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(refused.headers.get(header::ALLOW).and_then(|v| v.to_str().ok()), Some("GET,HEAD"));
    assert!(refused.json()["error"].as_str().is_some_and(|e| e.contains("DELETE")), "{}", refused.body);

    // With the token: a drill, followed to its report.
    let started = call("POST", "/api/v1/drills", Some(&bearer), r#"{"flow": "us-east->eu-west"}"#).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    let run = started.json()["run"].as_str().expect("run").to_string();
    let report = wait_until(Duration::from_secs(60), "the drill's report", async || {
        let r = call("GET", &format!("/api/v1/drills/runs/{run}"), None, "").await.json();
        assert!(r["error"].is_null(), "{r}");
        r["report_id"].as_str().map(String::from)
    })
    .await;

    // The fuzzer, in a directory of its own (it keeps crash files where it runs). One worker:
    // Python 3.11's parser, which Hypothesis uses to describe strategies, is not thread-safe.
    let work = tempfile::tempdir().expect("tempdir");
    let values = |v: &[String]| v.iter().map(|s| serde_json::to_string(s).expect("json")).collect::<Vec<_>>().join(", ");
    let config = format!(
        "[dictionaries]\nflows = {{ values = [{}] }}\nreports = {{ values = [{}] }}\nruns = {{ values = [{}] }}\n\n\
         [parameters]\n\"path.name\" = {{ dictionary = \"flows\", probability = 0.5 }}\n\
         \"path.id\" = {{ dictionary = \"reports\", probability = 0.5 }}\n\"path.run\" = {{ dictionary = \"runs\", probability = 0.5 }}\n",
        values(&flows),
        values(&[report]),
        values(&[run])
    );
    std::fs::write(work.path().join("schemathesis.toml"), config).expect("config");
    let mut cmd = std::process::Command::new(python().with_file_name("schemathesis"));
    cmd.current_dir(work.path())
        .args(["--config-file", "schemathesis.toml", "--no-color", "run"])
        .arg(format!("{}/api/v1/openapi.json", demo.url))
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,ignored_auth,unsupported_method"])
        .args(["--max-examples", "25", "--workers", "1", "--request-timeout", "10", "--generation-database", "none"])
        .args(["--header", &format!("Authorization: {bearer}")]);
    let out = run_client(cmd, Duration::from_secs(120)).await;
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    // Every operation but the one that serves the description, which schemathesis leaves out.
    assert!(summary.contains(&format!("Tested: {}\n", operations - 1)), "{operations} operations described:\n{summary}");
    assert!(summary.contains("No issues found"), "{summary}");

    let output = demo.output();
    assert!(!output.contains("panicked"), "{output}");
    assert!(!output.contains(&token), "the operator token appeared in the demo's output");
}

/// Wrong tokens are throttled across the API and the login page (the right token waits too),
/// and session cookies carry `Secure` behind a TLS-terminating proxy or when configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_are_throttled_and_cookies_can_be_secure() {
    let state = tern_web::AppState::new(tern_web::Topology::default(), BTreeMap::new(), Some(TOKEN.into()));
    let web = Web { app: tern_web::router(state.clone()) };
    // Without the header nothing is guessed, and nothing counts.
    for _ in 0..20 {
        assert_eq!(web.post_api("/api/v1/drills", None).await.status, StatusCode::UNAUTHORIZED);
    }
    for i in 0..tern_web::auth::GUESSES_PER_WINDOW {
        let guess = if i % 2 == 0 { web.post_api("/api/v1/drills", Some("guess")).await } else { web.post_form("/login", None, "token=guess&next=%2F").await };
        assert_eq!(guess.status, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    let throttled = web.post_api("/api/v1/flows/a-%3Eb/pause", Some(TOKEN)).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS, "{}", throttled.body);
    assert_eq!(throttled.headers.get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("60"));
    assert!(throttled.json()["error"].as_str().is_some_and(|e| e.contains("too many wrong tokens")));
    let login = web.post_form("/login", None, &format!("token={TOKEN}&next=%2F")).await;
    assert_eq!(login.status, StatusCode::TOO_MANY_REQUESTS, "the right token waits too");
    assert!(login.headers.get(header::SET_COOKIE).is_none());

    // Secure cookies: behind a proxy that terminated TLS, or when configured.
    let state = tern_web::AppState::new(tern_web::Topology::default(), BTreeMap::new(), Some(TOKEN.into()));
    let web = Web { app: tern_web::router(state.clone()) };
    let cookie = |r: &Reply| r.headers.get(header::SET_COOKIE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let plain = web.post_form("/login", None, &format!("token={TOKEN}&next=%2F")).await;
    assert!(cookie(&plain).contains("HttpOnly") && !cookie(&plain).contains("Secure"), "{}", cookie(&plain));
    let req = Request::post("/login").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded").header("x-forwarded-proto", "https");
    let proxied = web.send(req.body(Body::from(format!("token={TOKEN}&next=%2F"))).expect("request")).await;
    assert!(cookie(&proxied).ends_with("; Secure"), "{}", cookie(&proxied));
    state.set_secure_cookies(true);
    let configured = web.post_form("/login", None, &format!("token={TOKEN}&next=%2F")).await;
    assert!(cookie(&configured).ends_with("; Secure"), "{}", cookie(&configured));
}
