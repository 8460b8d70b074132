//! Model files: fetched into the shared, content-addressed cache, then placed under
//! `ComfyUI/models/` by hard link (a copy across filesystems), atomically.
//!
//! A download goes to `<cache>/partial/<key>.part` (the key is the URL's SHA-256), is hashed as
//! it streams, and is resumed with `Range` and `If-Range` after an interruption, a kill -9
//! included: the bytes already there are hashed again first. Only a file whose SHA-256 is the
//! expected one (or, on a first download, any complete file, whose hash the lock then records)
//! enters the cache, as `<cache>/sha256/<hash>`, read-only. Nothing half-written is ever at a
//! path ComfyUI lists: the file appears there by rename.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use comfyprov_core::lock::LockedModel;
use comfyprov_core::manifest::{ModelSpec, TokenSource};
use comfyprov_core::plan::bytes;
use comfyprov_core::report::{Outcome, Progress, StepId};
use sha2::Digest;

use super::{Env, Exec};
use crate::error::StepError;
use crate::observe::models::{cache_entry, cached_entry};

/// How long a download may receive nothing before it is retried.
fn idle_timeout() -> Duration {
    std::env::var("COMFYPROV_DOWNLOAD_IDLE_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(30), Duration::from_secs)
}

/// SHA-256 on its own thread, fed whole blocks in the order they were written.
struct Hashing {
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    worker: std::thread::JoinHandle<sha2::Sha256>,
}

impl Hashing {
    fn start(state: sha2::Sha256) -> Hashing {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
        let (back, spare) = std::sync::mpsc::channel::<Vec<u8>>();
        let worker = std::thread::spawn(move || {
            let mut h = state;
            for mut b in rx {
                h.update(&b);
                b.clear();
                let _ = back.send(b);
            }
            h
        });
        Hashing { tx, spare, worker }
    }

    /// Write `block` to the file, then hand it to the hashing thread; `block` is left empty
    /// (a buffer the thread is done with, or a new one).
    fn flush(
        &self,
        block: &mut Vec<u8>,
        file: &mut std::fs::File,
        part: &Path,
        have: &mut u64,
    ) -> Result<(), Attempt> {
        if block.is_empty() {
            return Ok(());
        }
        write_block(file, part, have, block).map_err(Attempt::Fatal)?;
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BLOCK));
        let full = std::mem::replace(block, next);
        self.tx
            .send(full)
            .map_err(|_| Attempt::Fatal(StepError::new("the hashing thread stopped")))
    }

    /// The hash of everything fed.
    fn finish(self) -> sha2::Sha256 {
        drop(self.tx);
        self.worker.join().unwrap_or_default()
    }
}

/// Bytes received before they are written and hashed.
const BLOCK: usize = 1 << 20;

/// Attempts per download before it fails (transient errors only).
const ATTEMPTS: u32 = 6;

/// One writer of `comfy.lock` at a time among the parallel downloads.
static LOCK_FILE: Mutex<()> = Mutex::new(());

/// What a [`crate::plan::Action::PlaceModel`] step carries.
pub struct Place<'a> {
    pub model: &'a ModelSpec,
    pub target: &'a str,
    pub sha256: Option<&'a str>,
    pub size: Option<u64>,
    pub cache: &'a str,
    pub lock_file: &'a str,
    /// The plan saw the cache's entry intact: link it; otherwise download.
    pub from_cache: bool,
}

