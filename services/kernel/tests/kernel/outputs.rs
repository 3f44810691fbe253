//! What cells show: results, streams, errors, rich displays, as nbformat outputs.

use serde_json::json;
use tandem_runtime::kernel::{ExecStatus, KernelEvent, Output, StreamName};

use crate::support::start;

#[tokio::test]
async fn results_carry_the_execution_count_of_each_cell() {
    let kernel = start().await;
    for expected in 1..=3 {
        let cell = kernel.run("1+1").await;
        cell.assert_ok();
        assert_eq!(cell.done().1, Some(expected));
        let outputs = cell.outputs();
        assert_eq!(outputs.len(), 1, "{outputs:?}");
        assert_eq!(
            serde_json::to_value(outputs[0]).unwrap(),
            json!({
                "output_type": "execute_result",
                "execution_count": expected,
                "data": {"text/plain": "2"},
                "metadata": {},
            })
        );
    }
}

#[tokio::test]
async fn print_goes_to_stdout_and_stderr_to_stderr() {
    let kernel = start().await;
    let cell = kernel
        .run("import sys\nprint('hello')\nprint('oops', file=sys.stderr)")
        .await;
    cell.assert_ok();
    assert_eq!(cell.stdout(), "hello\n");
    assert_eq!(cell.stream(StreamName::Stderr), "oops\n");
    let stream = cell
        .outputs()
        .into_iter()
        .find(|o| matches!(o, Output::Stream { .. }))
        .unwrap();
    // An nbformat stream output. Its text is what had been printed when the kernel sent it:
    // on a loaded machine the output timer may fire between `hello` and its newline (the
    // whole text is checked above), so the first chunk holds a start of it.
    let stream = serde_json::to_value(stream).unwrap();
    let text = stream["text"].as_str().unwrap_or_default().to_owned();
    assert!(!text.is_empty() && "hello\n".starts_with(&text), "{stream}");
    assert_eq!(
        stream,
        json!({"output_type": "stream", "name": "stdout", "text": text})
    );
    assert!(cell.result_is_absent());
}

#[tokio::test]
async fn an_exception_gives_an_error_with_a_colored_traceback() {
    let kernel = start().await;
    let cell = kernel.run("def f():\n    return 1/0\nf()").await;
    assert_eq!(cell.done(), (ExecStatus::Error, Some(1)));
    let (ename, evalue, traceback) = cell.error();
    assert_eq!(ename, "ZeroDivisionError");
    assert_eq!(evalue, "division by zero");
    let text = traceback.join("\n");
    assert!(text.contains("\x1b["), "no ANSI colors: {text:?}");
    let plain = strip_ansi(&text);
    assert!(
        plain.contains("----> 3 f()") && plain.contains("ZeroDivisionError"),
        "{plain}"
    );

    let syntax = kernel.run("1 +* 2").await;
    assert_eq!(syntax.done().0, ExecStatus::Error);
    assert_eq!(syntax.error().0, "SyntaxError");
    kernel.run("1").await.assert_ok();
}

#[tokio::test]
async fn display_html_and_rich_reprs() {
    let kernel = start().await;
    let cell = kernel
        .run("from IPython.display import display, HTML\ndisplay(HTML('<b>hi</b>'))")
        .await;
    cell.assert_ok();
    assert_eq!(cell.displays()[0]["text/html"], "<b>hi</b>");

    let png = kernel
        .run(
            "class Dot:\n    def _repr_png_(self):\n        return b'\\x89PNG\\r\\n\\x1a\\nfake'\n\
             Dot()",
        )
        .await;
    png.assert_ok();
    // nbformat keeps binary mime types base64-encoded.
    assert_eq!(png.result()["image/png"], "iVBORw0KGgpmYWtl");

    let html = kernel
        .run("class T:\n    def _repr_html_(self):\n        return '<i>t</i>'\nT()")
        .await;
    assert_eq!(html.result()["text/html"], "<i>t</i>");
}

