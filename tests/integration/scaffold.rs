//! `wasmsched new` end to end, with the real binary: for each language,
//! create a plugin project in a temporary directory, run its `build.sh`,
//! then load the installed component and call its factory with the
//! triggers of the installed manifest. The Rust project also goes through
//! the README's third command, `wasmsched run`, fired over HTTP.
//!
//! Needs what a user needs: the wasm32-wasip2 Rust target, python3, node
//! and npm. To keep `cargo test` fast, the Rust guest builds into
//! `<target dir>/scaffold` (incremental across runs), and the Python and
//! JS builds reuse the tools of the example plugins (`plugins/python/.venv`,
//! `plugins/js/node_modules`) when they are installed, through
//! `COMPONENTIZE_PY` / `COMPONENTIZE_JS`. Set
//! `WASMSCHED_SCAFFOLD_STANDALONE=1` to make them install their own, as a
//! new user's first build does (needs the network).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;
use wasmsched::plugin::{PluginRuntime, RuntimeOptions};
use wasmsched::trigger::TriggerKind;
use wasmsched::{Cause, Event, Firing, Topic};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const BIN: &str = env!("CARGO_BIN_EXE_wasmsched");

// ---------------------------------------------------------------- helpers

fn runtime() -> &'static PluginRuntime {
    static RUNTIME: OnceLock<PluginRuntime> = OnceLock::new();
    RUNTIME.get_or_init(|| PluginRuntime::new(RuntimeOptions::default()).unwrap())
}

/// The cargo target directory this test was built in (the binary is
/// `<target>/<profile>/wasmsched`).
fn target_dir() -> PathBuf {
    Path::new(BIN)
        .parent()
        .and_then(Path::parent)
        .expect("the binary is in <target>/<profile>/")
        .to_owned()
}

