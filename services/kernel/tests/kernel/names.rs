//! What a cell defines and uses, as the worker reads it from the syntax tree before the cell
//! runs (`python/tandem_names.py`; the session's stale marks and warnings build on it).

use tandem_runtime::kernel::{KernelEvent, Names};

use crate::support::start;

fn names(defs: &[&str], uses: &[&str]) -> Option<Names> {
    Some(Names {
        defs: defs.iter().map(|s| s.to_string()).collect(),
        uses: uses.iter().map(|s| s.to_string()).collect(),
    })
}

/// `(source, expected names)`: every construct the analysis handles.
const CASES: &[(&str, &[&str], &[&str])] = &[
    ("x = 1", &["x"], &[]),
    ("a, (b, *c) = f()", &["a", "b", "c"], &["f"]),
    ("x += 1", &["x"], &["x"]),
    ("y: int = z", &["y"], &["int", "z"]),
    ("y: int", &[], &["int"]),
    ("if (n := len(s)) > 3: pass", &["n"], &["len", "s"]),
    (
        "import os.path, numpy as np\nfrom a import b as c, d",
        &["c", "d", "np", "os"],
        &[],
    ),
    // Function bodies run later: `g` (bound below in the cell) is not a use, `h` is.
    (
        "def f(a, b=k):\n    return a + g + h\ng = 1",
        &["f", "g"],
        &["h", "k"],
    ),
    (
        "class C(Base):\n    z = 1\n    w = z + q\n    def m(self): return z",
        &["C"],
        &["Base", "q", "z"],
    ),
    ("for i in range(3):\n    t = i", &["i", "t"], &["range"]),
    ("with open(p) as fh: pass", &["fh"], &["open", "p"]),
    // Comprehension targets are local to the comprehension.
    ("[v * 2 for v in items if v > lim]", &[], &["items", "lim"]),
    ("[y := v for v in r]", &["y"], &["r"]),
    ("def h():\n    global G\n    G = 1", &["G", "h"], &[]),
    ("del x", &["x"], &["x"]),
    ("obj.attr = 1\narr[0] = 2", &[], &["arr", "obj"]),
    ("print(x)\nx = 1", &["x"], &["print", "x"]),
    ("x = 1\nprint(x)", &["x"], &["print"]),
    ("try:\n    pass\nexcept E as e:\n    pass", &["e"], &["E"]),
    ("f = lambda a: a + b", &["f"], &["b"]),
    (
        "match p:\n    case {'k': v, **rest}: pass\n    case [a, *bs]: pass",
        &["a", "bs", "rest", "v"],
        &["p"],
    ),
    // IPython's syntax is transformed first, as the shell does.
    ("files = !ls\n%time total = 0", &["files"], &["get_ipython"]),
];

#[tokio::test]
async fn names_come_first_for_the_cell_and_its_peers() {
    let kernel = start().await;
    let peers: Vec<String> = CASES.iter().map(|(code, _, _)| code.to_string()).collect();
    let mut sent = peers.clone();
    sent.push("def broken(:".into());
    let execution = kernel
        .kernel
        .execute_analyzed("total = 1\nprint(total + offset)", sent)
        .unwrap();
    let events = execution.collect().await;
    // First, before the cell's output (the NameError for `offset`).
    let KernelEvent::Names { cell, peers: got } = &events[0] else {
        panic!("no names event first: {events:#?}");
    };
    assert_eq!(*cell, names(&["total"], &["offset", "print"]));
    for ((code, defs, uses), got) in CASES.iter().zip(got) {
        assert_eq!(*got, names(defs, uses), "{code}");
    }
    assert_eq!(
        got.last(),
        Some(&None),
        "code that does not parse has no names"
    );
    assert!(events.len() > 2, "the cell still ran: {events:#?}");

    // A plain execute has no names event.
    let plain = kernel.run("1 + 1").await;
    assert!(
        !plain
            .events
            .iter()
            .any(|e| matches!(e, KernelEvent::Names { .. }))
    );
}
