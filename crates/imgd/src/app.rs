//! The composition root: the one place that knows which adapter implements each port. It reads
//! like a checklist: open the data dir, the store and the database; check the secret key (KEK)
//! and seal what an earlier version stored in plaintext; bootstrap the admin key; build the
//! services; bind; serve; drain.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use imgd_cluster::{
    LocalLimiter, LocalLocks, Membership, RedisConn, RedisLimiter, RedisLocks, SingleNode,
};
use imgd_core::port::{BlobStore, IngestLimits, LockManager, Member, MetadataRepo, RateLimiter};
use imgd_core::service::auth::{AuthService, Bootstrap};
use imgd_core::service::catalog::CatalogService;
use imgd_core::service::delivery::{DeliveryService, DeliverySettings};
use imgd_core::service::gc::GcService;
use imgd_core::service::id_filter::IdFilter;
use imgd_core::service::ingest::{IngestService, IngestSettings};
use imgd_core::service::jobs::{Job, Lease, Schedule, Supervisor};
use imgd_core::service::memory::MemoryBudget;
use imgd_core::service::render_pool::RenderPool;
use imgd_core::service::sealing::{self, Kek};
use imgd_core::service::tenancy::TenantService;
use imgd_core::service::{Ports, staging};
use imgd_http::{AppServices, AppState, ClusterRoute};
use imgd_imaging::Pipeline;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::{Config, SecretKeySource};
use crate::jobs;

/// A started (bound) server, not yet serving.
pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    /// Set when this start generated the admin key; print it once.
    pub generated_admin_key: Option<String>,
    pub admin_key_path: PathBuf,
    listener: tokio::net::TcpListener,
    /// Header, idle and body timeouts, head size and connection count for the accept loop.
    connection_limits: imgd_http::serve::ConnectionLimits,
    grace: Duration,
    /// The background jobs to supervise while serving (`crate::jobs`).
    jobs: Vec<PlannedJob>,
}

/// A background job and how it runs, started with the server.
struct PlannedJob {
    name: &'static str,
    schedule: Schedule,
    lease: Option<Lease>,
    job: Arc<dyn Job>,
}

/// How often the id filter reads ids created on other nodes (and checks its fill).
const ID_FILTER_SYNC: Duration = Duration::from_secs(1);
/// How long the collector's cluster lease outlives a node that dies holding it.
const GC_LEASE_TTL: Duration = Duration::from_secs(30);
/// How long a drain waits for job passes in progress (a collection stops between blobs).
const JOBS_STOP_WAIT: Duration = Duration::from_secs(5);

/// The collector over the configured store and database, for `imgd gc` and the server.
pub async fn open_gc(config: &Config) -> Result<GcService> {
    Ok(GcService::new(
        open_metadata(config).await?,
        open_blob_store(config)?,
        config.collect_timings(),
        vec![config.staging_dir()],
    ))
}

/// The coordination adapters, chosen together: Redis for all of them, or in-process.
struct Coordination {
    locks: Arc<dyn LockManager>,
    limiter: Arc<dyn RateLimiter>,
    route: ClusterRoute,
    membership: Option<Arc<Membership>>,
}

/// The configured blob store: the data dir, or an S3-compatible bucket.
fn open_blob_store(config: &Config) -> Result<Arc<dyn BlobStore>> {
    let spec = config.store_spec()?;
    tracing::info!(store = %spec.describe(), "blob store");
    spec.open().context("opening the blob store")
}

/// The configured metadata database: SQLite in the data dir, or PostgreSQL.
pub async fn open_metadata(config: &Config) -> Result<Arc<dyn MetadataRepo>> {
    config
        .metadata_engine()?
        .open()
        .await
        .context("opening the metadata database")
}

