//! Delivery: originals straight from the store, variants rendered once and then served from a
//! byte-weighted memory cache or the store.
//!
//! A variant request parses its options, resolves them against the source and `Accept`, and
//! derives the variant key: its plan, memoized per request (`plan_memo`). Lookup order: memory,
//! store, then render under the variant's lock, so concurrent requests for a missing variant
//! render it once and the rest read the result.

use crate::Code;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream;
use moka::sync::Cache;

use super::Ports;
use super::id_filter::{IdFilter, Presence};
use super::plan_memo::PlanMemo;
use super::render_plan::{StillReason, resolve_render};
use super::render_pool::RenderPool;
use crate::format::ImageFormat;
use crate::id::{ImageId, TenantId, VariantKey};
use crate::model::{ImageRecord, Millis, VariantRecord, now_millis};
use crate::port::{BlobKey, BlobRead, ByteRange, Rate, RateDecision, RateLimiter, SourceFacts};
use crate::transform::{
    Accepts, Presets, QualityDefaults, RenderSpec, TransformLimits, TransformSpec, VariantRequest,
};
use crate::{Error, Result};

/// Delivery settings.
#[derive(Clone, Debug)]
pub struct DeliverySettings {
    pub presets: Presets,
    pub transform_limits: TransformLimits,
    pub quality: QualityDefaults,
    pub lock_ttl: Duration,
    /// Total bytes of variants kept in memory.
    pub memory_cache_bytes: u64,
    /// Variants larger than this are streamed from the store instead of cached in memory.
    pub memory_item_max_bytes: u64,
    /// How long an image record is trusted without asking the database again. Deletes on this
    /// node forget the record at once; other nodes of a cluster notice within this time.
    pub record_cache_ttl: Duration,
}

/// Where a response body comes from.
#[derive(Clone, Debug)]
pub enum Payload {
    /// Already in memory.
    Memory(Bytes),
    /// To be streamed from the blob store.
    Stored(BlobKey),
}

/// How a variant was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// Rendered by this request.
    Miss,
    /// Served from the memory cache.
    HitMemory,
    /// Served from the blob store.
    HitStore,
}

impl CacheStatus {
    /// Header value.
    pub fn name(self) -> &'static str {
        match self {
            CacheStatus::Miss => "miss",
            CacheStatus::HitMemory => "hit-memory",
            CacheStatus::HitStore => "hit-store",
        }
    }
}

/// Everything needed to answer a GET or HEAD, before any body byte is read.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub payload: Payload,
    pub len: u64,
    pub format: ImageFormat,
    pub validators: Arc<Validators>,
    /// The format came from `Accept` (`f=auto`).
    pub vary_accept: bool,
    /// `None` for originals.
    pub cache: Option<CacheStatus>,
}

/// A representation's validators, and the header text HTTP writes for them, formatted once per
/// cached variant instead of once per response (3% of a cached GET's CPU time).
#[derive(Debug)]
pub struct Validators {
    /// Strong validator: BLAKE3 of exactly these bytes, unquoted.
    pub etag: Box<str>,
    pub last_modified: Millis,
    /// `ETag`'s value: the etag quoted.
    pub etag_header: Bytes,
    /// `Last-Modified`'s value: an IMF-fixdate.
    pub last_modified_header: Bytes,
}

impl Validators {
    pub fn new(etag: &str, last_modified: Millis) -> Arc<Validators> {
        let modified = std::time::UNIX_EPOCH
            + Duration::from_millis(u64::try_from(last_modified).unwrap_or(0));
        Arc::new(Validators {
            etag: etag.into(),
            last_modified,
            etag_header: Bytes::from(format!("\"{etag}\"")),
            last_modified_header: Bytes::from(httpdate::fmt_http_date(modified)),
        })
    }
}

/// A variant request resolved against its source: what to render and under which key.
#[derive(Clone, Debug)]
pub struct VariantPlan {
    pub image: Arc<ImageRecord>,
    pub spec: RenderSpec,
    pub key: VariantKey,
    /// The format came from `Accept` (`f=auto`).
    pub vary_accept: bool,
    /// The options name at least one preset, whose meaning can change: not cacheable forever.
    pub uses_preset: bool,
    /// The options are preset names and nothing else (what `presets_only` lets through unsigned).
    pub presets_only: bool,
    /// The options as parsed, which a node forwarding the request sends its owner.
    pub request: VariantRequest,
}

