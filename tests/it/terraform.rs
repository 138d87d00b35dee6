//! The Terraform modules, checked offline. terraform/tests/run.py (in the project's .venv-tf)
//! runs `terraform fmt -check`, `init`/`validate`, `terraform test`, the validation messages,
//! the structure checks and checkov, and renders each example's tern.toml files from its
//! regions map; every rendered file must then pass `tern check --offline`, the same schema and
//! flow validation `tern run` applies.

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
}

async fn tern_check_offline(config: &Path) -> String {
    let mut cmd = Command::new(tern_bin());
    cmd.args(["check", "--offline", "--config"]).arg(config);
    let output = run_client(cmd, Duration::from_secs(60)).await;
    String::from_utf8_lossy(&output.stdout).into_owned()
}