/// Redis-backed locks, membership and routing when a Redis URL is set, else a node alone.
fn open_coordination(config: &Config, bound: SocketAddr) -> Result<Coordination> {
    let c = &config.cluster;
    let me = Member {
        id: config.node_id().into(),
        url: config.advertise_url(bound).into(),
        weight: c.weight,
    };
    let forward_timeout = Duration::from_millis(c.forward_timeout_ms);
    let answer_timeout = Duration::from_secs(config.render.timeout_secs) + forward_timeout;
    if c.redis_url.is_empty() {
        return Ok(Coordination {
            locks: Arc::new(LocalLocks::default()),
            limiter: Arc::new(LocalLimiter::default()),
            route: ClusterRoute::new(
                &me.id,
                Arc::new(SingleNode::new(me.clone())),
                None,
                forward_timeout,
                answer_timeout,
            ),
            membership: None,
        });
    }
    let redis = RedisConn::new(&c.redis_url, &c.namespace, Duration::from_secs(1))?;
    tracing::info!(node = %me.id, url = %me.url, "joining the cluster");
    let membership = Membership::new(
        redis.clone(),
        me.clone(),
        Duration::from_millis(c.heartbeat_ttl_ms),
    );
    Ok(Coordination {
        locks: Arc::new(RedisLocks::new(redis.clone())),
        limiter: Arc::new(RedisLimiter::new(redis)),
        route: ClusterRoute::new(
            &me.id,
            membership.clone(),
            Some(&c.secret),
            forward_timeout,
            answer_timeout,
        ),
        membership: Some(membership),
    })
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

/// The KEK: configured, read from its file, or, on the embedded default, read from
/// `DATA_DIR/secret.key`, which the first start generates (mode 0600, like `admin.key`). Whether
/// it is the key the database was sealed with is [`sealing::check_key`]'s to say.
pub fn open_secret_key(config: &Config) -> Result<Kek> {
    let read = |path: &Path| -> Result<Kek> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the secret key {}", path.display()))?;
        Kek::parse(&text).with_context(|| format!("the secret key in {}", path.display()))
    };
    match config.secret_key_source() {
        SecretKeySource::Value(text) => Kek::parse(&text).context("auth.secret_key"),
        SecretKeySource::File(path) => read(&path),
        SecretKeySource::DataDir => {
            let path = config.server.data_dir.join("secret.key");
            if !path.exists() {
                let key = hex::encode(imgd_core::id::random_bytes::<{ sealing::KEY_BYTES }>());
                match write_private_file(&path, &key) {
                    Ok(()) => tracing::warn!(
                        path = %path.display(),
                        "generated the secret key that seals this database's secrets; back it up apart from the database"
                    ),
                    // Another process (the CLI, a second start) created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        return Err(e).with_context(|| format!("writing {}", path.display()));
                    }
                }
            }
            read(&path)
        }
    }
}

/// Creates `path` (never overwriting it) readable by the owner only, with `text` and a newline.
fn write_private_file(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(file, "{text}")?;
    file.sync_all()
}

