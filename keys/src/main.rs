//! `otter-keys`: the vendor's key ceremony and image signing tool.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use otter_boot::image::{HardwareId, Header, Version};
use otter_keys::hsm::{self, KeyUri, TokenUri, UriError};
use otter_keys::image::{ImageSpec, inspect, sign_image};
use otter_keys::keyset::{KeyKind, KeySet};
use otter_keys::rollout::{BasisPoints, MaintenanceWindow};
use otter_keys::signer::{self, Signer};
use otter_keys::signing_log::SigningLog;
use otter_keys::trust_bundle::TrustBundle;
use otter_keys::tuf;
use otter_keys::wire::{RolloutPolicy, Signed};
use sha2::{Digest, Sha256};

/// Keys, TUF root, image signing and device trust bundles for Otter.
///
/// Start with `init` once, keep the key directory offline, and come back for every
/// release with `sign-image` and for every rollout with `sign-rollout`.
#[derive(Parser)]
#[command(name = "otter-keys", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a key directory: keys for every role and the signed TUF root.json (version 1).
    Init {
        /// The new key directory (must not exist, or be empty).
        dir: PathBuf,
        /// Number of TUF root keys.
        #[arg(long, default_value_t = 1)]
        root_keys: usize,
        /// Root signatures required (at most --root-keys).
        #[arg(long, default_value_t = 1)]
        root_threshold: usize,
        /// How long root.json is valid, e.g. 365d or 48h.
        #[arg(long, default_value = "365d", value_parser = parse_duration)]
        expires: jiff::SignedDuration,
        /// Make every key inside this PKCS#11 token instead of files:
        /// pkcs11:token=LABEL (module from OTTER_PKCS11_MODULE or ?module-path=, PIN from
        /// OTTER_PKCS11_PIN or a prompt). The directory then holds no private key.
        #[arg(long)]
        pkcs11: Option<String>,
        /// Make the online keys (targets, snapshot, timestamp, director) in this other token,
        /// pkcs11:token=LABEL, so the server that logs in to it reaches no offline key.
        #[arg(long)]
        pkcs11_online: Option<String>,
        /// Sign releases offline: the targets key stays offline and delegates images to
        /// release keys (sign each release with `sign-release`) and deltas to an online
        /// deltas key. The server then cannot list an image on its own.
        #[arg(long)]
        offline_release: bool,
        /// Number of release keys (with --offline-release).
        #[arg(long, default_value_t = 1, requires = "offline_release")]
        release_keys: usize,
        /// Release signatures required (at most --release-keys).
        #[arg(long, default_value_t = 1, requires = "offline_release")]
        release_threshold: usize,
    },
    /// Sign the next version of the release metadata: everything the newest version lists
    /// plus the given images (none: only renew its expiry). Upload the file it writes to
    /// the server (`PUT /api/v1/tuf/release`) once the images are published.
    SignRelease {
        /// The key directory (made with `init --offline-release`).
        keydir: PathBuf,
        /// Signed images to list (each must verify under the key set's firmware keys).
        images: Vec<PathBuf>,
        /// Start from this release metadata (e.g. the server's release.json) when it is
        /// newer than the key directory's newest.
        #[arg(long)]
        from: Option<PathBuf>,
        /// How long the new version is valid, e.g. 365d.
        #[arg(long, default_value = "365d", value_parser = parse_duration)]
        expires: jiff::SignedDuration,
    },
    /// Turn on offline release signing in a key set whose server already serves releases:
    /// release keys and a deltas key, a fresh offline targets key named by a new root
    /// version, and a top-level targets newer than what the server serves, delegating to
    /// them. Copy the new files to the server and restart it.
    EnableOfflineRelease {
        /// The key directory.
        keydir: PathBuf,
        /// The server's current targets.json (GET /tuf/metadata/targets.json): the new
        /// top-level targets must be newer.
        #[arg(long)]
        served_targets: PathBuf,
        /// Signed images devices should still see (listed in release version 1).
        images: Vec<PathBuf>,
        /// Number of release keys.
        #[arg(long, default_value_t = 1)]
        release_keys: usize,
        /// Release signatures required (at most --release-keys).
        #[arg(long, default_value_t = 1)]
        release_threshold: usize,
        /// How long the new root, targets and release metadata are valid, e.g. 365d.
        #[arg(long, default_value = "365d", value_parser = parse_duration)]
        expires: jiff::SignedDuration,
    },
    /// Wrap a raw firmware binary into a signed Otter image.
    SignImage {
        /// The firmware signing key: a key file (KEYDIR/keys/firmware-N.key) or a key in an
        /// HSM as a PKCS#11 URI, pkcs11:token=LABEL;object=firmware-N (module from
        /// OTTER_PKCS11_MODULE, PIN from OTTER_PKCS11_PIN or a prompt).
        #[arg(long)]
        key: String,
        /// The signing history that supplies the default security counter [default:
        /// signed-images.json beside the key file; a PKCS#11 key needs --log or
        /// --security-counter].
        #[arg(long)]
        log: Option<PathBuf>,
        /// Board the image is for (1-32 characters of A-Z a-z 0-9 . _ -, starting and ending
        /// with a letter or digit).
        #[arg(long)]
        hardware_id: String,
        /// Release version, major.minor.patch.
        #[arg(long, value_parser = parse_version)]
        version: Version,
        /// Anti-rollback counter [default: the previous image's for this board, else 0].
        #[arg(long)]
        security_counter: Option<u32>,
        /// The raw firmware binary.
        input: PathBuf,
        /// Where to write the signed image.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Show an image's header; with --trust, verify its hash and signature.
    Inspect {
        /// The signed image.
        image: PathBuf,
        /// A trust bundle directory (from `trust-bundle`) to verify against.
        #[arg(long)]
        trust: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a signing key's public half and id; for a key in a token (a PKCS#11 URI), also
    /// whether it is sensitive and not extractable, and that the token refuses to export it.
    InspectKey {
        /// A key file or a PKCS#11 URI (pkcs11:token=LABEL;object=NAME).
        key: String,
    },
    /// Write what a device is provisioned with: root.json, trust.json, anchors.rs.
    TrustBundle {
        /// The key directory.
        keydir: PathBuf,
        /// The board the bundle is for.
        #[arg(long)]
        hardware_id: String,
        /// Output directory.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Write root version N+1, signed by the old and the new root keys.
    RotateRoot {
        /// The key directory.
        keydir: PathBuf,
        /// Root key names to replace with fresh keys (e.g. root-1); repeatable.
        #[arg(long)]
        replace: Vec<String>,
        /// New root threshold [default: unchanged].
        #[arg(long)]
        root_threshold: Option<usize>,
        /// How long the new root is valid, e.g. 365d.
        #[arg(long, default_value = "365d", value_parser = parse_duration)]
        expires: jiff::SignedDuration,
    },
    /// Add a firmware signing key; images signed by the old and new keys both verify
    /// on devices provisioned with a trust bundle made afterwards.
    RotateFirmwareKey {
        /// The key directory.
        keydir: PathBuf,
        /// Generate the key inside a PKCS#11 token instead of a file, at this URI
        /// (pkcs11:token=LABEL;object=NAME); it never leaves the token.
        #[arg(long)]
        pkcs11: Option<String>,
    },
    /// Sign a rollout policy: the most the server may do with one rollout on its own.
    /// Devices install the rollout's image only within it.
    SignRollout(SignRollout),
    /// Add a rollout key (or the first one, in a key directory made before they existed);
    /// policies signed by the old and new keys both verify on devices provisioned with a
    /// trust bundle made afterwards.
    RotateRolloutKey {
        /// The key directory.
        keydir: PathBuf,
        /// Generate the key inside a PKCS#11 token instead of a file, at this URI
        /// (pkcs11:token=LABEL;object=NAME); it never leaves the token.
        #[arg(long)]
        pkcs11: Option<String>,
    },
}

#[derive(clap::Args)]
struct SignRollout {
    /// The rollout key: a key file (KEYDIR/keys/rollout-N.key) or a PKCS#11 URI
    /// (pkcs11:token=LABEL;object=rollout-N), as for sign-image.
    #[arg(long)]
    key: String,
    /// The id the server gave the rollout.
    #[arg(long)]
    rollout_id: String,
    /// The release's signed image: the policy names its SHA-256 and board.
    #[arg(
        long,
        required_unless_present = "image_sha256",
        conflicts_with = "image_sha256"
    )]
    image: Option<PathBuf>,
    /// The release's image SHA-256 (64 hex digits), instead of --image.
    #[arg(long, requires = "hardware_id")]
    image_sha256: Option<String>,
    /// The board [default with --image: the image's; checked against it].
    #[arg(long)]
    hardware_id: Option<String>,
    /// The highest share of the fleet the server may reach on its own, e.g. 10% or 100%.
    #[arg(long, value_parser = parse_share)]
    ceiling: BasisPoints,
    /// When devices may install, "DAYS HH:MM-HH:MM ZONE", e.g. "mon-fri 22:00-02:00
    /// Europe/Berlin" (crosses midnight when the end is earlier) [default: any time].
    #[arg(long, value_parser = parse_window)]
    window: Option<MaintenanceWindow>,
    /// How long the policy is valid, e.g. 30d or 48h.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    expires: jiff::SignedDuration,
    /// Where to write the signed policy (JSON).
    #[arg(short, long)]
    output: PathBuf,
}

