//! `wasmsched new NAME --lang rust|python|js|c|zig`: a plugin project that
//! builds and runs as is.
//!
//! The project holds the source of a factory plugin, its manifest
//! (`NAME.toml`: a cron trigger every minute and an api trigger), a
//! `build.sh` that builds `NAME.wasm` and installs both into a plugins
//! directory, and a copy of `wit/plugin.wit`, so it builds on its own. The
//! templates are the files under `templates/`, with `{{name}}` standing for
//! the plugin name; the build tools' pins are shared with the example
//! plugins (`plugins/python/requirements.txt`, `plugins/js/package-lock.json`,
//! `plugins/c/requirements.txt`), and so are the C bindings of the WIT
//! worlds (`plugins/c/bindings/`) the C and Zig projects compile.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The language of a new plugin.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Python,
    #[value(alias = "javascript")]
    Js,
    /// C (or C++), compiled by `zig cc`.
    C,
    Zig,
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
            Lang::C => "C",
            Lang::Zig => "Zig",
        })
    }
}

/// The placeholder the templates use for the plugin name.
const PLACEHOLDER: &str = "{{name}}";

/// One file of a template: its path in the project (may hold the
/// placeholder) and its text.
struct Template {
    path: &'static str,
    text: &'static str,
}

macro_rules! template {
    ($path:literal, $file:literal) => {
        Template {
            path: $path,
            text: include_str!(concat!("../../", $file)),
        }
    };
}

/// Files every project gets.
const COMMON: &[Template] = &[
    template!("wit/plugin.wit", "wit/plugin.wit"),
    template!("{{name}}.toml", "templates/manifest.toml"),
];

const RUST: &[Template] = &[
    template!("Cargo.toml", "templates/rust/Cargo.toml.tmpl"),
    template!("Cargo.lock", "templates/rust/Cargo.lock.tmpl"),
    template!("src/lib.rs", "templates/rust/src/lib.rs"),
    template!("build.sh", "templates/rust/build.sh"),
    template!("README.md", "templates/rust/README.md"),
    template!(".gitignore", "templates/rust/.gitignore"),
];

const PYTHON: &[Template] = &[
    template!("app.py", "templates/python/app.py"),
    template!("requirements.txt", "plugins/python/requirements.txt"),
    template!("build.sh", "templates/python/build.sh"),
    template!("README.md", "templates/python/README.md"),
    template!(".gitignore", "templates/python/.gitignore"),
];

/// The lock of the example JS plugins, whose package name is replaced by
/// the placeholder: the same pinned tree as `plugins/js`.
const JS_LOCK: &str = include_str!("../../plugins/js/package-lock.json");
const JS_LOCK_NAME: &str = "\"wasmsched-js-plugins\"";

const JS: &[Template] = &[
    template!("app.js", "templates/js/app.js"),
    template!("package.json", "templates/js/package.json"),
    template!("build.sh", "templates/js/build.sh"),
    template!("README.md", "templates/js/README.md"),
    template!(".gitignore", "templates/js/.gitignore"),
];

const C: &[Template] = &[
    template!("app.c", "templates/c/app.c"),
    template!("build.sh", "templates/c/build.sh"),
    template!("README.md", "templates/c/README.md"),
    template!(".gitignore", "templates/c/.gitignore"),
];

const ZIG: &[Template] = &[
    template!("app.zig", "templates/zig/app.zig"),
    template!("build.sh", "templates/zig/build.sh"),
    template!("README.md", "templates/zig/README.md"),
    template!(".gitignore", "templates/zig/.gitignore"),
];

/// What C and Zig projects share with `plugins/c`: the tools' pins, the
/// WASI stub adapter and the bindings generated from `wit/plugin.wit`.
const ZIG_CC: &[Template] = &[
    template!("requirements.txt", "plugins/c/requirements.txt"),
    template!("wasi-stub.wat", "plugins/c/wasi-stub.wat"),
    template!(
        "bindings/component_type.c",
        "plugins/c/bindings/component_type.c"
    ),
    template!(
        "bindings/factory_plugin.c",
        "plugins/c/bindings/factory_plugin.c"
    ),
    template!(
        "bindings/factory_plugin.h",
        "plugins/c/bindings/factory_plugin.h"
    ),
    template!(
        "bindings/filter_plugin.c",
        "plugins/c/bindings/filter_plugin.c"
    ),
    template!(
        "bindings/filter_plugin.h",
        "plugins/c/bindings/filter_plugin.h"
    ),
    template!("bindings/plugin.c", "plugins/c/bindings/plugin.c"),
    template!("bindings/plugin.h", "plugins/c/bindings/plugin.h"),
];

