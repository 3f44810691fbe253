//! Interrupts, deaths and limits: the kernel reports them and never leaves a cell hanging.

use tandem_runtime::kernel::{DeathReason, ExecStatus, KernelError, KernelEvent, Output};

use crate::support::start;

#[tokio::test]
async fn interrupt_stops_a_busy_loop_and_the_kernel_stays_usable() {
    let kernel = start().await;
    let mut cell = kernel
        .kernel
        .execute("print('started')\nwhile True: pass")
        .unwrap();
    // Interrupt once the loop is surely running: after its first output.
    match cell.recv().await {
        Some(KernelEvent::Output(Output::Stream { text, .. })) => assert_eq!(text, "started\n"),
        other => panic!("{other:?}"),
    }
    kernel.kernel.interrupt().unwrap();
    let rest = crate::support::Cell {
        events: cell.collect().await,
    };
    assert_eq!(rest.done().0, ExecStatus::Error);
    assert_eq!(rest.error().0, "KeyboardInterrupt");

    let after = kernel.run("1+1").await;
    after.assert_ok();
    assert_eq!(after.result_text(), "2");
    assert!(kernel.kernel.exited().is_none());
}

#[tokio::test]
async fn interrupt_wakes_a_sleeping_cell() {
    let kernel = start().await;
    let mut cell = kernel
        .kernel
        .execute("import time\nprint('zzz')\ntime.sleep(600)")
        .unwrap();
    assert!(matches!(cell.recv().await, Some(KernelEvent::Output(_))));
    kernel.kernel.interrupt().unwrap();
    let rest = crate::support::Cell {
        events: cell.collect().await,
    };
    assert_eq!(rest.error().0, "KeyboardInterrupt");
}

#[tokio::test]
async fn os_exit_kills_the_kernel_with_its_exit_code() {
    let kernel = start().await;
    let queued_behind = {
        let dying = kernel.kernel.execute("import os\nos._exit(3)").unwrap();
        let queued = kernel.kernel.execute("1+1").unwrap();
        let dying = crate::support::Cell {
            events: dying.collect().await,
        };
        assert_eq!(dying.done().0, ExecStatus::Error);
        let (ename, evalue, _) = dying.error();
        assert_eq!(ename, "DeadKernelError");
        assert!(evalue.contains("exited with code 3"), "{evalue}");
        crate::support::Cell {
            events: queued.collect().await,
        }
    };
    // The cell queued behind the fatal one ends too, with the same reason.
    assert_eq!(queued_behind.error().0, "DeadKernelError");

    let death = kernel.kernel.wait().await;
    assert_eq!(death.reason, DeathReason::Exited { code: 3 });
    let error = kernel.kernel.execute("1").unwrap_err();
    assert!(matches!(error, KernelError::Dead(_)), "{error:?}");
}

#[tokio::test]
async fn a_segfault_is_reported_as_sigsegv_with_the_python_stack() {
    let kernel = start().await;
    let cell = kernel.run("import ctypes\nctypes.string_at(0)").await;
    assert_eq!(cell.done().0, ExecStatus::Error);
    assert!(cell.error().1.contains("SIGSEGV"), "{:?}", cell.error());
    let death = kernel.kernel.wait().await;
    assert_eq!(death.reason, DeathReason::Signaled { signal: 11 });
    // faulthandler's dump went to the log the manager keeps.
    assert!(
        death.log_tail.contains("Segmentation fault"),
        "{}",
        death.log_tail
    );
}

#[tokio::test]
async fn allocating_past_the_memory_limit_is_reported() {
    let kernel = start_limited(1 << 30).await;
    let cell = kernel
        .run("import numpy as np\nx = np.ones(2 * 1024**3 // 8)")
        .await;
    assert_eq!(cell.done().0, ExecStatus::Error);
    match kernel.kernel.exited() {
        // CPython and numpy turn a refused allocation into MemoryError and live on.
        None => {
            assert!(cell.error().0.contains("MemoryError"), "{:?}", cell.error());
            kernel.run("del x\n1").await;
            kernel.run("1+1").await.assert_ok();
        }
        Some(death) => assert!(
            matches!(death.reason, DeathReason::OutOfMemory { .. }),
            "{death:?}"
        ),
    }
    let bytes = kernel.run("b = bytearray(3 * 1024**3)").await;
    assert_eq!(bytes.error().0, "MemoryError");
}

async fn start_limited(limit: u64) -> crate::support::TestKernel {
    crate::support::start_with(|options| options.memory_limit_bytes = Some(limit)).await
}

#[tokio::test]
async fn kill_ends_the_running_cell_and_reports_killed() {
    let kernel = start().await;
    let mut cell = kernel
        .kernel
        .execute("print('sleeping')\nimport time\ntime.sleep(600)")
        .unwrap();
    assert!(matches!(cell.recv().await, Some(KernelEvent::Output(_))));
    kernel.kernel.kill().unwrap();
    let rest = crate::support::Cell {
        events: cell.collect().await,
    };
    assert_eq!(rest.error().0, "DeadKernelError");
    assert_eq!(kernel.kernel.wait().await.reason, DeathReason::Killed);
}

#[tokio::test]
async fn exit_in_a_cell_ends_the_kernel_after_that_cell() {
    let kernel = start().await;
    let cell = kernel.run("print('bye')\nexit()").await;
    cell.assert_ok();
    assert_eq!(
        kernel.kernel.wait().await.reason,
        DeathReason::Exited { code: 0 }
    );
}

#[tokio::test]
async fn shutdown_runs_exit_hooks() {
    let kernel = start().await;
    kernel
        .run("import atexit\natexit.register(lambda: open('bye.txt', 'w').write('bye'))")
        .await
        .assert_ok();
    let death = kernel
        .kernel
        .shutdown(std::time::Duration::from_secs(10))
        .await;
    assert_eq!(death.reason, DeathReason::Shutdown);
    let written = std::fs::read_to_string(kernel.dir.path().join("work/bye.txt")).unwrap();
    assert_eq!(written, "bye");
}