fn parse_version(s: &str) -> Result<Version, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn parse_share(s: &str) -> Result<BasisPoints, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn parse_window(s: &str) -> Result<MaintenanceWindow, String> {
    s.parse().map_err(|e| format!("{e}"))
}

/// `365d`, `48h`, `30m`.
fn parse_duration(s: &str) -> Result<jiff::SignedDuration, String> {
    let bad = || format!("expected a duration like 365d, 48h or 30m, found {s:?}");
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        _ => return Err(bad()),
    };
    if n <= 0 {
        return Err(bad());
    }
    n.checked_mul(secs)
        .map(jiff::SignedDuration::from_secs)
        .ok_or_else(bad)
}

fn expiry(d: jiff::SignedDuration) -> Result<jiff::Timestamp, String> {
    jiff::Timestamp::now()
        .checked_add(d)
        .map_err(|e| format!("expiry out of range: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Init {
            dir,
            root_keys,
            root_threshold,
            expires,
            pkcs11,
            pkcs11_online,
            offline_release,
            release_keys,
            release_threshold,
        } => {
            let token = (pkcs11.as_deref().map(str::parse::<TokenUri>).transpose())
                .map_err(|e| format!("--pkcs11: {e}"))?;
            let online = (pkcs11_online
                .as_deref()
                .map(str::parse::<TokenUri>)
                .transpose())
            .map_err(|e| format!("--pkcs11-online: {e}"))?;
            let tokens = (token.as_ref(), online.as_ref());
            let release = offline_release.then_some((release_keys, release_threshold));
            let roots = (root_keys, root_threshold);
            init(&dir, roots, expiry(expires)?, tokens, release)
        }
        Command::EnableOfflineRelease {
            keydir,
            served_targets,
            images,
            release_keys,
            release_threshold,
            expires,
        } => enable_offline_release(
            &keydir,
            &served_targets,
            &images,
            (release_keys, release_threshold),
            expiry(expires)?,
        ),
        Command::SignRelease {
            keydir,
            images,
            from,
            expires,
        } => sign_release(&keydir, &images, from.as_deref(), expiry(expires)?),
        Command::SignImage {
            key,
            log,
            hardware_id,
            version,
            security_counter,
            input,
            output,
        } => sign(
            &key,
            log,
            &hardware_id,
            version,
            security_counter,
            &input,
            &output,
        ),
        Command::Inspect { image, trust, json } => show(&image, trust.as_deref(), json),
        Command::InspectKey { key } => inspect_key(&key),
        Command::TrustBundle {
            keydir,
            hardware_id,
            output,
        } => {
            let set = KeySet::open(&keydir).map_err(|e| e.to_string())?;
            let hw = HardwareId::new(&hardware_id).map_err(|e| e.to_string())?;
            let b = TrustBundle::write(&set, hw, &output).map_err(|e| e.to_string())?;
            println!("trust bundle for {hw} written to {}", output.display());
            for k in &b.firmware_keys {
                println!("  firmware key {}", k.id);
            }
            println!("  director key {}", hex::encode(b.director));
            for k in &b.rollout_keys {
                println!("  rollout key {}", hex::encode(k));
            }
            Ok(())
        }
        Command::RotateRoot {
            keydir,
            replace,
            root_threshold,
            expires,
        } => {
            let mut set = KeySet::open(&keydir).map_err(|e| e.to_string())?;
            let info = tuf::rotate_root(&mut set, &replace, root_threshold, expiry(expires)?)
                .map_err(|e| e.to_string())?;
            println!(
                "root version {} written to {}",
                info.version,
                info.path.display()
            );
            println!("root keys now: {}", set.manifest().root.keys.join(", "));
            Ok(())
        }
        Command::RotateFirmwareKey { keydir, pkcs11 } => {
            let mut set = KeySet::open(&keydir).map_err(|e| e.to_string())?;
            if let Some(uri) = pkcs11 {
                return add_token_key(&mut set, KeyKind::Firmware, &uri);
            }
            let key = set.add_firmware_key().map_err(|e| e.to_string())?;
            println!(
                "new firmware key {} at {}",
                key.key_id(),
                key.path().display()
            );
            println!("sign new images with it; regenerate and ship the trust bundle first");
            Ok(())
        }
        Command::SignRollout(args) => sign_rollout(args),
        Command::RotateRolloutKey { keydir, pkcs11 } => {
            let mut set = KeySet::open(&keydir).map_err(|e| e.to_string())?;
            if let Some(uri) = pkcs11 {
                return add_token_key(&mut set, KeyKind::Rollout, &uri);
            }
            let key = set.add_rollout_key().map_err(|e| e.to_string())?;
            println!("new rollout key at {}", key.path().display());
            println!("sign new policies with it; regenerate and ship the trust bundle first");
            Ok(())
        }
    }
}

