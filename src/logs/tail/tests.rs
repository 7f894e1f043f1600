use std::io::Write;

use super::*;

fn texts(events: &[TailEvent]) -> Vec<String> {
    events
        .iter()
        .flat_map(|e| match e {
            TailEvent::Lines(l) => l.iter().map(|l| l.text.clone()).collect(),
            TailEvent::Note(n) => vec![format!("NOTE {n}")],
        })
        .collect()
}

fn append(p: &std::path::Path, s: &[u8]) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .unwrap()
        .write_all(s)
        .unwrap();
}

#[test]
fn last_lines_come_from_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.log");
    let text: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&p, text).unwrap();
    let (_t, ev) = Tail::open(p.to_str().unwrap(), 3);
    assert_eq!(texts(&ev), ["line 99997", "line 99998", "line 99999"]);
    std::fs::write(&p, "only\n").unwrap();
    assert_eq!(texts(&Tail::open(p.to_str().unwrap(), 3).1), ["only"]);
    std::fs::write(&p, "").unwrap();
    assert!(texts(&Tail::open(p.to_str().unwrap(), 3).1).is_empty());
    std::fs::write(&p, "no newline at the end").unwrap();
    assert_eq!(
        texts(&Tail::open(p.to_str().unwrap(), 3).1),
        ["no newline at the end"]
    );
}

#[test]
fn follows_partial_lines_rotation_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("app.log");
    std::fs::write(&p, "old 1\n").unwrap();
    let (mut t, _) = Tail::open(p.to_str().unwrap(), 10);
    append(&p, b"new 1\nhalf");
    assert_eq!(texts(&t.poll()), ["new 1"]);
    append(&p, b" done\n");
    assert_eq!(texts(&t.poll()), ["half done"]);
    // Rotation by rename: the rest of the old file, then the new file from its start.
    append(&p, b"last of old\n");
    std::fs::rename(&p, dir.path().join("app.log.1")).unwrap();
    std::fs::write(&p, "first of new\n").unwrap();
    let got = texts(&t.poll());
    assert_eq!(got[0], "last of old");
    assert!(got[1].contains("rotated"), "{got:?}");
    assert_eq!(got[2], "first of new");
    // copytruncate: the file shrinks; start again from the top.
    std::fs::write(&p, "").unwrap();
    append(&p, b"after truncate\n");
    let got = texts(&t.poll());
    assert!(
        got[0].contains("truncated") && got[1] == "after truncate",
        "{got:?}"
    );
}

#[test]
fn a_missing_file_that_appears_and_a_glob_that_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("later.log");
    let (mut t, ev) = Tail::open(p.to_str().unwrap(), 10);
    assert!(texts(&ev)[0].contains("does not exist yet"));
    assert!(t.poll().is_empty());
    std::fs::write(&p, "hello\n").unwrap();
    let got = texts(&t.poll());
    assert!(got[0].contains("appeared") && got[1] == "hello", "{got:?}");

    let g = dir.path().join("deploy-*.log");
    std::fs::write(dir.path().join("deploy-1.log"), "one\n").unwrap();
    let (mut t, ev) = Tail::open(g.to_str().unwrap(), 10);
    assert_eq!(texts(&ev), ["one"]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(dir.path().join("deploy-2.log"), "two\n").unwrap();
    let got = texts(&t.poll());
    assert_eq!(got.last().unwrap(), "two", "{got:?}");
}

#[test]
fn invalid_utf8_a_huge_line_and_binary_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.log");
    std::fs::write(&p, b"start\n").unwrap();
    let (mut t, _) = Tail::open(p.to_str().unwrap(), 10);
    let mut big = vec![b'y'; 1 << 20];
    big.push(b'\n');
    append(&p, b"bad \xff byte\n");
    append(&p, &big);
    append(&p, b"after\n");
    let got = texts(&t.poll());
    assert_eq!(got[0], "bad \u{fffd} byte");
    assert!(got[1].len() < 20_000 && got[1].contains("more bytes]"));
    assert_eq!(got[2], "after");
    let b = dir.path().join("bin");
    std::fs::write(&b, b"\x7fELF\x00\x00\x01\n\x00").unwrap();
    let got = texts(&Tail::open(b.to_str().unwrap(), 10).1);
    assert!(got.len() == 1 && got[0].contains("binary"), "{got:?}");
}

#[test]
fn a_fifo_is_refused_with_a_note_not_opened() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.log");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let spec = fifo.display().to_string();
    // Opening a FIFO without a writer blocks: on the old build this never returned.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut t, ev) = Tail::open(&spec, 10);
        let polled = t.poll();
        let _ = tx.send((texts(&ev), polled.len()));
    });
    let (notes, polled) = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("Tail::open on a FIFO blocked");
    assert!(notes[0].contains("not a regular file"), "{notes:?}");
    assert_eq!(polled, 0, "reported once");
}