/// Rust keywords and crate names cargo refuses as package names.
const RUST_RESERVED: &[&str] = &[
    "abstract",
    "alloc",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "core",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "proc_macro",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "std",
    "struct",
    "super",
    "test",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
];

/// The files of a `lang` project for plugin `name`: (path, contents).
fn project_files(name: &str, lang: Lang) -> Vec<(PathBuf, String)> {
    let subst = |text: &str| text.replace(PLACEHOLDER, name);
    let (own, shared): (&[Template], &[Template]) = match lang {
        Lang::Rust => (RUST, &[]),
        Lang::Python => (PYTHON, &[]),
        Lang::Js => (JS, &[]),
        Lang::C => (C, ZIG_CC),
        Lang::Zig => (ZIG, ZIG_CC),
    };
    let mut files: Vec<(PathBuf, String)> = own
        .iter()
        .chain(shared)
        .chain(COMMON)
        .map(|t| (PathBuf::from(subst(t.path)), subst(t.text)))
        .collect();
    if lang == Lang::Js {
        let lock = JS_LOCK.replace(JS_LOCK_NAME, &format!("\"{name}\""));
        files.push(("package-lock.json".into(), lock));
    }
    files
}

/// Checks that `name` is a lowercase identifier, usable as a file, crate,
/// package and topic name.
pub fn validate_name(name: &str, lang: Lang) -> Result<()> {
    let mut chars = name.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !well_formed {
        bail!(
            "invalid plugin name `{name}`: use lowercase letters, digits and `_`, \
             starting with a letter (e.g. `my_plugin`)"
        );
    }
    if name.len() > 64 {
        bail!("invalid plugin name `{name}`: at most 64 characters");
    }
    if lang == Lang::Rust && RUST_RESERVED.contains(&name) {
        bail!("invalid plugin name `{name}`: reserved in Rust (a keyword or a built-in crate)");
    }
    Ok(())
}

/// Creates the project of plugin `name` in `dir` (default `./NAME`), which
/// must not exist or be empty, and prints the next commands.
pub fn run(name: &str, lang: Lang, dir: Option<&Path>) -> Result<()> {
    validate_name(name, lang)?;
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    check_target(&dir)?;
    let files = project_files(name, lang);
    for (path, text) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    make_executable(&dir.join("build.sh"))?;
    print_next_steps(name, lang, &dir);
    Ok(())
}

/// Refuses a `dir` that exists and is not an empty directory.
fn check_target(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} already exists and is not empty; pick another name or --dir",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) if dir.exists() && !dir.is_dir() => {
            bail!("{} already exists and is not a directory", dir.display())
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.display())),
    }
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> Result<()> {
    Ok(())
}

fn print_next_steps(name: &str, lang: Lang, dir: &Path) {
    let source = match lang {
        Lang::Rust => "src/lib.rs",
        Lang::Python => "app.py",
        Lang::Js => "app.js",
        Lang::C => "app.c",
        Lang::Zig => "app.zig",
    };
    let shown = |file: &str| dir.join(file).display().to_string();
    let manifest = format!("{name}.toml");
    let width = [source, manifest.as_str(), "build.sh"]
        .iter()
        .map(|f| shown(f).len())
        .max()
        .unwrap_or(0);
    println!("Created the {lang} plugin `{name}` in {}:", dir.display());
    println!(
        "  {:width$}  the plugin: a factory emitting {{\"hello\": ..., \"trigger\": ..., \"kind\": ..., \"at\": ...}}",
        shown(source)
    );
    println!(
        "  {:width$}  its triggers: `{name}-cron` every minute, `{name}` on POST /api/triggers/{name}/trigger",
        shown(&manifest)
    );
    println!(
        "  {:width$}  builds {name}.wasm and installs it with {manifest} into ./plugins (or its argument)",
        shown("build.sh")
    );
    println!();
    println!("Next, from this directory:");
    println!("  bash {}", shell_quote(&shown("build.sh")));
    println!("  wasmsched run");
    println!("(`cargo run -- run` in a wasmsched source checkout)");
    if !Path::new("wasmsched.toml").exists() {
        println!();
        println!(
            "`wasmsched run` reads ./wasmsched.toml, and there is none here: `touch wasmsched.toml` \
             makes one that serves ./plugins on 127.0.0.1:8080."
        );
    }
    warn_about_clashes(name);
}