fn init(
    dir: &Path,
    (root_keys, threshold): (usize, usize),
    expires: jiff::Timestamp,
    (token, online): (Option<&TokenUri>, Option<&TokenUri>),
    release: Option<(usize, usize)>,
) -> Result<(), String> {
    let set = (KeySet::create_in(dir, root_keys, threshold, token, online, release))
        .map_err(|e| e.to_string())?;
    let info = tuf::write_initial_root(&set, expires).map_err(|e| e.to_string())?;
    let delegated = match release {
        Some(_) => Some(tuf::write_delegating_targets(&set, expires).map_err(|e| e.to_string())?),
        None => None,
    };
    let m = set.manifest();
    println!("key directory {} created", dir.display());
    println!(
        "  root keys: {} (threshold {})",
        m.root.keys.join(", "),
        m.root.threshold
    );
    println!(
        "  online keys for the server: {}",
        set.online_key_names()[..].join(", ")
    );
    if let (Some(keys), Some((top, first))) = (&m.release, &delegated) {
        println!(
            "  offline: targets key {} and release keys {} (threshold {})",
            m.targets,
            keys.keys.join(", "),
            keys.threshold
        );
        println!("  {} and {}", top.path.display(), first.path.display());
    }
    println!("  director key: {}", m.director);
    // Where each signing key is: its file, or the URI of its key in the token.
    let place = |name: &str| match std::fs::read_to_string(set.token_record_path(name)) {
        Ok(uri) => uri.trim().to_owned(),
        Err(_) => set.key_path(name).display().to_string(),
    };
    for name in &m.rollout {
        println!("  rollout key: {}", place(name));
    }
    let keys = set.firmware_public_keys().map_err(|e| e.to_string())?;
    if let (Some(name), Some(key)) = (m.firmware.last(), keys.last()) {
        println!(
            "  firmware key: {} (key id {})",
            place(name),
            otter_boot::trust::KeyId::of(key)
        );
    }
    println!("  {} (version 1, expires {expires})", info.path.display());
    if let Some(t) = token {
        println!(
            "The root, firmware and rollout keys were made inside token {:?} and can not leave it.",
            t.token
        );
    }
    match (online, token) {
        (Some(t), _) => println!(
            "The online keys were made inside token {:?}: give the server its PIN, never the other's.",
            t.token
        ),
        (None, Some(_)) => println!(
            "The online keys share that token: a server that logs in to it can reach every key. \
             Use --pkcs11-online TOKEN-URI to keep them apart."
        ),
        (None, None) => {}
    }
    if token.is_none() {
        println!("Keep the root keys offline. Private keys are mode 0600 and never printed.");
    }
    Ok(())
}

