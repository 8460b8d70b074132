//! Bounded fuzzing, run by `cargo test` (so by CI) for a few seconds each; set `FUZZ_SECONDS` to
//! run longer (`FUZZ_SECONDS=600 cargo test --test it fuzz -- --nocapture` prints the counts).
//!
//! - Manifests: random mutations of every fixture (byte edits, splices, very long lines, odd
//!   Unicode). The loader answers with a manifest or problems, never a panic, and rendering the
//!   problems never panics either (miette once did on lines over 65,535 bytes).
//! - Planning: random observed states (checkouts in every condition, PASSWORD and secret states,
//!   containers in every state and spec, requirements, the port) against the fixture manifests.
//!   The planner never panics, is deterministic, plans at most one lifecycle step and the restart
//!   last, renders, and every step survives the `--json` round trip unchanged (what the plan
//!   shows is what apply gets).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use comfyprov::manifest::{self, Desired, render_plain};
use comfyprov::observed::{
    Checkout, ContainerInfo, ContainerState, DirState, Dirty, FileState, HashState, NodeDir,
    Observed, PasswordFile, PasswordState, PortState, SecretState,
};
use comfyprov::plan::{self, Action, Options, Phase, Step, display};

/// A small deterministic generator (PCG-style LCG), so a failure is reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() as usize) % n.max(1)
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn budget() -> Duration {
    let secs = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

fn fixture_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("comfy.toml")];
    for kind in ["valid", "invalid"] {
        let dir = root.join("tests/fixtures/manifests").join(kind);
        for e in std::fs::read_dir(dir).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    for e in std::fs::read_dir(root.join("examples")).unwrap() {
        files.push(e.unwrap().path());
    }
    files.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    files.sort();
    files
}