impl VariantPlan {
    /// Why an animated source renders as a still, for the `x-imgd-animation` header.
    pub fn still_reason(&self) -> Option<StillReason> {
        StillReason::of(self.image.frames, &self.spec, self.vary_accept)
    }
}

#[derive(Clone)]
struct CachedVariant {
    bytes: Bytes,
    format: ImageFormat,
    validators: Arc<Validators>,
}

/// A cached value and when it was loaded, which bounds how long what is made from it may be
/// trusted.
#[derive(Clone)]
struct Loaded<T> {
    value: Arc<T>,
    at: Instant,
}

impl<T> Loaded<T> {
    fn now(value: Arc<T>) -> Self {
        Loaded {
            value,
            at: Instant::now(),
        }
    }
}

/// Plans memoized per distinct request: some 16 thousand requests at the weight a memo is
/// charged (`plan_memo::ENTRY_OVERHEAD_BYTES` plus its text).
const PLAN_MEMO_BYTES: u64 = 16 << 20;

/// Metric handles registered once, so the hot path is one atomic add, not a registry lookup.
struct DeliveryMetrics {
    memory_hits: metrics::Counter,
    store_hits: metrics::Counter,
    renders: metrics::Counter,
    render_seconds: metrics::Histogram,
}

/// What the pipeline needs to know of a stored source before reading it.
fn source_facts(image: &ImageRecord) -> SourceFacts {
    SourceFacts {
        format: image.format,
        width: image.width,
        height: image.height,
        bytes: image.bytes,
        frames: image.frames,
    }
}

/// Takes one request from a keyed budget.
async fn spend((limiter, rate): &(Arc<dyn RateLimiter>, Rate), key: &str) -> Result<()> {
    match limiter.check(key, *rate).await? {
        RateDecision::Allowed { .. } => Ok(()),
        RateDecision::Limited { retry_after } => Err(Error::RateLimited { retry_after }),
    }
}

fn from_memory(v: CachedVariant, status: CacheStatus, vary_accept: bool) -> Delivery {
    Delivery {
        len: v.bytes.len() as u64,
        payload: Payload::Memory(v.bytes),
        format: v.format,
        validators: v.validators,
        vary_accept,
        cache: Some(status),
    }
}

/// Serves originals and variants.
pub struct DeliveryService {
    ports: Ports,
    pool: Arc<RenderPool>,
    settings: DeliverySettings,
    images: Cache<ImageId, Loaded<ImageRecord>>,
    variants: Cache<VariantKey, CachedVariant>,
    /// Each tenant's presets over the configured ones, for `record_cache_ttl`.
    tenant_presets: Cache<TenantId, Loaded<Presets>>,
    plans: PlanMemo<VariantPlan>,
    /// Renders (variant cache misses) allowed per tenant.
    render_budget: Option<(Arc<dyn RateLimiter>, Rate)>,
    /// Answers unknown ids without a query.
    ids: Option<Arc<IdFilter>>,
    /// Renders allowed per client address, checked before the tenant's budget is spent.
    client_render_budget: Option<(Arc<dyn RateLimiter>, Rate)>,
    metrics: DeliveryMetrics,
}

impl DeliveryService {
    /// A service over the shared ports.
    pub fn new(ports: Ports, pool: Arc<RenderPool>, settings: DeliverySettings) -> Self {
        let images = Cache::builder()
            .max_capacity(100_000)
            .time_to_live(settings.record_cache_ttl)
            .build();
        let variants = Cache::builder()
            .max_capacity(settings.memory_cache_bytes)
            .weigher(|_, v: &CachedVariant| u32::try_from(v.bytes.len()).unwrap_or(u32::MAX))
            .build();
        let metrics = DeliveryMetrics {
            memory_hits: metrics::counter!("imgd_variant_cache_hits_total", "tier" => "memory"),
            store_hits: metrics::counter!("imgd_variant_cache_hits_total", "tier" => "store"),
            renders: metrics::counter!("imgd_variant_renders_total"),
            render_seconds: metrics::histogram!("imgd_render_duration_seconds"),
        };
        let tenant_presets = Cache::builder()
            .max_capacity(10_000)
            .time_to_live(settings.record_cache_ttl)
            .build();
        DeliveryService {
            ports,
            pool,
            settings,
            images,
            variants,
            tenant_presets,
            plans: PlanMemo::new(PLAN_MEMO_BYTES),
            render_budget: None,
            client_render_budget: None,
            ids: None,
            metrics,
        }
    }

