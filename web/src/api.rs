//! The REST API under `/api/v1/`: JSON for everything the pages show, plus pause, resume and
//! drills. Handlers are named `<resource>_<method>`; errors are [`WebError`]s, answered as
//! `{"error": "..."}` with a 4xx or 5xx status, malformed paths and query strings included.
//!
//! The API describes itself at `/api/v1/openapi.json` ([`OPENAPI`], OpenAPI 3.1): every
//! endpoint, its parameters, answers and errors, and which need the operator token. The
//! integration tests fuzz the running service against it.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::drills::StartDrill;
use crate::error::WebError;
use crate::state::AppState;

type ApiResult = Result<Response, WebError>;

/// The OpenAPI description of this API, kept by hand beside the handlers it describes.
pub const OPENAPI: &str = include_str!("../static/openapi.json");

fn no_such_flow(name: &str) -> WebError {
    WebError::NotFound(format!("no flow named {name:?}; flows are named source->target"))
}

/// The bearer token of a changing request.
fn authorize(state: &AppState, headers: &HeaderMap, what: &str) -> Result<(), WebError> {
    state.0.auth.check_bearer(headers).map_err(|refusal| {
        tracing::warn!("refused an API change ({what}): {}", refusal.message());
        WebError::from(refusal)
    })
}

pub async fn openapi_get() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub async fn topology_get(State(state): State<AppState>) -> Response {
    let clusters = state.cluster_views();
    let flows = state.flow_views();
    let edges: Vec<serde_json::Value> = flows
        .iter()
        .map(|f| {
            json!({
                "flow": f.name, "source": f.source, "target": f.target, "health": f.health,
                "records_per_second": f.outlook.records_per_second, "lag_seconds": f.lag_seconds,
                "lag_records": f.lag_records, "paused": f.paused, "failover_state": f.failover_state,
            })
        })
        .collect();
    Json(json!({ "clusters": clusters, "flows": edges, "config": state.config_info() })).into_response()
}

/// The configured clusters (never their addresses or credentials) with what the last poll saw
/// and the flows on either side of them: the topology's nodes.
pub async fn clusters_get(State(state): State<AppState>) -> Response {
    Json(json!({ "clusters": state.cluster_views() })).into_response()
}

pub async fn flows_get(State(state): State<AppState>) -> Response {
    Json(json!({ "flows": state.flow_views() })).into_response()
}

pub async fn flow_get(State(state): State<AppState>, path: Result<Path<String>, PathRejection>) -> ApiResult {
    let Path(name) = path?;
    let flow = state.flow_view(&name).ok_or_else(|| no_such_flow(&name))?;
    Ok(Json(flow).into_response())
}

/// `?minutes=N` (1 to 60, default 60): the flow's and its partitions' lag samples.
pub async fn flow_history_get(State(state): State<AppState>, path: Result<Path<String>, PathRejection>, query: Result<Query<HashMap<String, String>>, QueryRejection>) -> ApiResult {
    let (Path(name), Query(q)) = (path?, query?);
    let minutes = match q.get("minutes").map(|m| m.parse::<i64>()) {
        None => 60,
        Some(Ok(m)) if (1..=60).contains(&m) => m,
        Some(_) => return Err(WebError::BadRequest("minutes must be a whole number from 1 to 60".into())),
    };
    if let Some(unknown) = q.keys().find(|k| k.as_str() != "minutes") {
        return Err(WebError::BadRequest(format!("unknown parameter {unknown:?}; the only one is minutes")));
    }
    if state.topology().flow(&name).is_none() {
        return Err(no_such_flow(&name));
    }
    let since = crate::metrics::now_ms() - minutes * 60_000;
    let history = state.0.history.lock().unwrap_or_else(|p| p.into_inner());
    let pick = |s: &crate::history::Series| s.samples().filter(|x| x.at_ms >= since).copied().collect::<Vec<_>>();
    let flow = history.flows.get(&name).map(pick).unwrap_or_default();
    let partitions: Vec<serde_json::Value> = history
        .partitions
        .iter()
        .filter(|((f, _, _), _)| *f == name)
        .map(|((_, topic, partition), s)| json!({ "topic": topic, "partition": partition, "samples": pick(s) }))
        .collect();
    drop(history);
    let stored = state.0.stored.lock().unwrap_or_else(|p| p.into_inner());
    let kept = json!({
        "fine": stored.points(&name, crate::stored::Resolution::Fine),
        "coarse": stored.points(&name, crate::stored::Resolution::Coarse),
    });
    Ok(Json(json!({ "flow": name, "minutes": minutes, "samples": flow, "partitions": partitions, "stored": kept })).into_response())
}

pub async fn topics_get(State(state): State<AppState>) -> Response {
    Json(json!({ "topics": state.topic_views() })).into_response()
}