/// A command with none of the variables that would steer the builds.
fn command(program: impl AsRef<std::ffi::OsStr>, cwd: &Path) -> Command {
    let mut command = Command::new(program);
    command.current_dir(cwd);
    for var in [
        "WASMSCHED_PLUGINS",
        "COMPONENTIZE_PY",
        "COMPONENTIZE_JS",
        "ZIG_VENV",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "VIRTUAL_ENV",
    ] {
        command.env_remove(var);
    }
    command
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `command`, which must succeed; returns its stdout.
fn succeed(command: &mut Command) -> String {
    let started = Instant::now();
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?} failed ({}) after {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        started.elapsed(),
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// `wasmsched new ARGS...` in `cwd`.
fn wasmsched_new(cwd: &Path, args: &[&str]) -> Output {
    run(command(BIN, cwd).arg("new").args(args))
}

/// `wasmsched new` in `cwd`, which must succeed; checks what it printed and
/// the common files.
fn create(cwd: &Path, name: &str, lang: &str, dir: Option<&str>) -> PathBuf {
    let mut args = vec![name, "--lang", lang];
    if let Some(dir) = dir {
        args.extend(["--dir", dir]);
    }
    let output = wasmsched_new(cwd, &args);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "wasmsched new {args:?}: {}\n{stdout}{}",
        output.status,
        text(&output.stderr)
    );
    let shown = dir.map_or_else(|| name.to_owned(), str::to_owned);
    assert!(
        stdout.contains(&format!("\n  bash {shown}/build.sh\n  wasmsched run\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains("touch wasmsched.toml"),
        "no wasmsched.toml in {}, yet no hint: {stdout}",
        cwd.display()
    );
    let project = cwd.join(&shown);
    for file in [
        "build.sh".to_owned(),
        format!("{name}.toml"),
        "README.md".into(),
        ".gitignore".into(),
    ] {
        assert!(project.join(&file).is_file(), "{lang}: no {file}");
    }
    assert_eq!(
        std::fs::read_to_string(project.join("wit/plugin.wit")).unwrap(),
        std::fs::read_to_string(Path::new(REPO).join("wit/plugin.wit")).unwrap(),
        "the project carries the contract"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(project.join("build.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "build.sh is executable");
    }
    project
}

/// A build tool of the example plugins, if installed and not disabled.
fn example_tool(relative: &str) -> Option<PathBuf> {
    if std::env::var_os("WASMSCHED_SCAFFOLD_STANDALONE").is_some() {
        return None;
    }
    let path = Path::new(REPO).join(relative);
    path.is_file().then_some(path)
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// Loads the installed `plugins/NAME.wasm` and calls its factory once per
/// trigger of the installed `plugins/NAME.toml`, with that trigger's config.
async fn check_installed(plugins: &Path, project: &Path, name: &str, only_host_imports: bool) {
    let manifest = plugins.join(format!("{name}.toml"));
    assert_eq!(
        std::fs::read_to_string(&manifest).unwrap(),
        std::fs::read_to_string(project.join(format!("{name}.toml"))).unwrap(),
        "build.sh installs the manifest as it is"
    );
    let plugin = runtime()
        .load_file(&plugins.join(format!("{name}.wasm")), None)
        .unwrap_or_else(|e| panic!("loading {name}: {e}"));
    assert_eq!(plugin.name(), name);
    assert_eq!(plugin.worlds().names(), ["factory-plugin"]);
    if only_host_imports {
        assert!(
            plugin
                .imports()
                .iter()
                .all(|i| i.starts_with("wasmsched:plugin/")),
            "{name}: {:?}",
            plugin.imports()
        );
    }

    let triggers = wasmsched::config::load_manifest(&manifest)
        .unwrap()
        .triggers;
    let kinds: Vec<_> = triggers.iter().map(|t| (t.id.as_str(), t.kind())).collect();
    let cron_id = format!("{name}-cron");
    assert_eq!(
        kinds,
        [
            (cron_id.as_str(), TriggerKind::Cron),
            (name, TriggerKind::Api)
        ]
    );
    for trigger in &triggers {
        assert_eq!(trigger.plugin.as_deref(), Some(name));
        assert_eq!(trigger.topic.as_str(), format!("{name}.events"));
        let factory = plugin.factory(&trigger.id, trigger.config.clone()).unwrap();
        let cause = match trigger.kind() {
            TriggerKind::Api => Cause::Api {
                payload: json!({"x": 1}),
            },
            TriggerKind::Cron => Cause::cron(),
            TriggerKind::Event => Cause::Event {
                source: Event::new(Topic::new("a.b").unwrap(), json!({})),
            },
        };
        let firing = Firing::new(trigger.id.clone(), at("2026-11-26T03:00:00Z"), cause);
        let events = factory.make_events(&firing).await.unwrap();
        assert_eq!(events.len(), 1, "{name}");
        assert_eq!(events[0].topic, None, "{name}: the trigger's own topic");
        assert_eq!(
            events[0].data,
            json!({
                "hello": trigger.config["greeting"],
                "trigger": trigger.id,
                "kind": trigger.kind().as_str(),
                "at": "2026-11-26T03:00:00Z",
            }),
            "{name}"
        );
    }

    // Without a `greeting` config: the default.
    let factory = plugin.factory("bare", BTreeMap::new()).unwrap();
    let source = Event::new(Topic::new("a.b").unwrap(), json!({}));
    let firing = Firing::new("bare", at("2026-11-26T03:00:00Z"), Cause::Event { source });
    let events = factory.make_events(&firing).await.unwrap();
    assert_eq!(
        events[0].data,
        json!({"hello": "world", "trigger": "bare", "kind": "event", "at": "2026-11-26T03:00:00Z"})
    );
}

/// A `wasmsched run` child process, killed when dropped.
struct Host {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Host {
    fn start(dir: &Path) -> Self {
        let mut child = command(BIN, dir)
            .args(["run", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .env_remove("WASMSCHED_ADMIN_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting wasmsched run");
        let stderr = child.stderr.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first (next) log line containing every one of `parts`.
    fn wait_for(&mut self, parts: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if parts.iter().all(|p| line.contains(p)) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {parts:?}; the host logged:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------ tests

/// The README's three commands: `wasmsched new`, `bash NAME/build.sh`,
/// `wasmsched run` (then an api call, to see the plugin fire at once).
#[tokio::test]
async fn a_rust_project_builds_installs_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let project = create(tmp.path(), "hello_rs", "rust", None);
    assert!(project.join("src/lib.rs").is_file());
    assert!(project.join("Cargo.lock").is_file());

    // Default install dir: ./plugins where build.sh is run.
    let stdout_and_err = run(command("bash", tmp.path())
        .arg("hello_rs/build.sh")
        .env("CARGO_TARGET_DIR", target_dir().join("scaffold")));
    assert!(
        stdout_and_err.status.success(),
        "build.sh failed\n{}{}",
        text(&stdout_and_err.stdout),
        text(&stdout_and_err.stderr)
    );
    let plugins = tmp.path().join("plugins");
    assert!(
        text(&stdout_and_err.stdout).contains(&format!(
            "installed {}/hello_rs.wasm",
            plugins.canonicalize().unwrap().display()
        )),
        "{}",
        text(&stdout_and_err.stdout)
    );
    check_installed(&plugins, &project, "hello_rs", false).await;

    // `wasmsched run` with an empty wasmsched.toml (what `new` suggests).
    std::fs::write(tmp.path().join("wasmsched.toml"), "").unwrap();
    let mut host = Host::start(tmp.path());
    host.wait_for(&["loaded plugin", "hello_rs"]);
    let listening = host.wait_for(&["HTTP API on http://"]);
    let url = listening
        .split("HTTP API on ")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    succeed(command(BIN, tmp.path()).args([
        "trigger",
        "hello_rs",
        "--data",
        r#"{"x": 1}"#,
        "--url",
        &url,
    ]));
    let line = host.wait_for(&["topic=hello_rs.events", r#""kind":"api""#]);
    assert!(line.contains(r#""hello":"api""#), "{line}");
    assert!(line.contains(r#""trigger":"hello_rs""#), "{line}");
}

#[tokio::test]
async fn a_python_project_builds_and_makes_events() {
    let tmp = tempfile::tempdir().unwrap();
    let project = create(tmp.path(), "hello_py", "python", None);
    assert!(project.join("app.py").is_file());
    let plugins = tmp.path().join("host/plugins");
    let mut build = command("bash", tmp.path());
    build
        .arg("hello_py/build.sh")
        .env("WASMSCHED_PLUGINS", &plugins);
    if let Some(tool) = example_tool("plugins/python/.venv/bin/componentize-py") {
        build.env("COMPONENTIZE_PY", tool);
    }
    succeed(&mut build);
    check_installed(&plugins, &project, "hello_py", true).await;
}

#[tokio::test]
async fn a_js_project_builds_and_makes_events() {
    let tmp = tempfile::tempdir().unwrap();
    let project = create(tmp.path(), "hello_js", "js", Some("src/hello"));
    assert!(project.join("app.js").is_file());
    assert!(project.join("package-lock.json").is_file());
    let mut build = command("bash", tmp.path());
    build.args(["src/hello/build.sh", "out"]);
    if let Some(tool) = example_tool("plugins/js/node_modules/.bin/componentize-js") {
        build.env("COMPONENTIZE_JS", tool);
    }
    succeed(&mut build);
    check_installed(&tmp.path().join("out"), &project, "hello_js", true).await;
}

#[tokio::test]
async fn a_c_project_builds_and_makes_events() {
    zig_cc_project("hello_c", "c", "app.c").await;
}

#[tokio::test]
async fn a_zig_project_builds_and_makes_events() {
    zig_cc_project("hello_zig", "zig", "app.zig").await;
}

/// A C or Zig project: both build with `zig` and `wasm-tools` from the
/// venv of the C examples when there is one (a fresh venv otherwise).
async fn zig_cc_project(name: &str, lang: &str, source: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let project = create(tmp.path(), name, lang, None);
    assert!(project.join(source).is_file());
    assert!(project.join("bindings/factory_plugin.h").is_file());
    let plugins = tmp.path().join("host/plugins");
    let mut build = command("bash", tmp.path());
    build
        .arg(format!("{name}/build.sh"))
        .env("WASMSCHED_PLUGINS", &plugins);
    if let Some(tool) = example_tool("plugins/c/.venv/bin/wasm-tools") {
        build.env("ZIG_VENV", tool.parent().and_then(Path::parent).unwrap());
    }
    succeed(&mut build);
    check_installed(&plugins, &project, name, true).await;
}

#[test]
fn bad_names_and_taken_directories_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["Hello", "my-plugin", "2fast", "_x", "a.b", ""] {
        let output = wasmsched_new(tmp.path(), &[name, "--lang", "python"]);
        assert!(!output.status.success(), "{name:?} accepted");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains(&format!("invalid plugin name `{name}`"))
                && stderr.contains("lowercase letters, digits and `_`"),
            "{name:?}: {stderr}"
        );
    }
    let output = wasmsched_new(tmp.path(), &["fn", "--lang", "rust"]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("reserved in Rust"),
        "{}",
        text(&output.stderr)
    );
    let output = wasmsched_new(tmp.path(), &["hello", "--lang", "cobol"]);
    assert!(!output.status.success());
    let output = wasmsched_new(tmp.path(), &["hello"]);
    assert!(!output.status.success(), "--lang is required");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing written"
    );

    // An existing, non-empty directory is left alone.
    let taken = tmp.path().join("taken");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("notes.txt"), "mine").unwrap();
    let output = wasmsched_new(tmp.path(), &["taken", "--lang", "js"]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("taken already exists and is not empty"),
        "{stderr}"
    );
    let output = wasmsched_new(tmp.path(), &["other", "--lang", "rust", "--dir", "taken"]);
    assert!(!output.status.success());
    let left: Vec<_> = std::fs::read_dir(&taken)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["notes.txt"]);

    // So is a file.
    std::fs::write(tmp.path().join("file"), "").unwrap();
    let output = wasmsched_new(tmp.path(), &["file", "--lang", "rust"]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("file already exists"),
        "{}",
        text(&output.stderr)
    );

    // An empty directory is fine.
    std::fs::create_dir(tmp.path().join("empty")).unwrap();
    create(tmp.path(), "empty", "rust", None);
}
