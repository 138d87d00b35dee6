//! `tern run`: the flows of a configuration, the dashboard, and live configuration. The file is
//! read again on SIGHUP and when its content changes (looked at every two seconds): flows added,
//! removed or changed start and stop without touching the others; a file that does not
//! validate is refused with its error and the running configuration is kept.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tern_mirror::config::Validated;
use tern_mirror::workers::Workers;

/// How often the file is looked at for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// The configuration file's content as last seen, to notice changes by content (modification
/// times can be coarser than a quick edit).
struct Watched {
    path: PathBuf,
    seen: Option<Vec<u8>>,
}

impl Watched {
    fn new(path: &Path) -> Watched {
        Watched { path: path.to_path_buf(), seen: std::fs::read(path).ok() }
    }

    /// Whether the content differs from what was seen last (a file that cannot be read counts
    /// as unchanged: an editor may be replacing it).
    fn changed(&mut self) -> bool {
        match std::fs::read(&self.path) {
            Ok(now) if self.seen.as_ref() != Some(&now) => {
                self.seen = Some(now);
                true
            }
            _ => false,
        }
    }
}

/// What of `[web]` only a restart applies.
fn web_settings(v: &Validated) -> String {
    format!("{:?}", v.config.web)
}

fn topology(v: &Validated, config: &Path) -> tern_web::Topology {
    tern_web::Topology::from_validated(v).with_state_dir(v.config.state_dir(config))
}

pub async fn run(config: PathBuf) -> anyhow::Result<()> {
    let validated = tern_mirror::config::load(&config)?;
    let listen = validated.config.web.listen.clone();
    let token = validated.config.web.token()?;
    if token.as_ref().is_some_and(|t| t.len() < 16) {
        tracing::warn!("the [web] token is shorter than 16 characters: use a long random one (for example `openssl rand -hex 32`)");
    }
    let listener = tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("binding [web] listen = {listen}"))?;
    let mut workers = Workers::start(&validated).await;
    let started = workers.names();
    tracing::info!(flows = %started.join(", "), "starting");
    let mode = if token.is_some() { "changes need the operator token" } else { "read-only: no [web] token configured" };
    tracing::info!("dashboard, API and metrics on http://{} ({mode})", listener.local_addr()?);
    let state = tern_web::AppState::with_shared_statuses(topology(&validated, &config), workers.statuses(), token);
    state.set_secure_cookies(validated.config.web.secure_cookies);
    state.config_loaded(Some(config.display().to_string()), format!("started {}", started.join(", ")));
    let _pollers = state.spawn_pollers();
    let app = tern_web::router(state.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("web server: {e}");
        }
    });

    let web = web_settings(&validated);
    let mut watched = Watched::new(&config);
    let mut hangup = hangup()?;
    let mut look = tokio::time::interval(WATCH_INTERVAL);
    let mut report = tokio::time::interval(Duration::from_secs(10));
    let shutdown = crate::shutdown_signal();
    tokio::pin!(shutdown);
    let mut failed = None;
    let mut died: Vec<String> = Vec::new();
    loop {
        let reload = tokio::select! {
            _ = &mut shutdown => break,
            _ = report.tick() => {
                for (name, status) in state.statuses() {
                    let t = status.snapshot().totals();
                    tracing::info!(flow = %name, partitions = t.partitions, records = t.records, lag = t.lag_records, errors = t.errors, "status");
                }
                None
            }
            _ = hangup.recv() => Some("SIGHUP"),
            _ = look.tick() => watched.changed().then_some("the file changed"),
            (name, result) = workers.ended() => {
                match result {
                    Err(e) => {
                        // The others go on; the dashboard, /metrics and /readyz show this one.
                        tracing::error!(flow = %name, "flow stopped: {e}");
                        died.push(format!("flow {name}: {e}"));
                    }
                    Ok(()) => tracing::info!(flow = %name, "flow ended"),
                }
                if workers.names().is_empty() {
                    tracing::error!("every flow stopped; exiting");
                    failed = Some(anyhow::anyhow!("every flow stopped: {}", died.join("; ")));
                    break;
                }
                None
            }
        };
        let Some(why) = reload else { continue };
        match tern_mirror::config::load(&config) {
            Err(e) => {
                tracing::error!("{} was not applied ({why}), the running configuration is kept: {e}", config.display());
                state.config_refused(e.to_string());
            }
            Ok(v) => {
                if web_settings(&v) != web {
                    tracing::warn!("[web] settings changed; they take effect at the next restart");
                }
                let applied = workers.apply(&v).await;
                state.set_topology(topology(&v, &config));
                state.config_loaded(Some(config.display().to_string()), applied.to_string());
                tracing::info!("configuration reloaded ({why}): {applied}");
            }
        }
    }
    workers.stop_all().await;
    failed.map_or(Ok(()), Err)
}

#[cfg(unix)]
fn hangup() -> anyhow::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("listening for SIGHUP")
}