pub async fn groups_get(State(state): State<AppState>) -> Response {
    let groups: Vec<_> = state.flow_views().into_iter().flat_map(|f| f.groups).collect();
    Json(json!({ "groups": groups })).into_response()
}

/// `POST /api/v1/flows/{flow}/pause` and `.../resume`, with `Authorization: Bearer <token>`.
pub async fn flow_control_post(State(state): State<AppState>, headers: HeaderMap, path: Result<Path<(String, String)>, PathRejection>) -> ApiResult {
    let what = path.as_ref().map_or_else(|_| "pause or resume a flow".to_string(), |Path((name, action))| format!("{action} {name}"));
    authorize(&state, &headers, &what)?;
    let Path((name, action)) = path?;
    let control = apply_control(&state, &name, &action, "api").await?;
    Ok(Json(json!({ "flow": name, "control": control })).into_response())
}

/// Pauses or resumes a flow for all its workers by writing the decision to the flow's target
/// cluster (see `tern_mirror::control`).
pub async fn apply_control(state: &AppState, name: &str, action: &str, via: &str) -> Result<tern_mirror::control::Control, WebError> {
    let paused = match action {
        "pause" => true,
        "resume" => false,
        other => return Err(WebError::NotFound(format!("unknown action {other:?}; use pause or resume"))),
    };
    let topology = state.topology();
    let flow = topology.flow(name).ok_or_else(|| no_such_flow(name))?;
    let target = flow.target.clone();
    let client = state.client(&target).await.map_err(|e| WebError::Unavailable(format!("{e}; the flow was not changed")))?;
    let reason = format!("{via}: {action}");
    let written = tokio::time::timeout(Duration::from_secs(15), tern_mirror::control::update(&client, &target, name, &reason, |c| c.paused = paused))
        .await
        .map_err(|_| WebError::Unavailable(format!("cluster {target} did not answer within 15 s; the flow was not changed")))?
        .map_err(|e| WebError::Unavailable(format!("{e}; the flow was not changed")))?;
    tracing::info!(flow = %name, paused, via, "flow {}", if paused { "paused" } else { "resumed" });
    // This worker follows at once; the others within a second.
    if let Some(status) = state.status(name) {
        status.set_control(written.clone());
    }
    Ok(written)
}

/// The drill history, newest first.
pub async fn drills_get(State(state): State<AppState>) -> Response {
    match crate::drills::history(&state) {
        Ok(h) => Json(json!({ "drills": h })).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": e }))).into_response(),
    }
}

/// One drill report (the schema is in the README).
pub async fn drill_get(State(state): State<AppState>, path: Result<Path<String>, PathRejection>) -> ApiResult {
    let Path(id) = path?;
    Ok(Json(crate::drills::load(&state, &id)?).into_response())
}

/// `POST /api/v1/drills` with `{"flow": "a->b", "groups": "billing.*"}` and the bearer token:
/// 202 with where to follow the run.
pub async fn drills_post(State(state): State<AppState>, headers: HeaderMap, body: Result<Json<StartDrill>, JsonRejection>) -> ApiResult {
    authorize(&state, &headers, "start a drill")?;
    let Ok(Json(req)) = body else {
        return Err(WebError::BadRequest("send JSON: {\"flow\": \"source->target\", \"groups\": \"optional regex\"}".into()));
    };
    let run = crate::drills::start(&state, &req)?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "run": run, "status": format!("/api/v1/drills/runs/{run}") }))).into_response())
}

