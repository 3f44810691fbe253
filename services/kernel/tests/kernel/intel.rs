//! Code intelligence, stdin and resource use on real kernels: completions and inspection at a
//! caret (also while a cell runs), `input()` answered through the manager or interrupted while
//! it waits, and the memory and disk a kernel uses.

use std::time::Duration;

use tandem_runtime::kernel::{ExecStatus, KernelEvent, Output};

use crate::support::{self, Cell};

#[tokio::test]
async fn completions_and_docstrings_come_from_the_kernel_even_while_a_cell_runs() {
    let kernel = support::start().await;
    kernel.run("import os\nanswer = 42").await.assert_ok();
    let found = kernel
        .kernel
        .complete("import os\nos.pa", 15)
        .await
        .unwrap();
    assert!(found.matches.iter().any(|m| m.text == "path"), "{found:?}");
    assert_eq!((found.cursor_start, found.cursor_end), (13, 15));
    let names = kernel.kernel.complete("ans", 3).await.unwrap();
    assert!(
        names.matches.iter().any(|m| m.text == "answer"),
        "{names:?}"
    );

    let doc = kernel.kernel.inspect("len(", 4, 0).await.unwrap();
    assert!(doc.found, "{doc:?}");
    assert!(doc.text.contains("Return the number of items"), "{doc:?}");
    let none = kernel.kernel.inspect("nothing_here", 3, 0).await.unwrap();
    assert!(!none.found, "{none:?}");

    // A busy kernel still answers: the worker's helper thread does it.
    let busy = kernel.kernel.execute("import time\ntime.sleep(3)").unwrap();
    let found = kernel.kernel.complete("os.pa", 5).await.unwrap();
    assert!(found.matches.iter().any(|m| m.text == "path"));
    let done = Cell {
        events: busy.collect().await,
    };
    done.assert_ok();
}

/// Runs `code`, answers its `input()` with `answer` (or interrupts it when `None`) and
/// returns the cell's events and the input requests it made.
async fn run_with_input(
    kernel: &support::TestKernel,
    code: &str,
    answer: Option<&str>,
) -> (Cell, Vec<(String, bool)>) {
    let mut execution = kernel.kernel.execute(code).unwrap();
    let mut events = Vec::new();
    let mut requests = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Some(event) = tokio::time::timeout_at(deadline, execution.recv())
        .await
        .expect("the cell finished")
    {
        if let KernelEvent::InputRequest {
            id,
            prompt,
            password,
        } = &event
        {
            requests.push((prompt.clone(), *password));
            match answer {
                Some(value) => kernel.kernel.answer_input(*id, Some(value.to_owned())),
                None => kernel.kernel.interrupt().unwrap(),
            }
        }
        events.push(event);
    }
    (Cell { events }, requests)
}

#[tokio::test]
async fn input_is_answered_by_the_manager_or_interrupted() {
    let kernel = support::start().await;
    let (cell, requests) =
        run_with_input(&kernel, "x = input('Name? ')\nprint('hi', x)", Some("Ada")).await;
    cell.assert_ok();
    assert_eq!(requests, [("Name? ".to_owned(), false)]);
    assert_eq!(cell.stdout(), "Name? Ada\nhi Ada\n");

    let (cell, requests) = run_with_input(
        &kernel,
        "import getpass\np = getpass.getpass()\nprint(len(p))",
        Some("hunter2"),
    )
    .await;
    cell.assert_ok();
    assert_eq!(requests, [("Password: ".to_owned(), true)]);
    assert!(!cell.stdout().contains("hunter2"), "{}", cell.stdout());
    assert!(cell.stdout().ends_with("7\n"), "{}", cell.stdout());

    // Interrupted while it waits: KeyboardInterrupt, and the kernel lives on.
    let (cell, _) = run_with_input(&kernel, "input('wait: ')", None).await;
    assert_eq!(cell.done().0, ExecStatus::Error);
    assert!(cell.outputs().iter().any(|output| matches!(
        output,
        Output::Error { ename, .. } if ename == "KeyboardInterrupt"
    )));
    // Nobody will answer: EOFError, as a script without stdin gets.
    let (cell, _) = {
        let mut execution = kernel.kernel.execute("input()").unwrap();
        let mut events = Vec::new();
        while let Some(event) = execution.recv().await {
            if let KernelEvent::InputRequest { id, .. } = &event {
                kernel.kernel.answer_input(*id, None);
            }
            events.push(event);
        }
        (Cell { events }, ())
    };
    assert!(cell.outputs().iter().any(|output| matches!(
        output,
        Output::Error { ename, .. } if ename == "EOFError"
    )));
    kernel.run("print('still here')").await.assert_ok();
}

#[tokio::test]
async fn a_kernel_reports_its_memory_and_disk() {
    let kernel = support::start_with(|options| options.memory_limit_bytes = Some(4 << 30)).await;
    kernel
        .run("open('data.bin', 'wb').write(b'x' * 3_000_000)")
        .await
        .assert_ok();
    let kernel = std::sync::Arc::new(kernel);
    let measuring = std::sync::Arc::clone(&kernel);
    let usage = tokio::task::spawn_blocking(move || measuring.kernel.usage())
        .await
        .unwrap();
    assert!(usage.memory_bytes > 10 << 20, "{usage:?}");
    assert!(usage.memory_limit_bytes <= 4 << 30, "{usage:?}");
    assert!(usage.disk_bytes >= 3_000_000, "{usage:?}");
    assert!(usage.disk_limit_bytes > usage.disk_bytes, "{usage:?}");
}
