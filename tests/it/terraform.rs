//! The Terraform modules, checked offline. terraform/tests/run.py (in the project's .venv-tf)
//! runs `terraform fmt -check`, `init`/`validate`, `terraform test`, the validation messages,
//! the structure checks and checkov, and renders each example's tern.toml files from its
//! regions map; every rendered file must then pass `tern check --offline`, the same schema and
//! flow validation `tern run` applies. One region's worker then runs on its rendered file with
//! every remote cluster out of reach, and is probed as its cloud would: the liveness path (what
//! restarts it) must answer 200 throughout and the readiness path (what routes traffic) 503,
//! naming the clusters and never their addresses.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terraform_modules_pass_offline_checks_and_render_valid_tern_toml() {
    let out = tempfile::tempdir().expect("temp dir");
    let mut driver = Command::new(terraform_python());
    driver.arg(repo_root().join("terraform/tests/run.py")).arg("--out").arg(out.path());
    run_client(driver, Duration::from_secs(600)).await;

    // Workers run the flows into their region: with n regions in a full mesh, each region's
    // file names all n clusters and runs n-1 flows.
    for (example, regions) in [("three-region", 3), ("add-region", 4)] {
        let dir = out.path().join(example);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        files.sort();
        assert_eq!(files.len(), regions, "{example}: one tern.toml per region: {files:?}");
        for file in files {
            let checked = tern_check_offline(&file).await;
            let expected = format!("valid, {regions} clusters, {} flows", regions - 1);
            assert!(checked.contains(&expected), "{example}/{}: expected {expected:?}, got:\n{checked}", file.display());
        }
    }

    probes_ride_out_unreachable_clusters(out.path(), "three-region", "aws-us-east-1").await;
}

/// Runs `region`'s worker on its rendered tern.toml (listening on an ephemeral port instead of
/// the container's 0.0.0.0:<web_port>, its secrets' variables set) while none of the example's
/// clusters exist, and probes it on the paths the modules give its platform.
async fn probes_ride_out_unreachable_clusters(out: &Path, example: &str, region: &str) {
    let rendered: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(format!("{example}.json"))).expect("harness outputs")).expect("json");
    let probes = &rendered["probes"][region];
    let (liveness, readiness) = (probes["liveness"].as_str().expect("liveness path"), probes["readiness"].as_str().expect("readiness path"));
    let text = rendered["configs"][region].as_str().expect("config");
    let listen = text.lines().find(|l| l.trim_start().starts_with("listen =")).expect("[web] listen");
    let config = out.join(format!("{region}-local.toml"));
    std::fs::write(&config, text.replace(listen, "listen = \"127.0.0.1:0\"")).expect("write config");
    let secrets: Vec<(String, String)> = rendered["secret_env"][region]
        .as_object()
        .expect("secret_env")
        .keys()
        .map(|k| (k.clone(), format!("value-of-{k}")))
        .collect();
    assert!(!secrets.is_empty(), "{region} reads SASL credentials from its secret store: {rendered}");
    let env: Vec<(&str, &str)> = secrets.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut run = crate::reload::Run::start_with_env(&config, &env);
    let web = run.dashboard().await;

    let status = |reply: &str| reply.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok()).unwrap_or(0);
    assert_eq!(status(&http_get(&web, liveness).await), 200, "{liveness} while the worker starts");
    let unready = wait_until(Duration::from_secs(90), "readiness to report the unreachable clusters", async || {
        let reply = http_get(&web, readiness).await;
        (status(&reply) == 503).then(|| crate::reload::body(&reply).to_string())
    })
    .await;
    println!("{readiness} with the clusters out of reach:\n{unready}");
    let flows: Vec<&str> = rendered["workers"][region]["flows"].as_array().expect("flows").iter().filter_map(|f| f.as_str()).collect();
    assert!(!flows.is_empty() && flows.iter().any(|f| unready.contains(f)), "{readiness} names a flow of {flows:?}:\n{unready}");
    for address in ["amazonaws.com", "10.132.0.", "acme.internal"] {
        assert!(!unready.contains(address), "{readiness} gives a cluster address away ({address}):\n{unready}");
    }
    // Well after the first errors the process still serves: nothing would restart it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let alive = http_get(&web, liveness).await;
    assert_eq!(status(&alive), 200, "{liveness} while the clusters are out of reach: {alive}");
    assert_eq!(crate::reload::body(&alive), "ok\n");
    let exited = run.child.try_wait().expect("wait");
    assert!(exited.is_none(), "the worker exited ({exited:?}): {}", run.all());
}

async fn tern_check_offline(config: &Path) -> String {
    let mut cmd = Command::new(tern_bin());
    cmd.args(["check", "--offline", "--config"]).arg(config);
    let output = run_client(cmd, Duration::from_secs(60)).await;
    String::from_utf8_lossy(&output.stdout).into_owned()
}