/// A drill started from the web: its progress events, and its report id once done.
pub async fn drill_run_get(State(state): State<AppState>, path: Result<Path<String>, PathRejection>) -> ApiResult {
    let Path(run) = path?;
    let found = state.0.drills.lock().unwrap_or_else(|p| p.into_inner()).get(&run).cloned();
    Ok(Json(found.ok_or_else(|| WebError::NotFound(format!("no drill run {run:?}")))?).into_response())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::body::Body;
    use axum::http::Request;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    fn description() -> Value {
        serde_json::from_str(OPENAPI).expect("openapi.json is JSON")
    }

    /// (method, path) of every `/api/v1` route, as `router()` lists them.
    fn routes() -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for line in include_str!("lib.rs").lines().map(str::trim).filter(|l| l.starts_with(".route(\"/api/v1/")) {
            let path = line.split('"').nth(1).expect("quoted path");
            for method in ["get", "post", "put", "patch", "delete"] {
                if line.contains(&format!("{method}(api::")) {
                    out.insert((method.to_string(), path.to_string()));
                }
            }
        }
        out
    }

    #[test]
    fn the_description_covers_every_route_and_nothing_else() {
        let doc = description();
        assert_eq!(doc["openapi"], "3.1.0");
        let described: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, ops)| ops.as_object().expect("operations").keys().filter(|k| *k != "parameters").map(move |m| (m.clone(), path.clone())))
            .collect();
        let routes = routes();
        assert!(routes.len() >= 13, "{routes:?}");
        assert_eq!(described, routes);
    }

    #[test]
    fn changes_need_the_token_and_every_reference_resolves() {
        let doc = description();
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            for (method, op) in ops.as_object().expect("operations") {
                let secured = op.get("security").is_some();
                let responses = op["responses"].as_object().expect("responses");
                assert_eq!(secured, method == "post", "{method} {path}: only changes need the token");
                assert_eq!(responses.contains_key("401") && responses.contains_key("403"), secured, "{method} {path}");
                let params: BTreeSet<&str> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| p["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/parameters/")).map_or(p, |name| &doc["components"]["parameters"][name]))
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                let in_path: BTreeSet<&str> = path.split('{').skip(1).filter_map(|s| s.split('}').next()).collect();
                assert_eq!(params, in_path, "{method} {path}: path parameters");
            }
        }
        // Every "$ref" names something the document has.
        let text = OPENAPI;
        for reference in text.split("\"$ref\": \"#/").skip(1).map(|s| s.split('"').next().unwrap_or_default()) {
            let mut node = &doc;
            for part in reference.split('/') {
                node = node.get(part).unwrap_or_else(|| panic!("unresolved $ref #/{reference}"));
            }
        }
    }

    #[tokio::test]
    async fn clusters_name_their_flows_and_never_their_addresses() {
        let validated = tern_mirror::config::parse(
            "[clusters.a]\nbootstrap = \"10.9.8.7:1\"\nregion = \"us-east-1\"\ncloud = \"aws\"\n[clusters.b]\nbootstrap = \"10.9.8.6:1\"\n\
             [[flows]]\nsource = \"a\"\ntarget = \"b\"\ntopics = [\"orders\"]\n[[flows]]\nsource = \"b\"\ntarget = \"a\"\ntopics = [\"orders\"]\n",
        )
        .expect("config");
        let app = crate::router(AppState::new(crate::Topology::from_validated(&validated), Default::default(), None));
        let get = |path: &'static str| {
            let app = app.clone();
            async move {
                let resp = app.oneshot(Request::get(path).body(Body::empty()).expect("request")).await.expect("response");
                let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
                (content_type, String::from_utf8_lossy(&body).into_owned())
            }
        };
        let (content_type, body) = get("/api/v1/clusters").await;
        assert_eq!(content_type, "application/json");
        assert!(!body.contains("10.9.8."), "{body}");
        let json: Value = serde_json::from_str(&body).expect("json");
        let a = &json["clusters"][0];
        assert_eq!((a["name"].as_str(), a["region"].as_str(), a["cloud"].as_str()), (Some("a"), Some("us-east-1"), Some("aws")));
        assert_eq!(a["source_of"], json!(["a->b"]));
        assert_eq!(a["target_of"], json!(["b->a"]));
        assert_eq!(a["reachable"], Value::Null, "not polled yet");
        assert_eq!(a["health"], "unknown");
        let (content_type, body) = get("/api/v1/openapi.json").await;
        assert_eq!((content_type.as_str(), body.as_str()), ("application/json", OPENAPI));
        // Paths that do not decode are bad requests, answered in JSON like every API error.
        for path in ["/api/v1/flows/%FF", "/api/v1/flows/%FF/history", "/api/v1/drills/%FF", "/api/v1/drills/runs/%FF"] {
            let (content_type, body) = get(path).await;
            assert_eq!(content_type, "application/json", "{path}");
            assert!(serde_json::from_str::<Value>(&body).expect("json")["error"].as_str().is_some_and(|e| e.contains("UTF-8")), "{path}: {body}");
        }
    }

    /// The described states are the code's, word for word.
    #[test]
    fn the_description_spells_every_state_as_the_code_does() {
        use tern_mirror::states::*;
        fn words<T: Copy + std::fmt::Display>(v: &[T]) -> Value {
            Value::from(v.iter().map(|x| x.to_string()).collect::<Vec<_>>())
        }
        let doc = description();
        let schemas = &doc["components"]["schemas"];
        for (name, all) in [
            ("Health", words(Health::ALL)),
            ("FailoverState", words(FailoverState::ALL)),
            ("Verdict", words(Verdict::ALL)),
            ("Trend", words(Trend::ALL)),
            ("TranslationState", words(TranslationState::ALL)),
            ("Check", words(Check::ALL)),
            ("ReadThrough", words(ReadThrough::ALL)),
            ("SyncState", words(SyncState::ALL)),
        ] {
            assert_eq!(schemas[name]["enum"], all, "{name}");
        }
    }
}
