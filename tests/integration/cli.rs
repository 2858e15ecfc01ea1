//! The `wasmsched` binary's command-line contract, run as a user would.

use std::process::{Command, Output};

fn wasmsched(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmsched"))
        .args(args)
        .output()
        .expect("running wasmsched")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn cron_next_prints_one_rfc3339_instant_per_line() {
    let out = wasmsched(&[
        "cron",
        "next",
        "0 9 * * MON-FRI",
        "--tz",
        "Asia/Seoul",
        "--from",
        "2026-01-02T01:00:00Z",
        "-n",
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "2026-01-05T09:00:00+09:00\n2026-01-06T09:00:00+09:00\n2026-01-07T09:00:00+09:00\n"
    );
}

#[test]
fn cron_next_across_dst_in_new_york_and_berlin() {
    let out = wasmsched(&[
        "cron",
        "next",
        "30 2 * * *",
        "--tz",
        "America/New_York",
        "--from",
        "2026-03-07T12:00:00Z",
        "-n",
        "2",
    ]);
    assert_eq!(
        stdout(&out),
        "2026-03-08T03:00:00-04:00\n2026-03-09T02:30:00-04:00\n"
    );
    let out = wasmsched(&[
        "cron",
        "next",
        "0 * * * *",
        "--tz",
        "Europe/Berlin",
        "--from",
        "2026-10-24T23:30:00Z",
        "-n",
        "3",
    ]);
    assert_eq!(
        stdout(&out),
        "2026-10-25T02:00:00+02:00\n2026-10-25T02:00:00+01:00\n2026-10-25T03:00:00+01:00\n"
    );
    let out = wasmsched(&[
        "cron",
        "next",
        "* * * * *",
        "--from",
        "2026-01-01T00:00:00Z",
        "-n",
        "1",
    ]);
    assert_eq!(stdout(&out), "2026-01-01T00:01:00Z\n");
}

#[test]
fn cron_next_errors_are_one_line_on_stderr_with_nothing_on_stdout() {
    let cases: [&[&str]; 5] = [
        &["cron", "next", "61 * * * *"],
        &["cron", "next", "0 0 * * * *"],
        &["cron", "next", "* * * * *", "--tz", "Mars/Olympus"],
        &["cron", "next", "0 0 31 2 *"],
        &["cron", "next", "* * * * *", "--from", "yesterday"],
    ];
    let expected = [
        "minute field `61`",
        "6 fields",
        "Mars/Olympus",
        "never fires",
        "--from `yesterday`",
    ];
    for (args, expected) in cases.iter().zip(expected) {
        let out = wasmsched(args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert_eq!(stdout(&out), "", "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains(expected),
            "{args:?}: expected `{expected}` in {err}"
        );
    }
}

#[test]
fn cron_explain_describes_and_lists_local_and_utc() {
    let out = wasmsched(&["cron", "explain", "0 9 * * MON-FRI", "--tz", "Asia/Seoul"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Asia/Seoul"), "{text}");
    assert!(text.contains("09:00"), "{text}");
    assert!(text.contains("Monday"), "{text}");
    let fires: Vec<&str> = text.lines().filter(|l| l.contains("+09:00")).collect();
    assert_eq!(fires.len(), 5, "{text}");
    assert!(
        fires
            .iter()
            .all(|l| l.contains("09:00 KST") && l.ends_with("T00:00:00Z")),
        "{text}"
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmsched"))
        .args(["cron", "next", "* * * * *", "-n", "1000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.ends_with("Z\n"), "{first}");
    // The reader is dropped: what `| head -1` does.
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn cron_next_with_jitter_shifts_each_fire_by_the_triggers_offset() {
    let args = [
        "cron",
        "next",
        "0 * * * *",
        "--from",
        "2026-01-02T00:30:00Z",
        "-n",
        "2",
    ];
    let plain = stdout(&wasmsched(&args));
    let jittered = wasmsched(&[&args[..], &["--jitter", "10m", "--id", "hourly-report"]].concat());
    assert!(jittered.status.success(), "{}", stderr(&jittered));
    let parse = |text: &str| -> Vec<chrono::DateTime<chrono::FixedOffset>> {
        text.lines()
            .map(|l| chrono::DateTime::parse_from_rfc3339(l).unwrap())
            .collect()
    };
    let (plain, jittered) = (parse(&plain), parse(&stdout(&jittered)));
    let offset = jittered[0] - plain[0];
    assert!(offset >= chrono::TimeDelta::zero() && offset < chrono::TimeDelta::minutes(10));
    assert_eq!(
        jittered[1] - plain[1],
        offset,
        "the same offset for every fire"
    );
    let no_id = wasmsched(&["cron", "next", "0 * * * *", "--jitter", "10m"]);
    assert!(!no_id.status.success());
    assert!(stderr(&no_id).contains("--id"), "{}", stderr(&no_id));
}