#[tokio::test]
async fn pandas_tables_render_as_html() {
    let kernel = start().await;
    let cell = kernel
        .run("import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': [3, 4]})")
        .await;
    cell.assert_ok();
    let html = cell.result()["text/html"].as_str().unwrap();
    assert!(
        html.contains("<table") && html.contains("dataframe"),
        "{html}"
    );
    assert!(cell.result_text().contains('a'));
}

#[tokio::test]
async fn a_matplotlib_figure_appears_inline_as_png() {
    let kernel = start().await;
    let cell = kernel
        .run("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.title('squares');")
        .await;
    cell.assert_ok();
    let displays = cell.displays();
    assert_eq!(displays.len(), 1, "{:#?}", cell.events);
    let png = displays[0]["image/png"].as_str().unwrap();
    assert!(
        png.starts_with("iVBORw0KGgo"),
        "not a base64 PNG: {}",
        &png[..20.min(png.len())]
    );
    assert!(
        displays[0]["text/plain"]
            .as_str()
            .unwrap()
            .contains("Figure")
    );
}

#[tokio::test]
async fn displays_update_by_display_id() {
    let kernel = start().await;
    let cell = kernel
        .run(
            "from IPython.display import display, HTML\n\
             h = display(HTML('one'), display_id=True)\n\
             h.update(HTML('two'))",
        )
        .await;
    cell.assert_ok();
    let mut events = cell.events.iter();
    let Some(KernelEvent::Output(Output::DisplayData {
        data,
        display_id: Some(id),
        ..
    })) = events.next()
    else {
        panic!("{:#?}", cell.events)
    };
    assert_eq!(data["text/html"], "one");
    let Some(KernelEvent::UpdateDisplay {
        display_id, data, ..
    }) = events.next()
    else {
        panic!("{:#?}", cell.events)
    };
    assert_eq!(display_id, id);
    assert_eq!(data["text/html"], "two");

    // A later cell may update a display of an earlier one.
    let later = kernel.run("h.update(HTML('three'))").await;
    assert!(matches!(
        &later.events[0],
        KernelEvent::UpdateDisplay { display_id, data, .. }
            if display_id == id && data["text/html"] == "three"
    ));
}

#[tokio::test]
async fn clear_output_is_ordered_with_the_streams_around_it() {
    let kernel = start().await;
    let cell = kernel
        .run(
            "from IPython.display import clear_output\n\
             print('a')\nclear_output(wait=True)\nprint('b')\nclear_output()",
        )
        .await;
    cell.assert_ok();
    let shape: Vec<String> = cell
        .events
        .iter()
        .map(|event| match event {
            KernelEvent::Output(Output::Stream { text, .. }) => text.clone(),
            KernelEvent::ClearOutput { wait } => format!("clear(wait={wait})"),
            KernelEvent::Done { .. } => "done".into(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        shape,
        [
            "a\n",
            "clear(wait=true)",
            "b\n",
            "clear(wait=false)",
            "done"
        ]
    );
}

#[tokio::test]
async fn a_hundred_thousand_prints_arrive_complete_and_coalesced() {
    let kernel = start().await;
    let cell = kernel.run("for i in range(100000): print(i)").await;
    cell.assert_ok();
    let expected: String = (0..100_000).map(|i| format!("{i}\n")).collect();
    let stdout = cell.stdout();
    assert_eq!(stdout.len(), expected.len());
    assert!(
        stdout == expected,
        "stdout differs from the printed numbers"
    );
    let events = cell.outputs().len();
    assert!(
        events < 1000,
        "{events} stream events for one loop: not coalesced"
    );
}

impl crate::support::Cell {
    fn result_is_absent(&self) -> bool {
        !self
            .outputs()
            .iter()
            .any(|output| matches!(output, Output::ExecuteResult { .. }))
    }
}

/// The text without ANSI escape sequences (`ESC [ ... letter`).
fn strip_ansi(text: &str) -> String {
    let mut plain = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}
