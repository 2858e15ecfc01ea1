//! HTTPS with rustls: the certificate chain and key of `[server] tls_cert`
//! and `tls_key` (PEM), reloaded when either file changes, so a renewed
//! certificate is served without a restart. A renewed pair that does not
//! load (unreadable, not PEM, a key that does not match) is reported and
//! the previous one keeps serving.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use crate::config::TlsFiles;

/// How often the files are checked for a change.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// The certificate being served, swapped when the files change.
#[derive(Debug)]
struct Current(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// Loads `files` and returns an acceptor serving them; a task follows the
/// files until `stop` is cancelled. An error names the file and the cause.
pub async fn acceptor(files: &TlsFiles, stop: CancellationToken) -> Result<TlsAcceptor, String> {
    let (key, stamp) = load(files).await?;
    let current = Arc::new(Current(ArcSwap::from_pointee(key)));
    let provider = Arc::new(ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(current.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio::spawn(follow(files.clone(), current, stamp, stop));
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// When each file was last changed, and its length.
type Stamp = Vec<Option<(SystemTime, u64)>>;

async fn stamp(files: &TlsFiles) -> Stamp {
    let mut stamp = Vec::new();
    for path in [&files.cert, &files.key] {
        let meta = tokio::fs::metadata(path).await.ok();
        stamp.push(meta.and_then(|m| Some((m.modified().ok()?, m.len()))));
    }
    stamp
}

async fn follow(files: TlsFiles, current: Arc<Current>, mut seen: Stamp, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(CHECK_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let now = stamp(&files).await;
        if now == seen {
            continue;
        }
        match load(&files).await {
            Ok((key, stamp)) => {
                current.0.store(Arc::new(key));
                seen = stamp;
                tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded");
            }
            Err(error) => {
                // Tried again at the next change (a renewal may write the
                // two files one after the other).
                seen = now;
                tracing::error!("{error}; the previous certificate keeps serving");
            }
        }
    }
}

async fn load(files: &TlsFiles) -> Result<(CertifiedKey, Stamp), String> {
    let stamp = stamp(files).await;
    let read = |path: &std::path::Path| {
        let path = path.to_owned();
        async move {
            tokio::fs::read(&path)
                .await
                .map_err(|e| format!("TLS: cannot read {}: {e}", path.display()))
        }
    };
    let (cert_pem, key_pem) = (read(&files.cert).await?, read(&files.key).await?);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            format!(
                "TLS: {}: not a PEM certificate chain: {e}",
                files.cert.display()
            )
        })?;
    if chain.is_empty() {
        return Err(format!(
            "TLS: {}: no certificate in it",
            files.cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("TLS: {}: not a PEM private key: {e}", files.key.display()))?;
    let signing = ring::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("TLS: {}: {e}", files.key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        format!(
            "TLS: {} does not match {}: {e}",
            files.key.display(),
            files.cert.display()
        )
    })?;
    Ok((certified, stamp))
}