    /// Limits renders per tenant to `rate`, shared through `limiter` (across a cluster when it
    /// is Redis-backed). Cached variants are never limited.
    pub fn with_render_budget(mut self, limiter: Arc<dyn RateLimiter>, rate: Rate) -> Self {
        self.render_budget = Some((limiter, rate));
        self
    }

    /// Limits renders per client address to `rate`, so anonymous clients cannot spend a
    /// tenant's render budget (nor the render pool) on their own.
    pub fn with_client_render_budget(mut self, limiter: Arc<dyn RateLimiter>, rate: Rate) -> Self {
        self.client_render_budget = Some((limiter, rate));
        self
    }

    /// Puts `ids` in front of image lookups: an id it knows to be absent is "not found" without
    /// touching the cache or the database.
    pub fn with_id_filter(mut self, ids: Arc<IdFilter>) -> Self {
        self.ids = Some(ids);
        self
    }

    /// True when renders are budgeted per client, so callers know to name the client.
    pub fn charges_clients(&self) -> bool {
        self.client_render_budget.is_some()
    }

    /// Forgets a tenant's cached presets (after a change on this node).
    pub fn forget_presets(&self, tenant: &TenantId) {
        self.tenant_presets.invalidate(tenant);
        self.plans.forget_all();
    }

    /// The presets a tenant's URLs may name: its own, then the configured ones.
    async fn presets_for(&self, tenant: &TenantId) -> Result<Loaded<Presets>> {
        if let Some(presets) = self.tenant_presets.get(tenant) {
            return Ok(presets);
        }
        let mut raw = std::collections::BTreeMap::new();
        for preset in self.ports.repo.presets(tenant).await? {
            if let Some(options) = preset.active_options() {
                raw.insert(preset.name.clone(), options.to_owned());
            }
        }
        let own = Presets::parse_lenient(&raw, &self.settings.transform_limits);
        let presets = Loaded::now(Arc::new(self.settings.presets.overridden_by(own)));
        self.tenant_presets.insert(tenant.clone(), presets.clone());
        Ok(presets)
    }

    /// Parses `/i/` variant options (before the image, and so its tenant's presets, is known).
    fn parse_request(&self, options: &str) -> Result<VariantRequest> {
        VariantRequest::parse(options, &self.settings.transform_limits)
    }

    /// Checks a tenant's options as a preset would be checked (for the presets API).
    pub fn validate_preset_options(&self, options: &str) -> Result<()> {
        TransformSpec::parse(
            options,
            &Presets::default(),
            &self.settings.transform_limits,
        )
        .map(drop)
        .map_err(|e| Error::invalid(Code::InvalidPreset, e.to_string()))
    }

    /// Spends one render from the client's budget, then from the tenant's.
    async fn charge_render(&self, tenant: &TenantId, client: Option<&str>) -> Result<()> {
        if let (Some(budget), Some(client)) = (&self.client_render_budget, client) {
            spend(budget, &format!("render-client:{client}")).await?;
        }
        if let Some(budget) = &self.render_budget {
            spend(budget, &format!("render:{tenant}")).await?;
        }
        Ok(())
    }

    /// Forgets a cached image record (after a delete).
    pub fn forget_image(&self, id: &ImageId) {
        self.images.invalidate(id);
        self.plans.forget_all();
    }

    /// The image record (cached), for callers that check its tenant's policy.
    pub async fn image(&self, id: &ImageId) -> Result<Arc<ImageRecord>> {
        Ok(self.loaded_image(id).await?.value)
    }