const SNIPPETS: &[&str] = &[
    "\"",
    "'",
    "[",
    "]]",
    "=",
    "\n[[nodes]]\nname = \"A\"\ngit = \"https://h/a\"\nrev = \"v1\"\n",
    "\u{202E}",
    "é",
    "\0",
    "${X}",
    "$2b$12$",
    "\r\n",
    "#",
    "[container]\nport = 0\n",
    "mounts = [\"a:b:c:d\"]",
    "https://u:p@h/x",
    "\n[[models]]\nurl = \"https://h/m.safetensors\"\npath = \"vae/m.safetensors\"\nsize = 9\n",
    "path = \"../x\"",
];

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(6) {
            0 if !bytes.is_empty() => {
                let end = (at + rng.below(16)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            1 => {
                let s = rng.pick(SNIPPETS).as_bytes();
                bytes.splice(at..at, s.iter().copied());
            }
            2 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] = (rng.next() & 0xff) as u8;
            }
            3 if rng.chance(8) => {
                // A very long line: the renderer's widths overflowed on these.
                let long = vec![b'x'; 60_000 + rng.below(20_000)];
                bytes.splice(at..at, long);
            }
            4 => bytes.truncate(at),
            _ => {
                let from = rng.below(bytes.len() + 1);
                let end = (from + rng.below(64)).min(bytes.len());
                let piece = bytes[from..end].to_vec();
                bytes.splice(at..at, piece);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn fuzz_manifest_parsing_never_panics() {
    let texts: Vec<String> = fixture_files()
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let mut rng = Rng(0xc0ffee);
    let start = Instant::now();
    let mut runs = 0u64;
    let base = Path::new("/nonexistent");
    while start.elapsed() < budget() {
        let original = rng.pick(&texts).clone();
        let text = mutate(&mut rng, &original);
        match manifest::parse("comfy.toml", text.clone(), base) {
            Ok(_) => {}
            Err(problems) => {
                for p in &problems {
                    assert!(p.span.end <= text.len(), "span out of bounds");
                }
                let _ = render_plain(&problems, 80);
            }
        }
        runs += 1;
    }
    eprintln!("manifest fuzz: {runs} inputs in {:?}", start.elapsed());
    assert!(runs > 100, "the harness ran ({runs} inputs)");
}

fn rev_commit(rng: &mut Rng) -> String {
    let hex = "0123456789abcdef".as_bytes();
    (0..40).map(|_| *rng.pick(hex) as char).collect()
}

fn dir_state(rng: &mut Rng, url: &str) -> DirState {
    match rng.below(5) {
        0 => DirState::Missing,
        1 => DirState::NotGit,
        2 => DirState::Unreadable {
            error: "permission denied".to_owned(),
        },
        _ => {
            let tracked = rng.below(3);
            DirState::Git(Checkout {
                head: (!rng.chance(8)).then(|| rev_commit(rng)),
                origin: match rng.below(4) {
                    0 => None,
                    1 => Some("https://elsewhere/x".to_owned()),
                    _ => Some(url.to_owned()),
                },
                dirty: rng.chance(3).then(|| Dirty {
                    count: tracked + rng.below(3) + 1,
                    tracked,
                    sample: vec!["a.py".to_owned()],
                }),
                resolved: rng.chance(2).then(|| rev_commit(rng)),
                interrupted: rng.chance(6),
            })
        }
    }
}

fn password_file(rng: &mut Rng) -> PasswordFile {
    match rng.below(4) {
        0 => PasswordFile::Missing,
        1 => PasswordFile::Unreadable {
            error: "login/PASSWORD is a symbolic link".to_owned(),
        },
        _ => PasswordFile::Present {
            hash: match rng.below(4) {
                0 => HashState::Verified,
                1 => HashState::Mismatch,
                2 => HashState::Malformed,
                _ => HashState::Unchecked {
                    reason: "no secret".to_owned(),
                },
            },
            username: rng.chance(3).then(|| "admin".to_owned()),
            mode: *rng.pick(&[0o600, 0o644, 0o640]),
        },
    }
}

fn observed(rng: &mut Rng, d: &Desired) -> Observed {
    let mut custom_nodes: Vec<NodeDir> = Vec::new();
    for n in &d.nodes {
        if !rng.chance(4) {
            custom_nodes.push(NodeDir {
                dir: n.name.clone(),
                state: Some(dir_state(rng, &n.source.url)),
            });
        }
    }
    for extra in ["Stray", "old.disabled", "single.py", "ComfyUI-Login"] {
        if rng.chance(3) && !custom_nodes.iter().any(|n| n.dir == extra) {
            custom_nodes.push(NodeDir {
                dir: extra.to_owned(),
                state: None,
            });
        }
    }
    custom_nodes.sort_by(|a, b| a.dir.cmp(&b.dir));
    let container = match d.container {
        None => ContainerState::NotManaged,
        Some(_) => match rng.below(4) {
            0 => ContainerState::NotObserved {
                reason: "the Docker daemon at unix:///x cannot be reached".to_owned(),
            },
            1 => ContainerState::Missing,
            _ => {
                let mut spec = comfyprov::render::Container::new(d).unwrap().spec;
                if rng.chance(3) {
                    spec.port = spec.port.wrapping_add(1);
                }
                if rng.chance(4) {
                    spec.command.push("--x".to_owned());
                }
                ContainerState::Present(Box::new(ContainerInfo {
                    id: "0123456789ab".to_owned(),
                    status: rng
                        .pick(&["running", "exited", "restarting", "created", "dead"])
                        .to_string(),
                    health: None,
                    image: spec.image.clone(),
                    image_id: "sha256:1".to_owned(),
                    started_at: Some("2026-01-01T00:00:00Z".to_owned()),
                    started_ns: Some(100),
                    finished_ns: None,
                    project_label: (!rng.chance(5)).then(|| d.project.clone()),
                    spec: rng.chance(2).then(|| spec.label()),
                    actual: (!rng.chance(5)).then_some(spec),
                }))
            }
        },
    };
    let python = d.python.as_ref().map(|spec| python_observed(rng, d, spec));
    let compose_text = comfyprov::render::compose::render(d).unwrap_or_default();
    Observed {
        workspace_exists: !rng.chance(6),
        comfyui: match &d.comfyui {
            Some(src) => dir_state(rng, &src.url),
            None => rng.pick(&[DirState::Missing, DirState::NotGit]).clone(),
        },
        custom_nodes,
        odd_names: if rng.chance(8) {
            vec!["caf\u{fffd}".to_owned()]
        } else {
            Vec::new()
        },
        secret: match rng.below(5) {
            0 => SecretState::Missing,
            1 => SecretState::Unusable {
                error: "it is empty".to_owned(),
            },
            2 => SecretState::NotUsed,
            _ => SecretState::Present {
                mode: Some(*rng.pick(&[0o600, 0o644])),
            },
        },
        password: PasswordState {
            file: password_file(rng),
            legacy: if rng.chance(3) {
                password_file(rng)
            } else {
                PasswordFile::Missing
            },
            digest: String::new(),
            legacy_digest: String::new(),
        },
        compose: d.container.as_ref().map(|_| match rng.below(5) {
            0 => FileState::Missing,
            1 => FileState::Linked {
                why: "it is a symbolic link".to_owned(),
            },
            2 => FileState::Unreadable {
                error: "denied".to_owned(),
            },
            3 => FileState::Present {
                sha256: "0".repeat(64),
                text: "services: {}\n".to_owned(),
            },
            _ => FileState::Present {
                sha256: comfyprov::digest::sha256_hex(compose_text.as_bytes()),
                text: compose_text.clone(),
            },
        }),
        container,
        inputs_changed_ns: rng.chance(3).then(|| rng.below(300) as i128),
        python,
        models: (!d.models.is_empty()).then(|| models_observed(rng, d)),
        port: if rng.chance(5) {
            PortState::Taken {
                holder: "another process on this host".to_owned(),
            }
        } else {
            PortState::Free
        },
    }
}

/// Model files in every condition: missing, of the right or a wrong hash or size, linked, not a
/// file, unreadable; cached or not; the lock with or without entries (for the same or another
/// URL) or unreadable; enough or too little space, on one filesystem or two.
fn models_observed(rng: &mut Rng, d: &Desired) -> comfyprov::observed::ModelsObserved {
    use comfyprov::lock::LockedModel;
    use comfyprov::observed::{ModelFile, ModelObserved, ModelsObserved};
    let hash = |rng: &mut Rng| format!("{:064x}", rng.below(4));
    let mut lock = Vec::new();
    let files = d
        .models
        .iter()
        .map(|m| {
            if rng.chance(2) {
                lock.push(LockedModel {
                    path: m.path.clone(),
                    url: if rng.chance(4) {
                        "https://other/x".to_owned()
                    } else {
                        m.url.clone()
                    },
                    sha256: hash(rng),
                    size: 1 + rng.below(3) as u64,
                });
            }
            let file = match rng.below(7) {
                0 => ModelFile::Missing,
                1 => ModelFile::Linked {
                    why: "it is a symbolic link".to_owned(),
                },
                2 => ModelFile::NotAFile,
                3 => ModelFile::Unreadable {
                    error: "denied".to_owned(),
                },
                4 => ModelFile::Present {
                    size: 1 + rng.below(3) as u64,
                    sha256: None,
                },
                _ => ModelFile::Present {
                    size: 1 + rng.below(3) as u64,
                    sha256: Some(
                        m.sha256
                            .clone()
                            .filter(|_| rng.chance(2))
                            .unwrap_or_else(|| hash(rng)),
                    ),
                },
            };
            ModelObserved {
                path: m.path.clone(),
                file,
                cached: rng.chance(2),
            }
        })
        .collect();
    ModelsObserved {
        files,
        lock: if rng.chance(8) {
            Err("bad".to_owned())
        } else {
            Ok(lock)
        },
        free: (!rng.chance(6)).then(|| rng.below(1 << 40) as u64),
        free_at: "/w".to_owned(),
        cache_free: rng
            .chance(3)
            .then(|| (rng.below(1 << 40) as u64, "/c".to_owned())),
        cache: "/c".to_owned(),
    }
}

/// The lock and the environment in every condition: missing, unreadable, stale in each input,
/// other git pins, the environment missing, of another Python, or differing in packages.
fn python_observed(
    rng: &mut Rng,
    d: &Desired,
    spec: &manifest::PythonSpec,
) -> comfyprov::observed::PythonObserved {
    use comfyprov::lock::{FORMAT, Inputs, Lock, LockedGit, Package, SourceFile};
    use comfyprov::observed::{EnvState, LockState, PythonObserved};
    let files: Vec<SourceFile> = std::iter::once("requirements.txt".to_owned())
        .chain(
            d.nodes
                .iter()
                .filter(|n| n.requirements)
                .map(|n| format!("custom_nodes/{}/requirements.txt", n.name)),
        )
        .filter_map(|path| {
            (!rng.chance(6)).then(|| SourceFile {
                path,
                sha256: ["a", "b"][rng.below(2)].repeat(64),
            })
        })
        .collect();
    let inputs = Inputs::new(spec, files);
    let names = ["numpy", "torch", "pillow", "onnxruntime"];
    let mut packages: Vec<Package> = Vec::new();
    for n in names {
        if !rng.chance(4) {
            packages.push(Package {
                name: n.to_owned(),
                version: format!("1.{}", rng.below(3)),
                hashes: vec![],
            });
        }
    }
    let mut locked_inputs = inputs.clone();
    if rng.chance(3) {
        locked_inputs.python = "3.10".to_owned();
    }
    if rng.chance(3) && !locked_inputs.files.is_empty() {
        locked_inputs.files[0].sha256 = "c".repeat(64);
    }
    let lock = match rng.below(6) {
        0 => LockState::Missing,
        1 => LockState::Unreadable {
            error: "not a lock".to_owned(),
        },
        _ => LockState::Present(Box::new(Lock {
            version: FORMAT,
            inputs_sha256: String::new(),
            resolved_from: locked_inputs,
            git: plan::pin_targets(d)
                .into_iter()
                .filter(|_| !rng.chance(8))
                .map(|(t, rev)| LockedGit {
                    name: t.name().to_owned(),
                    rev,
                    commit: "1".repeat(40),
                })
                .collect(),
            packages: packages.clone(),
        })),
    };
    let mut installed = std::collections::BTreeMap::new();
    for n in names {
        if !rng.chance(4) {
            installed.insert(n.to_owned(), format!("1.{}", rng.below(3)));
        }
    }
    let env = match rng.below(6) {
        0 => EnvState::Missing,
        1 => EnvState::Unreadable {
            error: "permission denied".to_owned(),
        },
        _ => EnvState::Present {
            built_for: match rng.below(3) {
                0 => None,
                _ => d.container.as_ref().map(|c| c.image.clone()),
            },
            python: match rng.below(4) {
                0 => None,
                1 => Some("3.9.1".to_owned()),
                _ => Some(format!("{}.4", spec.version)),
            },
            packages: installed,
        },
    };
    PythonObserved { lock, inputs, env }
}

fn check_plan(p: &plan::Plan) {
    let container: Vec<&Step> = p
        .steps
        .iter()
        .filter(|s| s.action.phase() == Phase::Container)
        .collect();
    let lifecycle = container
        .iter()
        .filter(|s| s.action.starts_server())
        .count();
    assert!(lifecycle <= 1, "at most one lifecycle step: {:#?}", p.steps);
    if let Some(i) = container
        .iter()
        .position(|s| matches!(s.action, Action::RestartContainer { .. }))
    {
        assert_eq!(
            i,
            container.len() - 1,
            "the restart is last: {:#?}",
            p.steps
        );
    }
    for s in &p.steps {
        let json = serde_json::to_value(s).unwrap();
        let back: Step = serde_json::from_value(json).unwrap();
        assert_eq!(&back, s, "the step survives the JSON round trip");
    }
    let _ = display::render(p, "fuzz (comfy.toml)", false);
    let _ = display::json(p, "comfy.toml", "fuzz", "0");
}

#[test]
fn fuzz_planning_random_observed_states() {
    let manifests: Vec<Desired> = fixture_files()
        .iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(p).ok()?;
            manifest::parse("comfy.toml", text, Path::new("/srv/project")).ok()
        })
        .collect();
    assert!(manifests.len() >= 5, "enough valid manifests to plan");
    let mut rng = Rng(0xbadc0de);
    let start = Instant::now();
    let mut runs = 0u64;
    while start.elapsed() < budget() {
        let d = rng.pick(&manifests);
        let o = observed(&mut rng, d);
        let opts = Options {
            force: rng.chance(3),
            workspace_only: rng.chance(5),
            locked: rng.chance(4),
        };
        let p = plan::plan(d, &o, &opts);
        assert_eq!(p, plan::plan(d, &o, &opts), "deterministic");
        check_plan(&p);
        runs += 1;
    }
    eprintln!("planner fuzz: {runs} states in {:?}", start.elapsed());
    assert!(runs > 100, "the harness ran ({runs} states)");
}
