//! A real 3-node NATS cluster with JetStream for one test: three
//! `nats-server -js` processes on loopback, each with its own store
//! directory and server name, routed to each other; any of them killed
//! (SIGKILL) or restarted on the same ports and store.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Node {
    child: Option<Child>,
    name: String,
    port: u16,
    cluster_port: u16,
    store: tempfile::TempDir,
}

pub struct NatsCluster {
    nodes: Vec<Node>,
}

/// A port free now (bound, then let go: the server takes it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl NatsCluster {
    /// Starts `size` routed servers and waits until JetStream can place a
    /// stream with `size` replicas.
    pub async fn start(size: usize) -> Self {
        // Ports are picked free then let go, so a test running alongside
        // may take one first: then the cluster starts again on new ports.
        for _attempt in 0..3 {
            if let Some(cluster) = Self::try_start(size) {
                cluster.wait_for_jetstream(size).await;
                return cluster;
            }
        }
        panic!("the NATS cluster did not start in 3 attempts (see nats-server's errors above)");
    }

    fn try_start(size: usize) -> Option<Self> {
        let nodes: Vec<Node> = (0..size)
            .map(|i| Node {
                child: None,
                name: format!("n{i}"),
                port: free_port(),
                cluster_port: free_port(),
                store: tempfile::tempdir().unwrap(),
            })
            .collect();
        let routes: Vec<String> = nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.cluster_port))
            .collect();
        let mut cluster = Self { nodes };
        for node in &mut cluster.nodes {
            if let Err(error) = try_spawn(node, &routes.join(",")) {
                eprintln!("{error}; starting the cluster again on other ports");
                return None; // Dropping the cluster stops the servers started.
            }
        }
        Some(cluster)
    }

    /// Every server's client URL, comma-separated (as `[broker] url`).
    pub fn urls(&self) -> String {
        self.url_list().join(",")
    }

    /// Every server's client URL (what `async_nats::connect` takes).
    pub fn url_list(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|i| self.url(i)).collect()
    }

    /// Server `i`'s client URL.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].port)
    }

    /// The index of server `name` (as a stream's cluster info names it).
    pub fn index_of(&self, name: &str) -> usize {
        self.nodes.iter().position(|n| n.name == name).unwrap()
    }

    /// Kills server `i` at once (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts server `i` again, same ports and store.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        let routes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.cluster_port))
            .collect();
        spawn(&mut self.nodes[i], &routes.join(","));
    }

    /// Waits until a stream with `replicas` copies can be made.
    async fn wait_for_jetstream(&self, replicas: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(client) = async_nats::connect(self.url_list()).await {
                let jetstream = async_nats::jetstream::new(client);
                let probe = async_nats::jetstream::stream::Config {
                    name: "PROBE".into(),
                    subjects: vec!["probe.>".into()],
                    num_replicas: replicas,
                    ..Default::default()
                };
                if jetstream.create_stream(probe).await.is_ok() {
                    let _ = jetstream.delete_stream("PROBE").await;
                    return;
                }
            }
            assert!(Instant::now() < deadline, "the NATS cluster did not form");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn spawn(node: &mut Node, routes: &str) {
    if let Err(error) = try_spawn(node, routes) {
        panic!("{error}");
    }
}

/// Starts `node`'s server; an error if it is not ready within 20 s (a
/// port taken meanwhile, usually), with what it logged.
fn try_spawn(node: &mut Node, routes: &str) -> Result<(), String> {
    let mut child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p"])
        .arg(node.port.to_string())
        .args([
            "-server_name",
            &node.name,
            "-cluster_name",
            "wasmsched-test",
        ])
        .arg("-cluster")
        .arg(format!("nats://127.0.0.1:{}", node.cluster_port))
        .args(["-routes", routes, "-sd"])
        .arg(node.store.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run nats-server: install it (`apt-get install nats-server`; .ci/run does)");
    let (ready, is_ready) = mpsc::channel();
    let stderr = child.stderr.take().expect("piped stderr");
    let logged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = logged.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("Server is ready") {
                let _ = ready.send(());
            }
            kept.lock().unwrap().push(line);
        }
    });
    if is_ready.recv_timeout(Duration::from_secs(20)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        let log = logged.lock().unwrap().join("\n");
        return Err(format!(
            "nats-server {} did not become ready:\n{log}",
            node.name
        ));
    }
    node.child = Some(child);
    Ok(())
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}