/// Opens every backend, builds the services and binds the listener.
pub async fn start(config: Config, metrics: PrometheusHandle) -> Result<Server> {
    let data_dir = &config.server.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let staging_dir = config.staging_dir();
    let swept = staging::sweep(&staging_dir).context("sweeping interrupted uploads")?;
    if swept > 0 {
        tracing::info!(swept, "removed uploads interrupted by the last shutdown");
    }

    let blobs = open_blob_store(&config)?;
    let repo = open_metadata(&config).await?;
    // The embedded database has no other writer, so the filter's misses are final there; a
    // shared database is polled for other nodes' ids (service/id_filter.rs).
    let ids = Arc::new(IdFilter::new(config.metadata_engine()?.is_embedded()));
    ids.load(repo.as_ref())
        .await
        .context("building the image id filter")?;
    let limits = IngestLimits {
        max_pixels: config.limits.max_pixels,
        max_frames: config.limits.max_frames,
    };
    let imaging = Arc::new(Pipeline::new(config.pipeline_settings()));
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    let coordination = open_coordination(&config, addr)?;
    let ports = Ports {
        blobs,
        repo: repo.clone(),
        locks: coordination.locks.clone(),
        imaging,
    };

    let kek = Arc::new(open_secret_key(&config)?);
    sealing::check_key(repo.as_ref(), &kek)
        .await
        .context("checking the secret key")?;
    let auth = Arc::new(AuthService::open(repo, &kek).await?);
    let configured_key = Some(config.auth.admin_key.as_str()).filter(|k| !k.is_empty());
    let admin_key_path = data_dir.join("admin.key");
    let generated_admin_key = match auth.bootstrap_admin(configured_key).await? {
        Bootstrap::Generated(key) => {
            write_admin_key(&admin_key_path, &key)?;
            Some(key)
        }
        Bootstrap::Configured | Bootstrap::Existing => None,
    };

    // Cross-process locks are renewed while held, so this only bounds how long a crashed
    // holder blocks others.
    let lock_ttl = Duration::from_millis(config.cluster.lock_ttl_ms);
    // One memory budget for renders and upload inspections alike.
    let memory = MemoryBudget::with_page_return(
        config.memory_budget_bytes(),
        imgd_alloc::return_freed_pages,
    );
    let pool = Arc::new(RenderPool::new(
        config.render_workers(),
        config.render.queue,
        Duration::from_secs(config.render.timeout_secs),
        memory,
    ));
    let record_cache_ttl = Duration::from_millis(config.render.record_cache_ttl_ms);
    let mut delivery = DeliveryService::new(
        ports.clone(),
        pool.clone(),
        DeliverySettings {
            presets: config.presets()?,
            transform_limits: config.transform_limits(),
            quality: config.quality_defaults(),
            lock_ttl,
            memory_cache_bytes: config.render.memory_cache_mb * 1024 * 1024,
            memory_item_max_bytes: config.render.memory_item_max_kb * 1024,
            record_cache_ttl,
        },
    );
    if let Some(rate) = config.render_rate() {
        delivery = delivery.with_render_budget(coordination.limiter.clone(), rate);
    }
    if let Some(rate) = config.client_render_rate() {
        delivery = delivery.with_client_render_budget(coordination.limiter.clone(), rate);
    }
    let delivery = Arc::new(delivery.with_id_filter(ids.clone()));
    let tenants = Arc::new(TenantService::new(
        ports.repo.clone(),
        record_cache_ttl,
        kek,
    ));
    let sealed = tenants
        .seal_plaintext_secrets()
        .await
        .context("sealing signing secrets stored in plaintext")?;
    if sealed > 0 {
        tracing::info!(
            tenants = sealed,
            "sealed signing secrets an earlier version stored in plaintext"
        );
    }
    let forget = delivery.clone();
    let catalog = Arc::new(CatalogService::new(
        ports.clone(),
        Box::new(move |id| forget.forget_image(id)),
    ));
    let ingest = Arc::new(
        IngestService::new(
            ports.clone(),
            pool,
            IngestSettings {
                max_upload_bytes: config.limits.max_upload_bytes,
                limits,
                staging_dir,
                collect: config.collect_timings(),
            },
        )
        .with_id_filter(ids.clone()),
    );

    let mut jobs = vec![PlannedJob {
        name: "id_filter",
        schedule: Schedule::Every {
            interval: ID_FILTER_SYNC,
            at_start: true,
        },
        lease: None,
        job: Arc::new(jobs::SyncIds {
            filter: ids.clone(),
            repo: ports.repo.clone(),
        }),
    }];
    if let Some(membership) = coordination.membership {
        jobs.push(PlannedJob {
            name: "heartbeats",
            schedule: Schedule::Continuous,
            lease: None,
            job: Arc::new(jobs::Heartbeats(membership)),
        });
    }
    // Claims make concurrent collectors (and `imgd gc`) safe; the lease only spares the
    // cluster the same listing on every node. Stray files are each node's own: no lease.
    if config.gc.interval_secs > 0 {
        let service = Arc::new(GcService::new(
            ports.repo.clone(),
            ports.blobs.clone(),
            config.collect_timings(),
            vec![config.staging_dir()],
        ));
        let every = Schedule::Every {
            interval: Duration::from_secs(config.gc.interval_secs),
            at_start: false,
        };
        jobs.push(PlannedJob {
            name: "gc",
            schedule: every,
            lease: Some(Lease {
                locks: ports.locks.clone(),
                ttl: GC_LEASE_TTL,
            }),
            job: Arc::new(jobs::Collect {
                service: service.clone(),
                options: config.gc_options(),
                scan_every: (config.gc.scan_interval_secs > 0)
                    .then(|| Duration::from_secs(config.gc.scan_interval_secs)),
                last_scan: std::sync::Mutex::new(None),
            }),
        });
        jobs.push(PlannedJob {
            name: "sweep",
            schedule: every,
            lease: None,
            job: Arc::new(jobs::Sweep {
                service,
                options: config.gc_options(),
            }),
        });
    }

    let state = AppState::new(AppServices {
        ports,
        auth,
        ingest,
        catalog,
        delivery,
        tenants,
        cluster: coordination.route,
        limiter: coordination.limiter,
        api_limits: config.api_limits(),
        client_ip_header: config.client_ip_header(),
        metrics: Some(metrics),
        public_url: config.server.public_url.as_str().into(),
        draining: Arc::new(AtomicBool::new(false)),
    });
    tracing::info!(%addr, data_dir = %data_dir.display(), "imgd listening");
    Ok(Server {
        addr,
        state,
        jobs,
        generated_admin_key,
        admin_key_path,
        listener,
        connection_limits: config.connection_limits(),
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
        // Jobs stop as soon as draining starts: heartbeats first of all, so the node leaves
        // the ring and peers stop forwarding here while in-flight requests finish.
        let mut supervisor = Supervisor::new();
        for planned in self.jobs {
            supervisor.spawn(planned.name, planned.schedule, planned.lease, planned.job);
        }
        let stop_jobs = supervisor.stopper();
        let draining = self.state.draining.clone();
        let signal = async move {
            shutdown.await;
            draining.store(true, Ordering::SeqCst);
            stop_jobs();
        };
        let lane = imgd_http::DeliveryLane::new(self.state.clone());
        let handler =
            imgd_http::serve::Handler::from(imgd_http::router(self.state)).with_lane(lane);
        // Our own accept loop (connection limits and timeouts); it passes each request the peer
        // address (as `ConnectInfo` to the router), for per-client rate limits.
        imgd_http::serve::serve(
            self.listener,
            handler,
            self.connection_limits,
            signal,
            self.grace,
        )
        .await;
        supervisor.join(JOBS_STOP_WAIT).await;
        tracing::info!("imgd stopped");
        Ok(())
    }
}
