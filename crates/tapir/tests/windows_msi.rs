//! The Windows installer (`scripts/windows-msi`): its tables, and installing and removing it
//! with Wine's msiexec.
//!
//! Wine has no Telephony service: its `lineGetProviderList` is a stub that answers
//! `LINEERR_OPERATIONFAILED`. So under Wine the package must put `tapir.tsp` into the 64-bit
//! system folder, run `TapirInstall` there as a deferred action with the properties given to
//! msiexec (which reaches TAPI and reports Wine's refusal in the provider's log), leave no
//! settings behind, and on removal run `TapirRemove` and take the file away. That TAPI really
//! adds and removes the provider is only provable on Windows.
//!
//! Needs `TAPIR_TSP_MSI` (the package, from `scripts/windows-msi`), `TAPIR_TSP_WINE_DIR` (from
//! `scripts/windows-tsp`, for Wine's bcryptprimitives shim) and msitools; skipped without the
//! two variables.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::wine::{windows_path, wine_command, wine_prefix};

/// How long one msiexec or rundll32 run may take (a limit, not a measurement).
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// What Wine's TAPI stub answers, as `TapirInstall` and `TapirRemove` report it.
const WINE_TAPI_REFUSAL: &str = "TAPI's lineGetProviderList failed: LINEERR_OPERATIONFAILED (is the Telephony service \
     available, and is this an administrator?) (0x80000048)";

const SETTINGS_KEY: &str = "HKLM\\SOFTWARE\\tapir\\TSP\\Providers";

struct Artifacts {
    msi: PathBuf,
    /// The directory with Wine's bcryptprimitives shim, put on Wine's PATH.
    wine_dir: PathBuf,
}

fn artifacts() -> Option<Artifacts> {
    let wine_dir = std::env::var_os("TAPIR_TSP_WINE_DIR").map(PathBuf::from);
    let msi = std::env::var_os("TAPIR_TSP_MSI").map(PathBuf::from);
    match (msi, wine_dir) {
        (Some(msi), Some(wine_dir)) => Some(Artifacts { msi, wine_dir }),
        _ => {
            eprintln!(
                "skipped: TAPIR_TSP_MSI or TAPIR_TSP_WINE_DIR is not set (scripts/test sets both)"
            );
            None
        }
    }
}

/// One table of the package as rows of tab-separated fields (without `msiinfo export`'s
/// three header lines).
fn table(msi: &Path, name: &str) -> Vec<Vec<String>> {
    let output = Command::new("msiinfo")
        .args(["export"])
        .arg(msi)
        .arg(name)
        .output()
        .expect("run msiinfo (msitools; scripts/windows-msi installs it)");
    assert!(output.status.success(), "msiinfo export {name} failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .skip(3)
        .map(|row| row.split('\t').map(str::to_owned).collect())
        .collect()
}

fn row<'t>(rows: &'t [Vec<String>], key: &str) -> &'t [String] {
    rows.iter()
        .find(|row| row[0] == key)
        .unwrap_or_else(|| panic!("no row {key} in {rows:?}"))
}

fn sequence_of(sequence: &[Vec<String>], action: &str) -> u32 {
    row(sequence, action)[2].parse().expect("a sequence number")
}

// Custom action type bits (msidbCustomActionType*).
const EXE_FROM_PROPERTY: u32 = 50;
const CONTINUE: u32 = 0x40;
const IN_SCRIPT: u32 = 0x400;
const NO_IMPERSONATE: u32 = 0x800;
const HIDE_TARGET: u32 = 0x2000;