/// Put the model in place: from the cache, or downloaded into it first.
pub fn place(env: &Env, id: StepId, p: &Place) -> Exec {
    let target = PathBuf::from(p.target);
    let rel = Path::new(&p.model.path);
    let folder = Path::new("models").join(rel.parent().unwrap_or(Path::new("")));
    let name = rel
        .file_name()
        .ok_or_else(|| StepError::new(format!("models/{} names no file", p.model.path)))?;
    // `models/` itself is checked too: ComfyUI/ is the container's to write, and a link planted
    // at `models` must not carry the file elsewhere.
    let dir = crate::fsutil::real_dir(&env.comfyui(), &folder)
        .map_err(|e| StepError::io("cannot use", &env.comfyui().join(&folder), e))?;
    let cache = PathBuf::from(p.cache);

    let hit = p
        .sha256
        .filter(|_| p.from_cache)
        .and_then(|h| cached_entry(&cache, h, p.size).map(|m| (h, m.len())));
    let (sha256, size, fetched) = match hit {
        Some((h, len)) => (h.to_owned(), len, 0),
        None => {
            let got = download(env, id, p, &cache)?;
            (got.sha256, got.size, got.fetched)
        }
    };
    let entry = cache_entry(&cache, &sha256);

    // Into the model folder under a name ComfyUI skips, then renamed over the path.
    let tmp = dir.join(crate::fsutil::temp_name(&name.to_string_lossy()));
    let _ = std::fs::remove_file(&tmp);
    let linked = match std::fs::hard_link(&entry, &tmp) {
        Ok(()) => true,
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            copy_file(&entry, &tmp).map_err(|e| StepError::io("cannot copy into", &tmp, e))?;
            false
        }
        Err(e) => return Err(StepError::io("cannot link into", &tmp, e)),
    };
    if let Err(e) = std::fs::rename(&tmp, &target) {
        let _ = std::fs::remove_file(&tmp);
        return Err(StepError::io("cannot place", &target, e));
    }
    crate::fsutil::sync_dir(&dir);
    crate::observe::models::remember(&env.workspace, &p.model.path, &target, &sha256);
    if p.sha256.is_none() {
        record(
            Path::new(p.lock_file),
            LockedModel {
                path: p.model.path.clone(),
                url: p.model.url.clone(),
                sha256: sha256.clone(),
                size,
            },
        )?;
    }
    let how = match (fetched, linked) {
        (0, true) => "from the cache, linked".to_owned(),
        (0, false) => "from the cache, copied (another filesystem)".to_owned(),
        (n, _) => format!("{} downloaded", bytes(n)),
    };
    let recorded = if p.sha256.is_none() {
        format!("; SHA-256 {}… recorded in the lock", &sha256[..12])
    } else {
        String::new()
    };
    Ok(Outcome::Done {
        detail: Some(format!("{how}{recorded}")),
    })
}

/// Record a model found in place in the lock.
pub fn record_found(path: &str, url: &str, sha256: &str, size: u64, lock_file: &str) -> Exec {
    record(
        Path::new(lock_file),
        LockedModel {
            path: path.to_owned(),
            url: url.to_owned(),
            sha256: sha256.to_owned(),
            size,
        },
    )?;
    Ok(Outcome::Done { detail: None })
}

