//! The composition root: the one place that knows which adapter implements each port. It reads
//! like a checklist: open the data dir, the store and the database; bootstrap the admin key;
//! build the services; bind; serve; drain.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::serve::ListenerExt;
use imgd_blob::LocalBlobStore;
use imgd_cluster::LocalLocks;
use imgd_core::port::IngestLimits;
use imgd_core::service::auth::{AuthService, Bootstrap};
use imgd_core::service::catalog::CatalogService;
use imgd_core::service::delivery::{DeliveryService, DeliverySettings};
use imgd_core::service::ingest::{IngestService, IngestSettings};
use imgd_core::service::render_pool::RenderPool;
use imgd_core::service::{Ports, staging};
use imgd_http::{AppServices, AppState};
use imgd_imaging::Pipeline;
use imgd_metadata::SqliteRepo;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;

/// How long a lock may be held before another process may assume its holder died (only
/// meaningful for cross-process locks).
const LOCK_TTL: Duration = Duration::from_secs(60);

/// A started (bound) server, not yet serving.
pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    /// Set when this start generated the admin key; print it once.
    pub generated_admin_key: Option<String>,
    pub admin_key_path: PathBuf,
    listener: tokio::net::TcpListener,
    grace: Duration,
}

/// Writes the generated admin key where only the owner can read it.
fn write_admin_key(path: &Path, key: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(file, "{key}")?;
    file.sync_all()?;
    Ok(())
}

/// Opens every backend, builds the services and binds the listener.
pub async fn start(config: Config, metrics: PrometheusHandle) -> Result<Server> {
    let data_dir = &config.server.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let staging_dir = data_dir.join("tmp").join("uploads");
    let swept = staging::sweep(&staging_dir).context("sweeping interrupted uploads")?;
    if swept > 0 {
        tracing::info!(swept, "removed uploads interrupted by the last shutdown");
    }

    let blobs = Arc::new(LocalBlobStore::open(data_dir).context("opening the blob store")?);
    let repo = Arc::new(
        SqliteRepo::open(&data_dir.join("imgd.db"))
            .await
            .context("opening the metadata database")?,
    );
    let limits = IngestLimits {
        max_pixels: config.limits.max_pixels,
        max_frames: config.limits.max_frames,
    };
    let imaging = Arc::new(Pipeline::new(config.pipeline_settings()));
    let ports = Ports {
        blobs,
        repo: repo.clone(),
        locks: Arc::new(LocalLocks::default()),
        imaging,
    };

    let auth = Arc::new(AuthService::open(repo).await?);
    let configured_key = Some(config.auth.admin_key.as_str()).filter(|k| !k.is_empty());
    let admin_key_path = data_dir.join("admin.key");
    let generated_admin_key = match auth.bootstrap_admin(configured_key).await? {
        Bootstrap::Generated(key) => {
            write_admin_key(&admin_key_path, &key)?;
            Some(key)
        }
        Bootstrap::Configured | Bootstrap::Existing => None,
    };

    let pool = Arc::new(RenderPool::new(
        config.render_workers(),
        config.render.queue,
        Duration::from_secs(config.render.timeout_secs),
    ));
    let delivery = Arc::new(DeliveryService::new(
        ports.clone(),
        pool.clone(),
        DeliverySettings {
            presets: config.presets()?,
            transform_limits: config.transform_limits(),
            quality: config.quality_defaults(),
            lock_ttl: LOCK_TTL,
            memory_cache_bytes: config.render.memory_cache_mb * 1024 * 1024,
            memory_item_max_bytes: config.render.memory_item_max_kb * 1024,
            record_cache_ttl: Duration::from_millis(config.render.record_cache_ttl_ms),
        },
    ));
    let forget = delivery.clone();
    let catalog = Arc::new(CatalogService::new(
        ports.clone(),
        LOCK_TTL,
        Box::new(move |id| forget.forget_image(id)),
    ));
    let ingest = Arc::new(IngestService::new(
        ports.clone(),
        pool,
        IngestSettings {
            max_upload_bytes: config.limits.max_upload_bytes,
            limits,
            staging_dir,
            lock_ttl: LOCK_TTL,
        },
    ));

    let state = AppState::new(AppServices {
        ports,
        auth,
        ingest,
        catalog,
        delivery,
        metrics: Some(metrics),
        public_url: config.server.public_url.as_str().into(),
        draining: Arc::new(AtomicBool::new(false)),
    });
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %data_dir.display(), "imgd listening");
    Ok(Server {
        addr,
        state,
        generated_admin_key,
        admin_key_path,
        listener,
        grace: Duration::from_secs(config.server.shutdown_grace_secs),
    })
}

impl Server {
    /// Serves until `shutdown` resolves, then stops accepting, reports not-ready, and gives
    /// in-flight requests up to the grace period to finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let draining = self.state.draining.clone();
        let (drain_started_tx, drain_started) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            draining.store(true, Ordering::SeqCst);
            let _ = drain_started_tx.send(());
        };
        let router = imgd_http::router(self.state);
        let serve = axum::serve(
            self.listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            }),
            router,
        )
        .with_graceful_shutdown(signal);
        let grace = self.grace;
        let deadline = async move {
            if drain_started.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            result = serve => result.context("server failed")?,
            _ = deadline => tracing::warn!(?grace, "grace period over, dropping unfinished requests"),
        }
        tracing::info!("imgd stopped");
        Ok(())
    }
}