fn enable_offline_release(
    keydir: &Path,
    served_targets: &Path,
    images: &[PathBuf],
    release: (usize, usize),
    expires: jiff::Timestamp,
) -> Result<(), String> {
    let mut set = KeySet::open(keydir).map_err(|e| e.to_string())?;
    let served = tuf::read_targets(served_targets).map_err(|e| e.to_string())?;
    let (_, root) = tuf::current_root(keydir).map_err(|e| e.to_string())?;
    root.signed.verify_role(&served).map_err(|e| {
        format!(
            "{}: not the targets metadata this key set's root vouches for ({e})",
            served_targets.display()
        )
    })?;
    let bytes = (images.iter())
        .map(|p| fs::read(p).map_err(|e| format!("{}: {e}", p.display())))
        .collect::<Result<Vec<_>, _>>()?;
    let (root, top, first) = tuf::enable_offline_release(
        &mut set,
        release,
        served.signed.version.get(),
        &bytes,
        expires,
    )
    .map_err(|e| e.to_string())?;
    let m = set.manifest();
    println!(
        "offline release signing is on: release keys {} (threshold {}), deltas key {}",
        m.release
            .as_ref()
            .map(|r| r.keys.join(", "))
            .unwrap_or_default(),
        m.release.as_ref().map_or(0, |r| r.threshold),
        m.release
            .as_ref()
            .map(|r| r.deltas.as_str())
            .unwrap_or_default()
    );
    println!(
        "  {} names the new offline targets key {}",
        root.path.display(),
        m.targets
    );
    println!("  {} and {}", top.path.display(), first.path.display());
    for name in &first.targets {
        println!("  release 1 lists {name}");
    }
    println!(
        "Copy these, keyset.json and keys/{}.key to the server's key directory, remove its old \
         targets key, and restart it.",
        m.release
            .as_ref()
            .map(|r| r.deltas.as_str())
            .unwrap_or_default()
    );
    Ok(())
}