/// Add or replace a model entry in `comfy.lock`, keeping the Python resolution as it is.
fn record(lock_file: &Path, entry: LockedModel) -> Result<(), StepError> {
    let _one = LOCK_FILE.lock();
    let text = match crate::fsutil::read_regular_nofollow(lock_file) {
        Ok(b) => String::from_utf8(b)
            .map_err(|_| StepError::new(format!("{} is not UTF-8", lock_file.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(StepError::io("cannot read", lock_file, e)),
    };
    let mut models = comfyprov_core::lock::parse_models(&text)
        .map_err(|e| StepError::new(format!("{}: {e}", lock_file.display())))?;
    models.retain(|m| m.path != entry.path);
    models.push(entry);
    let python = comfyprov_core::lock::split_models(&text).0;
    let out = comfyprov_core::lock::join_models(python, &models);
    crate::fsutil::write_atomic(lock_file, out.as_bytes(), 0o644)
        .map_err(|e| StepError::io("cannot write", lock_file, e))
}

fn copy_file(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut src = std::fs::File::open(from)?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)?;
    std::io::copy(&mut src, &mut dst)?;
    dst.sync_all()
}

struct Fetched {
    sha256: String,
    size: u64,
    /// Bytes that came over the network (or from the file URL) in this run.
    fetched: u64,
}

/// Where a URL's partial download lives.
fn partial(cache: &Path, url: &str) -> (PathBuf, PathBuf) {
    let key = &comfyprov_core::digest::sha256_hex(url.as_bytes())[..32];
    let dir = cache.join("partial");
    (
        dir.join(format!("{key}.part")),
        dir.join(format!("{key}.json")),
    )
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct PartMeta {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
}

/// Download into the cache; the file's hash, size and the bytes fetched now.
fn download(env: &Env, id: StepId, p: &Place, cache: &Path) -> Result<Fetched, StepError> {
    let url = p.model.url.as_str();
    let shown = format!("models/{}", p.model.path);
    for d in ["partial", "sha256"] {
        let dir = cache.join(d);
        std::fs::create_dir_all(&dir).map_err(|e| StepError::io("cannot create", &dir, e))?;
    }
    let (part, meta_path) = partial(cache, url);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&part)
        .map_err(|e| StepError::io("cannot open", &part, e))?;
    // One process per partial file: another apply downloading the same URL is waited for, up
    // to 30 minutes (then this step fails; nothing waits forever).
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    let deadline = Instant::now() + Duration::from_secs(30 * 60);
    let mut said = false;
    // SAFETY: flock on an open descriptor.
    while unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        if !said {
            env.reporter.on_message(&format!(
                "         {shown}: another comfyprov is downloading {url}; waiting for it"
            ));
            said = true;
        }
        if Instant::now() > deadline {
            return Err(StepError::new(format!(
                "{shown}: another comfyprov has been downloading {url} for 30 minutes"
            ))
            .help("let it finish, or stop it, then run apply again"));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let meta: PartMeta = crate::fsutil::read_regular_nofollow(&meta_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|m: &PartMeta| m.url == url)
        .unwrap_or_default();

    let token = token(p.model)?;
    let mut hasher = sha2::Sha256::new();
    let mut have = file.metadata().map(|m| m.len()).unwrap_or(0);
    if have > 0 && (meta.etag.is_some() || meta.last_modified.is_some() || url.starts_with("file:"))
    {
        // The bytes kept from before: hashed again, then the rest is asked for.
        let mut f =
            std::fs::File::open(&part).map_err(|e| StepError::io("cannot read", &part, e))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f
                .read(&mut buf)
                .map_err(|e| StepError::io("cannot read", &part, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    } else {
        have = 0;
        file.set_len(0)
            .map_err(|e| StepError::io("cannot truncate", &part, e))?;
    }
    let resumed_from = have;
    let mut progress = Meter::new(env, id, have);

    let result = if let Some(path) = url.strip_prefix("file://") {
        fetch_file(
            Path::new(path),
            &mut file,
            &part,
            &mut hasher,
            &mut have,
            &mut progress,
        )
    } else {
        fetch_http(
            url,
            token.as_deref(),
            &meta,
            &meta_path,
            &mut file,
            &part,
            &mut hasher,
            &mut have,
            &mut progress,
            p,
            cache,
        )
    };
    if let Err(e) = result {
        let keep = format!(
            "{} of {shown} are kept in the cache; run apply again to resume",
            bytes(have)
        );
        let help = match e.help_text() {
            Some(h) => format!("{h}; {keep}"),
            None => keep,
        };
        return Err(e.help(help));
    }
    file.sync_all()
        .map_err(|e| StepError::io("cannot write", &part, e))?;
    let sha256 = comfyprov_core::digest::hex(&hasher.finalize());
    let discard = || {
        let _ = std::fs::remove_file(&part);
        let _ = std::fs::remove_file(&meta_path);
    };
    if let Some(expected) = p.sha256
        && expected != sha256
    {
        discard();
        return Err(StepError::new(format!(
            "{shown}: the download from {url} has SHA-256 {sha256}, the expected one is {expected}; nothing was placed and the bytes were discarded"
        ))
        .help("check the URL and the hash in comfy.toml (or comfy.lock); a server that sent an error page instead of the file also looks like this"));
    }
    if let Some(size) = p.size
        && size != have
    {
        discard();
        return Err(StepError::new(format!(
            "{shown}: the download from {url} has {have} bytes, the expected size is {size}; nothing was placed"
        )));
    }
    let entry = cache_entry(cache, &sha256);
    let _ = std::fs::set_permissions(&part, std::os::unix::fs::PermissionsExt::from_mode(0o444));
    // An entry already there is kept: it was verified when it went in, and another download
    // of the same bytes may be linking it right now (replacing it would make that link fail).
    // Unless it is the damaged file plan found at the model's path (the same inode): then this
    // verified copy replaces it (other workspaces keep their links until they replace them).
    match crate::fsutil::rename_noreplace(&part, &entry) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            use std::os::unix::fs::MetadataExt;
            let inode = |p: &Path| {
                std::fs::symlink_metadata(p)
                    .map(|m| (m.dev(), m.ino()))
                    .ok()
            };
            let damaged = inode(&entry).is_some() && inode(&entry) == inode(Path::new(p.target));
            if damaged {
                std::fs::rename(&part, &entry)
                    .map_err(|e| StepError::io("cannot move into the cache", &entry, e))?;
            } else {
                let _ = std::fs::remove_file(&part);
            }
        }
        Err(e) => return Err(StepError::io("cannot move into the cache", &entry, e)),
    }
    let _ = std::fs::remove_file(&meta_path);
    crate::fsutil::sync_dir(&cache.join("sha256"));
    Ok(Fetched {
        sha256,
        size: have,
        fetched: have - resumed_from,
    })
}

/// The bearer token, read now; never shown.
fn token(model: &ModelSpec) -> Result<Option<String>, StepError> {
    match &model.token {
        None => Ok(None),
        Some(TokenSource::Env(v)) => match std::env::var(v) {
            Ok(t) if !t.trim().is_empty() => Ok(Some(t.trim().to_owned())),
            _ => Err(StepError::new(format!(
                "models/{} needs the token in ${v}, which is not set",
                model.path
            ))
            .help(format!(
                "export {v}=… (e.g. a Hugging Face read token) and run apply again"
            ))),
        },
        Some(TokenSource::File(f)) => {
            let text = crate::fsutil::read_regular(&f.path)
                .map_err(|e| StepError::io("cannot read the token file", &f.path, e))?;
            let line = String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned();
            if line.is_empty() {
                return Err(StepError::new(format!(
                    "the token file {} is empty",
                    f.shown
                )));
            }
            Ok(Some(line))
        }
    }
}

/// Progress events, at most every 200 ms.
struct Meter<'a> {
    env: &'a Env<'a>,
    id: StepId,
    total: Option<u64>,
    last: Instant,
    last_bytes: u64,
    rate: u64,
}

impl<'a> Meter<'a> {
    fn new(env: &'a Env<'a>, id: StepId, have: u64) -> Meter<'a> {
        Meter {
            env,
            id,
            total: None,
            last: Instant::now(),
            last_bytes: have,
            rate: 0,
        }
    }

    fn tick(&mut self, done: u64, force: bool) {
        let dt = self.last.elapsed();
        if !force && dt < Duration::from_millis(200) {
            return;
        }
        if dt.as_secs_f64() > 0.0 {
            self.rate = ((done.saturating_sub(self.last_bytes)) as f64 / dt.as_secs_f64()) as u64;
        }
        self.last = Instant::now();
        self.last_bytes = done;
        self.env.reporter.on_progress(
            self.id,
            Progress::Download {
                done,
                total: self.total,
                rate: self.rate,
            },
        );
    }
}

fn write_only(file: &mut std::fs::File, part: &Path, chunk: &[u8]) -> Result<(), StepError> {
    file.write_all(chunk).map_err(|e| {
        let full = e.raw_os_error() == Some(libc::ENOSPC);
        let err = StepError::io("cannot write", part, e);
        if full {
            err.help("the disk is full: free space (or point COMFYPROV_MODEL_CACHE at a bigger disk) and run apply again; the bytes so far are kept to resume")
        } else {
            err
        }
    })
}

fn write_chunk(
    file: &mut std::fs::File,
    part: &Path,
    hasher: &mut sha2::Sha256,
    have: &mut u64,
    chunk: &[u8],
) -> Result<(), StepError> {
    write_block(file, part, have, chunk)?;
    hasher.update(chunk);
    Ok(())
}

/// Append `chunk` and count it; every finished 8 MiB is handed to the disk at once, so the
/// fsync before the file enters the cache has little left to do (the writeback overlaps the
/// download instead of following it).
fn write_block(
    file: &mut std::fs::File,
    part: &Path,
    have: &mut u64,
    chunk: &[u8],
) -> Result<(), StepError> {
    write_only(file, part, chunk)?;
    let before = *have;
    *have += chunk.len() as u64;
    const WINDOW: u64 = 8 << 20;
    if before / WINDOW != *have / WINDOW {
        let end = *have / WINDOW * WINDOW;
        // SAFETY: sync_file_range on an open descriptor; failure only costs speed.
        unsafe {
            libc::sync_file_range(
                std::os::fd::AsRawFd::as_raw_fd(file),
                (end - WINDOW) as libc::off64_t,
                WINDOW as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    Ok(())
}

fn fetch_file(
    src: &Path,
    file: &mut std::fs::File,
    part: &Path,
    hasher: &mut sha2::Sha256,
    have: &mut u64,
    meter: &mut Meter,
) -> Result<(), StepError> {
    let mut from = std::fs::File::open(src).map_err(|e| StepError::io("cannot read", src, e))?;
    meter.total = from.metadata().ok().map(|m| m.len());
    from.seek(std::io::SeekFrom::Start(*have))
        .map_err(|e| StepError::io("cannot read", src, e))?;
    file.seek(std::io::SeekFrom::End(0))
        .map_err(|e| StepError::io("cannot write", part, e))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = from
            .read(&mut buf)
            .map_err(|e| StepError::io("cannot read", src, e))?;
        if n == 0 {
            break;
        }
        write_chunk(file, part, hasher, have, &buf[..n])?;
        meter.tick(*have, false);
    }
    meter.tick(*have, true);
    Ok(())
}

/// Why one attempt failed, and whether another may succeed.
enum Attempt {
    Retry(String),
    Fatal(StepError),
}

#[allow(clippy::too_many_arguments)]
fn fetch_http(
    url: &str,
    token: Option<&str>,
    meta: &PartMeta,
    meta_path: &Path,
    file: &mut std::fs::File,
    part: &Path,
    hasher: &mut sha2::Sha256,
    have: &mut u64,
    meter: &mut Meter,
    p: &Place,
    cache: &Path,
) -> Result<(), StepError> {
    let rt = crate::observe::container::runtime()
        .map_err(|e| StepError::new(format!("cannot start a runtime: {e}")))?;
    let client = crate::http::download_client();
    let mut validator = meta.etag.clone().or_else(|| meta.last_modified.clone());
    let mut last_err = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            let wait = Duration::from_millis(500 * (1 << (attempt - 1).min(4)));
            tracing::info!(url, attempt, error = %last_err, "retrying");
            std::thread::sleep(wait);
        }
        let outcome = rt.block_on(one_attempt(
            &client,
            url,
            token,
            validator.as_deref(),
            meta_path,
            file,
            part,
            hasher,
            have,
            meter,
            p,
            cache,
        ));
        match outcome {
            Ok(()) => return Ok(()),
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Retry(why)) => {
                last_err = why;
                // What the server said about the file, for the next Range request.
                validator = crate::fsutil::read_regular_nofollow(meta_path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<PartMeta>(&b).ok())
                    .and_then(|m| m.etag.or(m.last_modified));
            }
        }
    }
    Err(StepError::new(format!(
        "models/{}: the download from {url} failed {ATTEMPTS} times; the last time: {last_err}",
        p.model.path
    )))
}

