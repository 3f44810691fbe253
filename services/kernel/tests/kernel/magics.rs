//! IPython's magics and shell escapes, as Jupyter users type them.

use tandem_runtime::kernel::{KernelEvent, Output};

use crate::support::start;

#[tokio::test]
async fn time_magics_print_their_timings() {
    let kernel = start().await;
    let line = kernel.run("%time 1+1").await;
    line.assert_ok();
    assert!(line.stdout().contains("Wall time"), "{:#?}", line.events);
    assert_eq!(line.result_text(), "2");

    let cell = kernel.run("%%time\nx = sum(range(1000))").await;
    cell.assert_ok();
    assert!(cell.stdout().contains("Wall time"), "{:#?}", cell.events);

    let timeit = kernel.run("%timeit -n 10 -r 2 sum(range(100))").await;
    timeit.assert_ok();
    assert!(timeit.stdout().contains("per loop"), "{:#?}", timeit.events);
}

#[tokio::test]
async fn shell_escapes_stream_their_output() {
    let kernel = start().await;
    let echo = kernel.run("!echo hi").await;
    echo.assert_ok();
    assert_eq!(echo.stdout().trim_end(), "hi");

    // Output that comes over time arrives over time, not in one piece at the end.
    let slow = kernel
        .run("!for i in 1 2 3; do echo line$i; sleep 0.2; done")
        .await;
    slow.assert_ok();
    let stdout = slow.stdout();
    assert!(
        stdout.contains("line1") && stdout.contains("line3"),
        "{stdout:?}"
    );
    let chunks = slow
        .events
        .iter()
        .filter(|event| matches!(event, KernelEvent::Output(Output::Stream { .. })))
        .count();
    assert!(
        chunks >= 2,
        "one chunk for output spread over 0.6 s: {:#?}",
        slow.events
    );
}

#[tokio::test]
async fn env_cd_and_pip_magics() {
    let kernel = start().await;
    kernel.run("%env GREETING=hello").await.assert_ok();
    assert_eq!(
        kernel
            .run("import os\nos.environ['GREETING']")
            .await
            .result_text(),
        "'hello'"
    );

    kernel
        .run("import os\nos.makedirs('sub', exist_ok=True)")
        .await
        .assert_ok();
    kernel.run("%cd sub").await.assert_ok();
    let cwd = kernel.run("os.getcwd()").await.result_text();
    assert!(cwd.ends_with("/work/sub'"), "{cwd}");

    // %pip runs the venv's own pip (sys.executable is the venv's python, not the kernel
    // binary), so packages it installs land where the kernel imports from.
    let pip = kernel.run("%pip --version").await;
    pip.assert_ok();
    let venv = crate::support::venv().canonicalize().unwrap();
    assert!(
        pip.stdout().contains(&venv.to_string_lossy().into_owned()),
        "{}",
        pip.stdout()
    );
}