#[test]
fn the_package_installs_tapir_tsp_into_system64_and_runs_both_actions() {
    let Some(artifacts) = artifacts() else {
        return;
    };
    let msi = &artifacts.msi;

    let files = table(msi, "File");
    let file = row(&files, "TapirTsp");
    assert_eq!(file[2], "tapir.tsp", "{file:?}");
    let components = table(msi, "Component");
    let component = row(&components, &file[1]);
    assert_eq!(component[2], "System64Folder", "{component:?}");
    let attributes: u32 = component[3].parse().expect("component attributes");
    assert_ne!(attributes & 0x100, 0, "a 64-bit component: {component:?}");

    let actions = table(msi, "CustomAction");
    assert_eq!(
        row(&actions, "FindRundll32")[1..4],
        ["51", "RUNDLL32", "[System64Folder]rundll32.exe"]
    );
    let install = row(&actions, "TapirInstall");
    let deferred_as_system = EXE_FROM_PROPERTY | IN_SCRIPT | NO_IMPERSONATE;
    assert_eq!(
        install[1],
        (deferred_as_system | HIDE_TARGET).to_string(),
        "stops the install on failure, token hidden from the log: {install:?}"
    );
    assert_eq!(
        install[2..4],
        [
            "RUNDLL32",
            "\"[System64Folder]tapir.tsp\",TapirInstall --server=[SERVER] --token=[TOKEN] \
             --user=[USER] --password=[PASSWORD] --mode=[MODE]"
        ]
    );
    let remove = row(&actions, "TapirRemove");
    assert_eq!(
        remove[1..4],
        [
            &(deferred_as_system | CONTINUE).to_string(),
            "RUNDLL32",
            "\"[System64Folder]tapir.tsp\",TapirRemove"
        ]
    );

    let sequence = table(msi, "InstallExecuteSequence");
    let at = |action| sequence_of(&sequence, action);
    assert!(
        at("CostFinalize") < at("FindRundll32") && at("FindRundll32") < at("InstallInitialize")
    );
    assert!(
        at("InstallFiles") < at("TapirInstall") && at("TapirInstall") < at("InstallFinalize"),
        "TapirInstall after the file is in place, inside the script: {sequence:?}"
    );
    assert!(
        at("InstallInitialize") < at("TapirRemove") && at("TapirRemove") < at("RemoveFiles"),
        "TapirRemove before the file goes: {sequence:?}"
    );
    // Neither runs during an upgrade, which keeps the provider and its settings.
    assert_eq!(
        row(&sequence, "TapirInstall")[1],
        "NOT Installed AND NOT REMOVE AND NOT WIX_UPGRADE_DETECTED"
    );
    assert_eq!(
        row(&sequence, "TapirRemove")[1],
        "Installed AND REMOVE=\"ALL\" AND NOT UPGRADINGPRODUCTCODE"
    );

    let properties = table(msi, "Property");
    let secure = &row(&properties, "SecureCustomProperties")[1];
    for property in ["SERVER", "TOKEN", "USER", "PASSWORD", "MODE"] {
        assert!(
            secure.split(';').any(|p| p == property),
            "{property} is not secure: {secure}"
        );
    }
    assert_eq!(row(&properties, "MsiHiddenProperties")[1], "TOKEN;PASSWORD");
}

