//! What a kernel sees of the machine: its interpreter, environment and directory.

use std::process::Command;

use tandem_runtime::kernel::{Kernel, KernelError};

use crate::support::{options, start};

#[tokio::test]
async fn the_kernel_runs_debians_cpython() {
    let kernel = start().await;
    assert!(
        kernel.kernel.python_version().starts_with("3.11.2"),
        "{}",
        kernel.kernel.python_version()
    );
    let version = kernel.run("import sys\nsys.version").await.result_text();
    assert!(version.starts_with("'3.11.2"), "{version}");
}

/// Runs [`kernel_env_inner`] in a copy of this test binary whose environment holds server
/// secrets: the variables must be present in the parent and absent in the kernel. (A child
/// process, because changing this process's environment is unsafe while tests run.)
#[test]
fn server_variables_never_reach_the_kernel() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "isolation::kernel_env_inner",
            "--nocapture",
        ])
        .env("TANDEM_SECRET", "hunter2")
        .env("TANDEM_DATA", "/srv/tandem-data")
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains("1 passed"),
        "the inner test did not run: {log}"
    );
}

#[tokio::test]
#[ignore = "run by server_variables_never_reach_the_kernel with secrets in its environment"]
async fn kernel_env_inner() {
    assert_eq!(std::env::var("TANDEM_SECRET").as_deref(), Ok("hunter2"));
    let kernel = start().await;
    let leaked = kernel
        .run("import os\nsorted(k for k in os.environ if k.startswith('TANDEM') or 'hunter2' in os.environ[k])")
        .await;
    assert_eq!(leaked.result_text(), "[]");
    let env = kernel.run("dict(os.environ)").await.result_text();
    assert!(
        env.contains("'TERM': 'xterm-256color'") && env.contains("VIRTUAL_ENV"),
        "{env}"
    );

    let workdir = kernel.dir.path().join("work").canonicalize().unwrap();
    let cwd = kernel
        .run("os.getcwd(), os.environ['HOME']")
        .await
        .result_text();
    let expected = format!("('{0}', '{0}')", workdir.display());
    assert_eq!(cwd, expected);
}

#[tokio::test]
async fn a_missing_venv_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let mut missing = options(&dir);
    missing.venv = dir.path().join("no-venv");
    let error = Kernel::start(missing).await.unwrap_err();
    assert!(
        matches!(error, KernelError::VenvMissing { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("scripts/setup-python"),
        "{error}"
    );
}

#[tokio::test]
async fn a_venv_with_a_broken_ipython_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let venv = dir.path().join("venv");
    let ipython = venv.join("lib/python3.11/site-packages/IPython");
    std::fs::create_dir_all(&ipython).unwrap();
    std::fs::create_dir_all(venv.join("bin")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/python3.11", venv.join("bin/python")).unwrap();
    std::fs::write(
        ipython.join("__init__.py"),
        "raise ImportError('half-installed')\n",
    )
    .unwrap();
    let mut broken = options(&dir);
    broken.venv = venv;
    let error = Kernel::start(broken).await.unwrap_err();
    let KernelError::StartupFailed { message, .. } = &error else {
        panic!("{error:?}")
    };
    assert!(message.contains("half-installed"), "{message}");
    assert!(message.contains("scripts/setup-python"), "{message}");
}