/// Warns when installing the plugin would replace another one, or when its
/// trigger ids are taken (the host refuses a config with duplicate ids).
fn warn_about_clashes(name: &str) {
    let installed = Path::new("plugins").join(format!("{name}.wasm"));
    if installed.exists() {
        eprintln!(
            "note: {} already exists; build.sh will replace it",
            installed.display()
        );
    }
    let Ok(config) = wasmsched::config::Config::load(Path::new("wasmsched.toml")) else {
        return;
    };
    let own_manifest = config.plugins_dir.join(format!("{name}.toml"));
    let ids = [name.to_owned(), format!("{name}-cron")];
    for trigger in &config.triggers {
        if ids.contains(&trigger.id) && trigger.declared_in.file() != Some(own_manifest.as_path()) {
            eprintln!(
                "note: trigger id `{}` is already declared in {}; rename it in {name}.toml \
                 before installing, or `wasmsched run` will refuse the duplicate",
                trigger.id, trigger.declared_in
            );
        }
    }
}

/// `text` as one shell word.
fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./,:@%+=".contains(c));
    match plain {
        true => text.to_owned(),
        false => format!("'{}'", text.replace('\'', r"'\''")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn names_are_lowercase_identifiers() {
        for good in ["hello", "my_plugin", "p2", "a"] {
            validate_name(good, Lang::Rust).unwrap();
        }
        for bad in [
            "",
            "Hello",
            "2fast",
            "_x",
            "my-plugin",
            "a.b",
            "héllo",
            "a b",
        ] {
            let error = validate_name(bad, Lang::Python).unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("invalid plugin name `{bad}`")),
                "{error}"
            );
        }
        assert!(validate_name("fn", Lang::Rust).is_err());
        validate_name("fn", Lang::Js).unwrap();
        assert!(validate_name(&"a".repeat(65), Lang::Js).is_err());
    }

    #[test]
    fn every_placeholder_is_substituted() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js, Lang::C, Lang::Zig] {
            let files = project_files("hello_wasm", lang);
            for (path, text) in &files {
                assert!(!path.to_string_lossy().contains("{{"), "{path:?}");
                assert!(!text.contains(PLACEHOLDER), "{lang}: {path:?}");
            }
            let paths: Vec<_> = files.iter().map(|(p, _)| p.to_str().unwrap()).collect();
            for expected in ["build.sh", "hello_wasm.toml", "wit/plugin.wit", "README.md"] {
                assert!(paths.contains(&expected), "{lang}: {paths:?}");
            }
        }
    }

    #[test]
    fn the_manifest_declares_a_cron_and_an_api_trigger() {
        let files = project_files("hello", Lang::Rust);
        let (_, text) = files
            .iter()
            .find(|(p, _)| p == Path::new("hello.toml"))
            .unwrap();
        let triggers = wasmsched::config::parse_manifest(Path::new("plugins/hello.toml"), text)
            .unwrap()
            .triggers;
        let summary: Vec<_> = triggers
            .iter()
            .map(|t| {
                (
                    t.id.as_str(),
                    t.kind().as_str(),
                    t.topic.as_str(),
                    t.plugin.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("hello-cron", "cron", "hello.events", Some("hello")),
                ("hello", "api", "hello.events", Some("hello")),
            ]
        );
        assert_eq!(triggers[0].spec, wasmsched::TriggerSpec::cron("* * * * *"));
        assert_eq!(
            triggers[1].api_path().as_deref(),
            Some("/api/triggers/hello")
        );
    }

    /// The JS template pins what the example plugins' lock holds.
    #[test]
    fn the_js_template_matches_the_shared_lock() {
        let files = project_files("hello", Lang::Js);
        let json = |name: &str| -> Value {
            let (_, text) = files.iter().find(|(p, _)| p == Path::new(name)).unwrap();
            serde_json::from_str(text).unwrap()
        };
        let package = json("package.json");
        let lock = json("package-lock.json");
        assert_eq!(package["name"], "hello");
        assert_eq!(lock["name"], "hello");
        assert_eq!(lock["packages"][""]["name"], "hello");
        assert_eq!(
            package["devDependencies"],
            lock["packages"][""]["devDependencies"]
        );
        let examples: Value = serde_json::from_str(include_str!("../../plugins/js/package.json"))
            .expect("plugins/js/package.json");
        assert_eq!(package["devDependencies"], examples["devDependencies"]);
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("hello/build.sh"), "hello/build.sh");
        assert_eq!(shell_quote("my dir/build.sh"), "'my dir/build.sh'");
        assert_eq!(shell_quote("it's/build.sh"), r"'it'\''s/build.sh'");
    }
}