#[allow(clippy::too_many_arguments)]
async fn one_attempt(
    client: &crate::http::DownloadClient,
    url: &str,
    token: Option<&str>,
    validator: Option<&str>,
    meta_path: &Path,
    file: &mut std::fs::File,
    part: &Path,
    hasher: &mut sha2::Sha256,
    have: &mut u64,
    meter: &mut Meter<'_>,
    p: &Place<'_>,
    cache: &Path,
) -> Result<(), Attempt> {
    use http_body_util::BodyExt;
    let shown = format!("models/{}", p.model.path);
    let fatal = |msg: String| Attempt::Fatal(StepError::new(msg));
    let range = (*have > 0 && validator.is_some()).then_some(*have);
    let resp = crate::http::get_following(client, url, token, range, validator)
        .await
        .map_err(|e| match e {
            crate::http::GetError::Transient(why) => Attempt::Retry(why),
            crate::http::GetError::Fatal(why) => fatal(format!("{shown}: {why}")),
        })?;
    let status = resp.status().as_u16();
    match status {
        200 => {
            // The whole file (a server that ignores Range, or a changed file): from the start.
            if *have > 0 {
                tracing::info!(url, "the server sent the whole file: starting over");
            }
            *have = 0;
            *hasher = sha2::Sha256::new();
            file.set_len(0)
                .map_err(|e| Attempt::Fatal(StepError::io("cannot truncate", part, e)))?;
        }
        206 if range.is_some() => {
            let start = resp
                .headers()
                .get(hyper::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.parse::<u64>().ok());
            if start != Some(*have) {
                return Err(Attempt::Retry(format!(
                    "the server resumed at {start:?}, not at byte {have}"
                )));
            }
        }
        401 | 403 if token.is_none() => {
            return Err(fatal(format!(
                "{shown}: {url} answered {status}: it needs a token (a gated download?): set `token_env` (e.g. \"HF_TOKEN\") or `token_file` on this model"
            )));
        }
        401 | 403 => {
            return Err(fatal(format!(
                "{shown}: {url} answered {status}: the token was refused"
            ))
            .map_help("check the token's access to this file (on Hugging Face: accept the model's terms with that account)"));
        }
        404 | 410 => {
            return Err(fatal(format!(
                "{shown}: {url} answered {status}: no such file"
            )));
        }
        416 => {
            // The range is past the end: the kept bytes are not a prefix of this file.
            *have = 0;
            *hasher = sha2::Sha256::new();
            let _ = file.set_len(0);
            let _ = std::fs::remove_file(meta_path);
            return Err(Attempt::Retry(
                "416: the kept bytes do not fit the file".to_owned(),
            ));
        }
        408 | 425 | 429 | 500..=599 => {
            return Err(Attempt::Retry(format!("{url} answered {status}")));
        }
        _ => return Err(fatal(format!("{shown}: {url} answered {status}"))),
    }
    let header = |h: hyper::header::HeaderName| {
        resp.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let len = header(hyper::header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    meter.total = len.map(|l| l + *have);
    // Does the rest fit where it lands?
    if let (Some(l), (Some(free), _)) = (len, crate::observe::models::free_space(cache))
        && l > free
    {
        return Err(fatal(format!(
            "{shown}: {} to download, {} free in {}",
            bytes(l),
            bytes(free),
            cache.display()
        ))
        .map_help("free some space, or point COMFYPROV_MODEL_CACHE at a bigger disk; nothing was downloaded"));
    }
    let meta = PartMeta {
        url: url.to_owned(),
        etag: header(hyper::header::ETAG).filter(|e| !e.starts_with("W/")),
        last_modified: header(hyper::header::LAST_MODIFIED),
    };
    if let Ok(json) = serde_json::to_vec(&meta) {
        let _ = crate::fsutil::write_atomic(meta_path, &json, 0o644);
    }
    file.seek(std::io::SeekFrom::End(0))
        .map_err(|e| Attempt::Fatal(StepError::io("cannot write", part, e)))?;
    let mut body = resp.into_body();
    let idle = idle_timeout();
    // Frames are small (16 KiB): written in 1 MiB blocks, one syscall each, and hashed on a
    // second thread while the next block arrives. What is held here is written out on every
    // way out, so the file always has every byte received, and the hash every byte written.
    let hashing = Hashing::start(std::mem::take(hasher));
    let received = async {
        let mut block: Vec<u8> = Vec::with_capacity(BLOCK);
        loop {
            let frame = match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => {
                    hashing.flush(&mut block, file, part, have)?;
                    return Err(Attempt::Retry(format!(
                        "nothing received for {} s",
                        idle.as_secs()
                    )));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    hashing.flush(&mut block, file, part, have)?;
                    return Err(Attempt::Retry(format!(
                        "the connection broke after {} ({})",
                        bytes(*have),
                        crate::observe::container::innermost_cause(&e)
                    )));
                }
                Ok(Some(Ok(f))) => f,
            };
            if let Ok(data) = frame.into_data() {
                block.extend_from_slice(&data);
                if block.len() >= BLOCK {
                    hashing.flush(&mut block, file, part, have)?;
                    meter.tick(*have, false);
                }
            }
        }
        hashing.flush(&mut block, file, part, have)
    }
    .await;
    *hasher = hashing.finish();
    received?;
    meter.tick(*have, true);
    if let Some(l) = meter.total
        && *have != l
    {
        return Err(Attempt::Retry(format!(
            "the server sent {have} of {l} bytes"
        )));
    }
    Ok(())
}

trait MapHelp {
    fn map_help(self, help: &str) -> Self;
}

impl MapHelp for Attempt {
    fn map_help(self, help: &str) -> Attempt {
        match self {
            Attempt::Fatal(e) => Attempt::Fatal(e.help(help)),
            other => other,
        }
    }
}