fn sign_release(
    keydir: &Path,
    images: &[PathBuf],
    from: Option<&Path>,
    expires: jiff::Timestamp,
) -> Result<(), String> {
    let set = KeySet::open(keydir).map_err(|e| e.to_string())?;
    let bytes = (images.iter())
        .map(|p| fs::read(p).map_err(|e| format!("{}: {e}", p.display())))
        .collect::<Result<Vec<_>, _>>()?;
    let base = from
        .map(tuf::read_targets)
        .transpose()
        .map_err(|e| e.to_string())?;
    let info = tuf::sign_release(&set, &bytes, base, expires).map_err(|e| e.to_string())?;
    println!(
        "release metadata version {} ({} signature(s), expires {}): {}",
        info.version,
        info.signatures,
        info.expires,
        info.path.display()
    );
    for name in &info.targets {
        println!("  {name}");
    }
    println!("sha256 {}", info.sha256);
    println!("Publish the images first, then upload this file: PUT /api/v1/tuf/release");
    Ok(())
}

fn inspect_key(key: &str) -> Result<(), String> {
    if !KeyUri::is_uri(key) {
        let signer = signer::open(key).map_err(|e| e.to_string())?;
        println!("key file {key}");
        println!("  public key {}", hex::encode(signer.public_key()));
        println!("  key id     {}", signer.key_id());
        return Ok(());
    }
    let uri: KeyUri = key.parse().map_err(|e: UriError| e.to_string())?;
    let audit = hsm::audit(&uri).map_err(|e| e.to_string())?;
    println!("key {:?} in token {:?}", uri.object, uri.token);
    println!("  public key {}", hex::encode(audit.public_key));
    println!(
        "  key id     {}",
        otter_boot::trust::KeyId::of(&audit.public_key)
    );
    let yes_no = |b: bool| if b { "yes" } else { "NO" };
    println!(
        "  sensitive and not extractable: {}",
        yes_no(audit.stays_inside)
    );
    println!(
        "  generated in the token, never exportable: {}",
        yes_no(audit.born_inside)
    );
    println!(
        "  the token refuses to export it: {}",
        yes_no(audit.export_refused)
    );
    if audit.stays_inside && audit.born_inside && audit.export_refused {
        Ok(())
    } else {
        Err(
            "this key can leave its token, or was made outside it; make a new one inside \
             with rotate-firmware-key --pkcs11"
                .into(),
        )
    }
}

/// Generates a key inside the token `uri` names and adds it to the key set.
fn add_token_key(set: &mut KeySet, kind: KeyKind, uri: &str) -> Result<(), String> {
    let uri: KeyUri = uri.parse().map_err(|e: UriError| e.to_string())?;
    let key = hsm::generate_key(&uri).map_err(|e| e.to_string())?;
    let name = (set.add_token_key(kind, &uri, &key)).map_err(|e| e.to_string())?;
    println!(
        "new {name} (key id {}) generated inside token {:?} as {:?}; it can not be exported",
        key.key_id(),
        uri.token,
        uri.object
    );
    println!("sign with --key '{uri}'; regenerate and ship the trust bundle first");
    Ok(())
}

