//! A real `nats-server -js` for one test: a free loopback port, a temporary
//! store directory, killed (or restarted on the same port and store) at will.
//! Shared by the tests and the broker benchmark.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server with JetStream on a port it picks itself (no race
    /// for a free port) and waits until it is ready.
    pub fn start() -> Self {
        let mut server = Self {
            child: None,
            port: 0,
            store: tempfile::tempdir().expect("a temporary store directory"),
        };
        server.spawn();
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process (SIGSTOP): connections stay open, nothing answers.
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Lets a frozen server run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("the server is running");
        let pid = libc::pid_t::try_from(child.id()).expect("a pid");
        // SAFETY: kill(2) with our own child's pid and a valid signal.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Starts it again on the same port with its store wiped: streams and
    /// consumers are gone, as on a new server.
    pub fn restart_empty(&mut self) {
        self.kill();
        for entry in std::fs::read_dir(self.store.path()).unwrap() {
            std::fs::remove_dir_all(entry.unwrap().path()).unwrap();
        }
        self.spawn();
    }

    fn spawn(&mut self) {
        // -1: a random free port, which the server logs.
        let port = match self.port {
            0 => "-1".to_owned(),
            port => port.to_string(),
        };
        let mut child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port, "-sd"])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect(
                "cannot run nats-server: install it (`apt-get install nats-server`; .ci/run does)",
            );
        // It logs to stderr: its port, then "Server is ready" once
        // JetStream is up.
        let (ready, is_ready) = mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            let mut port = None;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, address)) = line.split_once("Listening for client connections on ")
                {
                    port = address
                        .rsplit(':')
                        .next()
                        .and_then(|p| p.trim().parse::<u16>().ok());
                }
                if line.contains("Server is ready") {
                    let _ = ready.send(port);
                }
            }
        });
        match is_ready.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(port)) => self.port = port,
            _ => {
                let _ = child.kill();
                panic!("nats-server did not become ready (port {port})");
            }
        }
        self.child = Some(child);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