    async fn loaded_image(&self, id: &ImageId) -> Result<Loaded<ImageRecord>> {
        if let Some(image) = self.images.get(id) {
            return Ok(image);
        }
        if let Some(ids) = &self.ids
            && ids.check(id) == Presence::Absent
        {
            return Err(Error::NotFound("image"));
        }
        let image = Loaded::now(Arc::new(
            self.ports
                .repo
                .image(id)
                .await?
                .ok_or(Error::NotFound("image"))?,
        ));
        self.images.insert(id.clone(), image.clone());
        Ok(image)
    }

    /// The original bytes of an image.
    pub fn original(&self, image: &ImageRecord) -> Delivery {
        Delivery {
            payload: Payload::Stored(BlobKey::original(&image.hash)),
            len: image.bytes,
            format: image.format,
            validators: Validators::new(image.hash.as_str(), image.created_at),
            vary_accept: false,
            cache: None,
        }
    }

    /// The plan of `GET /i/{id}/{options}` from a client that sent `accept`: its key, without
    /// touching the variant itself, so a cluster node can ask placement who owns it before
    /// doing any work. Memoized per request.
    pub async fn plan(
        &self,
        id: &str,
        options: &str,
        accept: Option<&str>,
    ) -> Result<Arc<VariantPlan>> {
        let accepts = Accepts::of(accept);
        if let Some(plan) = self.plans.get(id, options, accepts) {
            return Ok(plan);
        }
        let epoch = self.plans.epoch();
        let image_id = ImageId::parse(id)?;
        let request = self.parse_request(options)?;
        let (plan, inputs_loaded) = self.plan_variant(&image_id, request, accepts).await?;
        let plan = Arc::new(plan);
        let expires = inputs_loaded + self.settings.record_cache_ttl;
        // A change landed while planning: remembering this plan would only evict a fresher one.
        if epoch == self.plans.epoch() {
            self.plans
                .insert((id, options, accepts), epoch, expires, plan.clone());
        }
        Ok(plan)
    }

    /// Resolves a variant request; also says when the oldest input (record or presets) was
    /// loaded.
    async fn plan_variant(
        &self,
        id: &ImageId,
        request: VariantRequest,
        accepts: Accepts,
    ) -> Result<(VariantPlan, Instant)> {
        let image = self.loaded_image(id).await?;
        let presets = self.presets_for(&image.value.tenant).await?;
        let spec = request.apply(&presets.value, &self.settings.transform_limits)?;
        let resolved = resolve_render(
            self.ports.imaging.as_ref(),
            &source_facts(&image.value),
            &spec,
            accepts,
            &self.settings.quality,
        );
        let plan = VariantPlan {
            key: resolved
                .spec
                .variant_key(&image.value.tenant, &image.value.hash),
            spec: resolved.spec,
            vary_accept: resolved.vary_accept,
            uses_preset: request.uses_preset(),
            presets_only: request.presets_only(),
            request,
            image: image.value,
        };
        Ok((plan, image.at.min(presets.at)))
    }

    /// The planned variant: from memory or the store, else rendered once under its lock.
    /// `client` is the requesting address, charged for a render when one is needed.
    pub async fn deliver(&self, plan: &VariantPlan, client: Option<&str>) -> Result<Delivery> {
        let (image, key, vary) = (&plan.image, &plan.key, plan.vary_accept);
        if let Some(found) = self.lookup(image, key, vary).await? {
            return Ok(found);
        }
        let _guard = self
            .ports
            .locks
            .lock(&format!("variant:{key}"), self.settings.lock_ttl)
            .await?;
        // Whoever held the lock before us (on any node) may have just rendered it.
        if let Some(found) = self.lookup(image, key, vary).await? {
            return Ok(found);
        }
        self.charge_render(&image.tenant, client).await?;
        let rendered = self.render(image, &plan.spec, key).await?;
        Ok(from_memory(rendered, CacheStatus::Miss, vary))
    }

    /// The variant from memory, else from the store; `None` if it was never rendered.
    async fn lookup(
        &self,
        image: &ImageRecord,
        key: &VariantKey,
        vary_accept: bool,
    ) -> Result<Option<Delivery>> {
        if let Some(hit) = self.variants.get(key) {
            self.metrics.memory_hits.increment(1);
            return Ok(Some(from_memory(hit, CacheStatus::HitMemory, vary_accept)));
        }
        self.stored_variant(image, key, vary_accept).await
    }