fn sign(
    key: &str,
    log: Option<PathBuf>,
    hardware_id: &str,
    version: Version,
    counter: Option<u32>,
    input: &Path,
    output: &Path,
) -> Result<(), String> {
    let hw = HardwareId::new(hardware_id).map_err(|e| e.to_string())?;
    let signer = signer::open(key).map_err(|e| e.to_string())?;
    let mut log = match log {
        Some(path) => SigningLog::at(path)?,
        // A token key has no directory of its own; a history in whatever dir the command
        // runs from would be a different one each time, and the counter would fall back.
        None if KeyUri::is_uri(key) && counter.is_none() => {
            return Err(
                "a key in a token keeps no signing history of its own: give --log FILE \
                        (e.g. KEYDIR/signed-images.json), or --security-counter"
                    .into(),
            );
        }
        None if KeyUri::is_uri(key) => SigningLog::none(),
        None => SigningLog::for_key(Path::new(key))?,
    };
    let last = log.last(hardware_id);
    if let Some((v, _)) = last.filter(|(v, _)| *v >= version) {
        eprintln!("warning: {hardware_id} was last signed at {v}; {version} is not newer");
    }
    let security_counter = counter.unwrap_or(last.map_or(0, |(_, c)| c));
    let payload = fs::read(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let spec = ImageSpec {
        hardware_id: hw,
        version,
        security_counter,
    };
    let image = sign_image(&payload, &spec, signer.as_ref()).map_err(|e| e.to_string())?;
    fs::write(output, &image).map_err(|e| format!("{}: {e}", output.display()))?;
    log.record(hardware_id, version, security_counter)?;
    println!(
        "signed {} {version} (security counter {security_counter}, key {}): {} bytes -> {}",
        hw,
        signer.key_id(),
        image.len(),
        output.display()
    );
    Ok(())
}

fn show(image: &Path, trust: Option<&Path>, json: bool) -> Result<(), String> {
    let bytes = fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let bundle = trust
        .map(TrustBundle::load)
        .transpose()
        .map_err(|e| e.to_string())?;
    let report = inspect(&bytes, bundle.as_ref().map(TrustBundle::anchors).as_ref());
    if json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        print!("{}", report.table());
    }
    match report.verification {
        Some(v) if !v.ok => Err("verification failed".into()),
        _ => Ok(()),
    }
}

fn sign_rollout(args: SignRollout) -> Result<(), String> {
    let signer = signer::open(&args.key).map_err(|e| e.to_string())?;
    let (image_sha256, hardware_id) = match (&args.image, &args.image_sha256) {
        (Some(path), _) => image_facts(path, args.hardware_id.as_deref())?,
        (None, Some(text)) => {
            let mut digest = [0u8; 32];
            hex::decode_to_slice(text, &mut digest).map_err(|e| {
                format!("--image-sha256: expected 64 hex digits, found {text:?} ({e})")
            })?;
            let hw = args.hardware_id.as_deref().unwrap_or_default();
            let hw = HardwareId::new(hw).map_err(|e| format!("--hardware-id: {e}"))?;
            (digest, hw)
        }
        (None, None) => return Err("give --image or --image-sha256".into()),
    };
    let expires = expiry(args.expires)?;
    let policy = RolloutPolicy {
        rollout_id: args.rollout_id,
        hardware_id: hardware_id.as_str().to_owned(),
        image_sha256,
        ceiling: args.ceiling,
        window: args.window,
        expires: u64::try_from(expires.as_second()).map_err(|e| e.to_string())?,
    };
    let signed = Signed::sign(policy, signer.as_ref()).map_err(|e| e.to_string())?;
    let mut text = serde_json::to_string_pretty(&signed).map_err(|e| e.to_string())?;
    text.push('\n');
    fs::write(&args.output, text).map_err(|e| format!("{}: {e}", args.output.display()))?;
    let p = &signed.message;
    let window = p
        .window
        .as_ref()
        .map_or("any time".into(), ToString::to_string);
    println!(
        "signed rollout policy {} for {} image {}: ceiling {}, window {window}, expires \
         {expires} -> {}",
        p.rollout_id,
        p.hardware_id,
        hex::encode(p.image_sha256),
        p.ceiling,
        args.output.display()
    );
    Ok(())
}

/// The SHA-256 of a signed image file and its board, checked against `hardware_id` if given.
fn image_facts(path: &Path, hardware_id: Option<&str>) -> Result<([u8; 32], HardwareId), String> {
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let header = Header::decode(&bytes)
        .map_err(|e| format!("{}: not a signed Otter image ({e})", path.display()))?;
    if let Some(hw) = hardware_id.filter(|hw| *hw != header.hardware_id.as_str()) {
        return Err(format!(
            "--hardware-id {hw:?} does not match the image, which is for {:?}",
            header.hardware_id.as_str()
        ));
    }
    Ok((Sha256::digest(&bytes).into(), header.hardware_id))
}