/// Runs a Wine program with the shim's directory on Wine's PATH, within `RUN_LIMIT`.
fn wine(prefix: &Path, artifacts: &Artifacts, args: &[&str]) -> Output {
    let mut child = wine_command("wine", prefix)
        .env("WINEPATH", windows_path(&artifacts.wine_dir))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wine");
    let deadline = Instant::now() + RUN_LIMIT;
    while child.try_wait().expect("wait for wine").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("wine {args:?} did not finish within {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("wine's output")
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}; stdout {:?}; stderr {:?}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Everything in the provider's log directory (`%ProgramData%\tapir\logs`).
fn provider_log(prefix: &Path) -> String {
    let dir = prefix.join("drive_c/ProgramData/tapir/logs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter_map(|file| std::fs::read_to_string(file).ok())
        .collect()
}

/// How often the provider's log has `line`.
fn times_logged(prefix: &Path, line: &str) -> usize {
    provider_log(prefix).matches(line).count()
}

/// The product codes of installed tapir packages (every build has its own).
fn installed_products(prefix: &Path, artifacts: &Artifacts) -> Vec<String> {
    let uninstall = "HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall";
    let listing = wine(prefix, artifacts, &["reg", "query", uninstall, "/s"]);
    let mut products = Vec::new();
    let mut product = "";
    for line in std::str::from_utf8(&listing.stdout).unwrap_or("").lines() {
        if line.starts_with("HKEY_") {
            product = line.rsplit('\\').next().unwrap_or("");
        } else if line.contains("DisplayName") && line.contains("tapir TAPI service provider") {
            products.push(product.to_owned());
        }
    }
    products
}

fn settings_keys(prefix: &Path, artifacts: &Artifacts) -> String {
    String::from_utf8_lossy(&wine(prefix, artifacts, &["reg", "query", SETTINGS_KEY]).stdout)
        .into_owned()
}

#[test]
fn wine_installs_and_removes_the_package_as_far_as_its_tapi_stub_allows() {
    let Some(artifacts) = artifacts() else {
        return;
    };
    let prefix = wine_prefix();
    let msi = windows_path(&artifacts.msi);
    let installed = prefix.join("drive_c/windows/system32/tapir.tsp");
    // A run that failed half-way left a package (of an earlier build) installed.
    for product in installed_products(&prefix, &artifacts) {
        let _ = wine(&prefix, &artifacts, &["msiexec", "/x", &product, "/qn"]);
    }
    assert!(
        !installed.exists(),
        "{} is left from before",
        installed.display()
    );
    let keys_before = settings_keys(&prefix, &artifacts);

    let refused = wine(
        &prefix,
        &artifacts,
        &["msiexec", "/i", &msi, "/qn", "TOKEN=t"],
    );
    assert!(
        !refused.status.success(),
        "installed without SERVER: {}",
        text(&refused)
    );
    assert!(!installed.exists(), "the refused install left tapir.tsp");

    let install_refused = format!("TapirInstall: {WINE_TAPI_REFUSAL}");
    let logged_before = times_logged(&prefix, &install_refused);
    let done = wine(
        &prefix,
        &artifacts,
        &[
            "msiexec",
            "/i",
            &msi,
            "/qn",
            "SERVER=ws://127.0.0.1:1",
            "TOKEN=tapir_1_wine",
        ],
    );
    assert!(done.status.success(), "msiexec /i: {}", text(&done));
    assert!(installed.exists(), "tapir.tsp is not in system32");
    assert_eq!(
        times_logged(&prefix, &install_refused),
        logged_before + 1,
        "the install action did not reach TAPI once; the log: {}",
        provider_log(&prefix)
    );
    assert_eq!(
        settings_keys(&prefix, &artifacts),
        keys_before,
        "settings were stored for a provider TAPI did not add"
    );

    // The installed DLL checks its arguments before asking TAPI.
    let dll = "C:\\windows\\system32\\tapir.tsp";
    let with_provider = wine(
        &prefix,
        &artifacts,
        &[
            "rundll32",
            &format!("{dll},TapirInstall"),
            "--server",
            "ws://127.0.0.1:1",
            "--token",
            "t",
            "--provider",
            "3",
        ],
    );
    assert!(
        String::from_utf8_lossy(&with_provider.stderr).contains(
            "TapirInstall: TAPI assigns the permanent provider id when it adds the provider; \
             leave out --provider"
        ),
        "{}",
        text(&with_provider)
    );

    let remove_refused = format!("TapirRemove: {WINE_TAPI_REFUSAL}");
    let logged_before = times_logged(&prefix, &remove_refused);
    let removed = wine(&prefix, &artifacts, &["msiexec", "/x", &msi, "/qn"]);
    assert!(removed.status.success(), "msiexec /x: {}", text(&removed));
    assert!(!installed.exists(), "tapir.tsp stayed in system32");
    assert_eq!(
        times_logged(&prefix, &remove_refused),
        logged_before + 1,
        "the remove action did not run once; the log: {}",
        provider_log(&prefix)
    );
}