    /// A variant the store already has, pulled into memory if it is small enough.
    async fn stored_variant(
        &self,
        image: &ImageRecord,
        key: &VariantKey,
        vary_accept: bool,
    ) -> Result<Option<Delivery>> {
        let Some(record) = self.ports.repo.variant(key).await? else {
            return Ok(None);
        };
        let blob_key = BlobKey::variant(&image.hash, key);
        let validators = Validators::new(&record.etag, record.created_at);
        let payload = if record.bytes <= self.settings.memory_item_max_bytes {
            // A record whose bytes are gone (a half-finished purge) is treated as never rendered.
            let Some(bytes) = self.ports.blobs.read_all(&blob_key).await? else {
                return Ok(None);
            };
            let cached = CachedVariant {
                bytes: bytes.clone(),
                format: record.format,
                validators: validators.clone(),
            };
            self.variants.insert(key.clone(), cached);
            Payload::Memory(bytes)
        } else {
            Payload::Stored(blob_key)
        };
        self.metrics.store_hits.increment(1);
        Ok(Some(Delivery {
            payload,
            len: record.bytes,
            format: record.format,
            validators,
            vary_accept,
            cache: Some(CacheStatus::HitStore),
        }))
    }

    /// Renders on the pool, stores the bytes durably, then records the variant.
    async fn render(
        &self,
        image: &ImageRecord,
        spec: &RenderSpec,
        key: &VariantKey,
    ) -> Result<CachedVariant> {
        // Admission first (pixel limits, a worker, the memory): the source is read only then.
        let cost = self.ports.imaging.render_cost(&source_facts(image), spec)?;
        let slot = self.pool.admit(cost).await?;
        let source = self
            .ports
            .blobs
            .read_all(&BlobKey::original(&image.hash))
            .await?
            .ok_or_else(|| {
                // Deleted by a concurrent purge (the record was read just before), or lost:
                // either way the client gets "not found", and a loss is loud in the logs.
                tracing::error!(hash = %image.hash, id = %image.id, "original blob is missing");
                Error::NotFound("image")
            })?;
        let imaging = self.ports.imaging.clone();
        let job_spec = spec.clone();
        let started = Instant::now();
        let rendered = slot
            .run(move |job| imaging.render(&source, &job_spec, job))
            .await?;
        self.metrics
            .render_seconds
            .record(started.elapsed().as_secs_f64());
        self.metrics.renders.increment(1);

        let bytes = Bytes::from(rendered.bytes);
        let etag = blake3::hash(&bytes).to_hex();
        self.ports
            .blobs
            .put_bytes(&BlobKey::variant(&image.hash, key), bytes.clone())
            .await?;
        let record = VariantRecord {
            key: key.clone(),
            source: image.hash.clone(),
            format: rendered.format,
            bytes: bytes.len() as u64,
            etag: etag.to_string(),
            created_at: now_millis(),
        };
        self.ports.repo.insert_variant(&record).await?;
        let cached = CachedVariant {
            bytes,
            format: rendered.format,
            validators: Validators::new(&record.etag, record.created_at),
        };
        if record.bytes <= self.settings.memory_item_max_bytes {
            self.variants.insert(key.clone(), cached.clone());
        }
        Ok(cached)
    }

    /// Opens the body of a delivery, whole or one range of it.
    pub async fn open(&self, delivery: &Delivery, range: Option<ByteRange>) -> Result<BlobRead> {
        match &delivery.payload {
            Payload::Memory(bytes) => {
                let slice = match range {
                    Some(r) => bytes.slice(r.start as usize..=r.end as usize),
                    None => bytes.clone(),
                };
                let len = slice.len() as u64;
                Ok(BlobRead {
                    len,
                    body: Box::pin(stream::once(async move { Ok(slice) })),
                })
            }
            Payload::Stored(key) => self
                .ports
                .blobs
                .get(key, range)
                .await?
                .ok_or(Error::NotFound("image")),
        }
    }
}
