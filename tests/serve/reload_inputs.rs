//! Reloads of what a policy references, not only of the policy texts: a rotated secret or key
//! file (in a sub-directory, behind a Kubernetes `..data` symlink, outside the policy
//! directory) is taken by SIGHUP and by the watcher; the watcher survives its directory being
//! moved away, removed and re-created, and `/config` says what is loaded and watched. A secret
//! written into a policy by mistake is never shown; a byte-order mark and a dangling symlink
//! among the secrets do not break a load.

use crate::common::*;
use crate::oauth2::assert_tokens;
use std::path::Path;

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");
/// The shipped demo secret of the shop's mobile app (`policies/secrets/mobile-app`).
const SHIPPED: &str = "demo-secret-mobile-5c7e9a1b";
const ROTATED: &str = "rotated-secret-mobile-77f0c2";

/// Copy a directory tree, symlinks as symlinks.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if kind.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// A served copy of the shipped `policies/`.
fn served_copy() -> (TempDir, Gateway) {
    let dir = TempDir::new();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"),
        &dir.path().join("live"),
    );
    let gw = Gateway::start(&dir.path().join("live"));
    (dir, gw)
}

/// The shop's token endpoint, client_credentials for the mobile app with this secret.
fn token(gw: &Gateway, host: &str, secret: &str) -> Resp {
    let body =
        format!("grant_type=client_credentials&client_id=ak-shop-mobile&client_secret={secret}");
    gw.send(&request(
        "POST",
        "/oauth2/token",
        host,
        &[FORM],
        body.as_bytes(),
    ))
}

/// Wait until `secret` is refused, then check the refusal is Huawei's row byte for byte.
fn wait_refused(gw: &Gateway, host: &str, secret: &str) {
    let r = poll(WAIT, &format!("{secret} to be refused"), || {
        let r = token(gw, host, secret);
        (r.status != 200).then_some(r)
    });
    assert_huawei(&r, 400, "APIG.2201", "Appkey or SecretKey is invalid");
}

/// The old secret is refused with Huawei's row and the new one gets tokens.
fn assert_rotated(gw: &Gateway, host: &str, old: &str, new: &str) {
    wait_refused(gw, host, old);
    assert_tokens(&token(gw, host, new));
}

/// Write `contents` to `path` as an editor does: a temporary file renamed over it.
fn replace(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The `inputs` entry of `/config` for the file whose path ends with `tail`.
fn input_digest(config: &serde_json::Value, tail: &str) -> String {
    config["inputs"]
        .as_array()
        .expect("/config lists its inputs")
        .iter()
        .find(|i| i["path"].as_str().is_some_and(|p| p.ends_with(tail)))
        .unwrap_or_else(|| panic!("no input {tail} in {config}"))["digest"]
        .as_str()
        .expect("a digest")
        .to_string()
}

#[test]
fn a_rotated_secret_file_is_taken_on_sighup_and_the_old_secret_is_refused() {
    let (dir, gw) = served_copy();
    assert_tokens(&token(&gw, "localhost", SHIPPED));
    let before = gw.config();

    std::fs::write(dir.path().join("live/secrets/mobile-app"), ROTATED).unwrap();
    gw.signal(SIGHUP);
    assert_rotated(&gw, "localhost", SHIPPED, ROTATED);

    // /config lists the file with a short digest that changed, and the new load
    let digest = input_digest(&before, "secrets/mobile-app");
    assert_eq!(digest.len(), 16, "a short digest: {digest}");
    let after = gw.config();
    assert_eq!(after["version"], 2, "one new version: {after}");
    assert_ne!(input_digest(&after, "secrets/mobile-app"), digest);
    assert_ne!(after["loaded_at"], before["loaded_at"]);
    let shown = after.to_string() + &gw.log_lines().join("\n");
    for secret in [SHIPPED, ROTATED] {
        assert!(!shown.contains(secret), "a secret is shown: {shown}");
    }
}

#[test]
fn a_rotated_secret_in_a_sub_directory_is_picked_up_by_the_watcher_without_sighup() {
    let (dir, gw) = served_copy();
    assert_tokens(&token(&gw, "localhost", SHIPPED));
    replace(&dir.path().join("live/secrets/mobile-app"), ROTATED);
    assert_rotated(&gw, "localhost", SHIPPED, ROTATED);
    // and back, written in place this time
    std::fs::write(dir.path().join("live/secrets/mobile-app"), SHIPPED).unwrap();
    assert_rotated(&gw, "localhost", ROTATED, SHIPPED);
    assert_eq!(gw.config()["version"], 3);
}

/// A policy whose app secret and token-signing key are files given by `@MOBILE@` and
/// `@SIGNING@`.
fn token_policy(mobile: &str, signing: &str) -> String {
    format!(
        r#"
service shop {{
    dialect huawei
    hosts "shop.test"
    app mobile {{
        key "ak-shop-mobile"
        secret file "{mobile}"
    }}
    auth tokens oauth2 {{
        signing key file "{signing}"
        access ttl 1h
        refresh ttl 1d
    }}
    route ANY "/oauth2/token" {{ issue tokens tokens }}
    route GET "/orders" {{
        auth tokens apps mobile
        mock 200 text "orders"
    }}
}}
"#
    )
}

fn orders(gw: &Gateway, access: &str) -> Resp {
    gw.send(&request(
        "GET",
        "/orders",
        "shop.test",
        &[("Authorization", &format!("Bearer {access}"))],
        b"",
    ))
}

fn access_token(gw: &Gateway, secret: &str) -> String {
    assert_tokens(&token(gw, "shop.test", secret)).0
}

#[test]
fn a_kubernetes_secret_volume_data_symlink_swap_outside_the_policy_directory_rotates_the_secret() {
    use std::os::unix::fs::symlink;
    let dir = TempDir::new();
    // the layout a kubelet writes for a Secret volume, mounted beside the policy directory
    let vol = dir.path().join("secret-volume");
    dir.write("secret-volume/..2026_11_22_10_00_00.1/mobile-app", SHIPPED);
    dir.write(
        "secret-volume/..2026_11_22_10_00_00.1/signing",
        "k8s-signing-key-0123456789abcdef",
    );
    symlink("..2026_11_22_10_00_00.1", vol.join("..data")).unwrap();
    symlink("..data/mobile-app", vol.join("mobile-app")).unwrap();
    symlink("..data/signing", vol.join("signing")).unwrap();
    dir.write(
        "policies/shop.policy",
        &token_policy("../secret-volume/mobile-app", "../secret-volume/signing"),
    );
    let gw = Gateway::start(&dir.path().join("policies"));
    assert_tokens(&token(&gw, "shop.test", SHIPPED));

    // the kubelet's update: a new timestamped directory, `..data` swapped to it in one rename
    dir.write("secret-volume/..2026_11_22_10_05_00.2/mobile-app", ROTATED);
    dir.write(
        "secret-volume/..2026_11_22_10_05_00.2/signing",
        "k8s-signing-key-0123456789abcdef",
    );
    symlink("..2026_11_22_10_05_00.2", vol.join("..data_tmp")).unwrap();
    std::fs::rename(vol.join("..data_tmp"), vol.join("..data")).unwrap();
    std::fs::remove_dir_all(vol.join("..2026_11_22_10_00_00.1")).unwrap();
    assert_rotated(&gw, "shop.test", SHIPPED, ROTATED);
    let config = gw.config();
    assert_eq!(config["version"], 2, "{config}");
    let watched = config["watched"].to_string();
    assert!(
        watched.contains("secret-volume"),
        "/config shows the volume watched: {config}"
    );
}

#[test]
fn a_rotated_signing_key_outside_the_policy_directory_is_picked_up_by_the_watcher() {
    let dir = TempDir::new();
    dir.write("keys/mobile", SHIPPED);
    let signing = dir.write("keys/signing", "first-signing-key-0123456789abcdef");
    dir.write(
        "policies/shop.policy",
        &token_policy("../keys/mobile", "../keys/signing"),
    );
    let gw = Gateway::start(&dir.path().join("policies"));
    let first = access_token(&gw, SHIPPED);
    assert_mock(
        &orders(&gw, &first),
        200,
        "X-Request-Id",
        "text/plain; charset=utf-8",
        &[],
        "orders",
    );

    replace(&signing, "second-signing-key-fedcba9876543210");
    let r = poll(WAIT, "the first key's tokens to be refused", || {
        let r = orders(&gw, &first);
        (r.status != 200).then_some(r)
    });
    assert_huawei(&r, 400, "APIG.2203", "Access token is invalid");
    let second = access_token(&gw, SHIPPED);
    assert_eq!(orders(&gw, &second).status, 200);
    assert_eq!(gw.config()["version"], 2);
}

fn versioned(v: u32) -> String {
    fixture("versioned.policy", &[("V", &v.to_string())])
}

fn wait_served(gw: &Gateway, v: u32) {
    let want = format!("{{\"v\":{v}}}");
    poll(WAIT, &format!("{want} to be served"), || {
        let r = gw.get("shop.test", "/v");
        (r.status == 200 && r.body == want.as_bytes()).then_some(())
    });
}

fn wait_watching(gw: &Gateway, watching: bool) -> serde_json::Value {
    poll(WAIT, &format!("/config watching: {watching}"), || {
        let c = gw.config();
        (c["watching"] == watching).then_some(c)
    })
}

#[test]
fn the_policy_directory_moved_away_or_removed_and_re_created_is_watched_again() {
    let dir = TempDir::new();
    let live = dir.path().join("live");
    dir.write("live/shop.policy", &versioned(1));
    let gw = Gateway::start(&live);
    let config = wait_watching(&gw, true);
    assert_eq!(config["watch_problems"], serde_json::json!([]), "{config}");

    // mv live live.bak: the gateway says it is not watching, and why
    std::fs::rename(&live, dir.path().join("live.bak")).unwrap();
    let config = wait_watching(&gw, false);
    let problems = config["watch_problems"].to_string();
    assert!(
        problems.contains("is gone; waiting for it to come back"),
        "{config}"
    );
    poll(WAIT, "the log to say the directory is gone", || {
        gw.log_lines()
            .iter()
            .any(|l| l.contains("is gone") && l.contains("\"level\":\"WARN\""))
            .then_some(())
    });
    wait_served(&gw, 1);

    // cp -r live.bak live, then an edit
    copy_dir(&dir.path().join("live.bak"), &live);
    let config = wait_watching(&gw, true);
    assert_eq!(config["watch_problems"], serde_json::json!([]), "{config}");
    dir.write("live/shop.policy", &versioned(2));
    wait_served(&gw, 2);

    // rm -rf live; mkdir live; a new policy in it
    std::fs::remove_dir_all(&live).unwrap();
    wait_watching(&gw, false);
    dir.write("live/shop.policy", &versioned(3));
    wait_served(&gw, 3);
    wait_watching(&gw, true);
    dir.write("live/shop.policy", &versioned(4));
    wait_served(&gw, 4);
    // the moved-away copy is no longer followed
    dir.write("live.bak/shop.policy", &versioned(5));
    std::thread::sleep(std::time::Duration::from_millis(500));
    wait_served(&gw, 4);

    // removed and re-created at once, within one debounce (the new directory may even get
    // the old one's inode number), then edited
    std::fs::remove_dir_all(&live).unwrap();
    dir.write("live/shop.policy", &versioned(6));
    wait_served(&gw, 6);
    dir.write("live/shop.policy", &versioned(7));
    wait_served(&gw, 7);
    assert_eq!(
        wait_watching(&gw, true)["watch_problems"],
        serde_json::json!([])
    );
}

/// The value of a secret written into the policy by mistake.
const INLINE: &str = "s3cr3t-Value-0f-the-mobile-app";

#[test]
fn a_secret_written_inline_is_in_neither_the_reload_log_nor_config() {
    let dir = TempDir::new();
    dir.write("shop.policy", &versioned(1));
    let gw = Gateway::start(dir.path());
    let broken = versioned(2).replace(
        "    route GET",
        &format!("    app mobile {{\n        key \"ak\"\n        secret \"{INLINE}\"\n    }}\n    route GET"),
    );
    dir.write("shop.policy", &broken);
    let config = poll(WAIT, "the failed reload", || {
        let c = gw.config();
        c["last_reload_error"].is_string().then_some(c)
    });
    let error = config["last_reload_error"].as_str().unwrap();
    assert!(
        error.contains("secret \"******************************\""),
        "the statement is shown masked: {error}"
    );
    let log = poll(WAIT, "the reload failure in the log", || {
        let log = gw.log_lines().join("\n");
        log.contains("policy reload failed").then_some(log)
    });
    assert!(!log.contains(INLINE), "the log shows the secret: {log}");
    assert!(!log.contains("s3cr3t"), "the log shows the secret: {log}");
    let body = gw.admin_get("/config").body_str().to_string();
    assert!(!body.contains("s3cr3t"), "/config shows the secret: {body}");
    wait_served(&gw, 1);
}

#[test]
fn a_policy_file_starting_with_a_byte_order_mark_is_served() {
    let dir = TempDir::new();
    dir.write("shop.policy", &format!("\u{feff}{}", versioned(1)));
    let gw = Gateway::start(dir.path());
    wait_served(&gw, 1);
    dir.write("shop.policy", &format!("\u{feff}{}", versioned(2)));
    wait_served(&gw, 2);
}

#[test]
fn a_dangling_symlink_among_the_secrets_is_named_by_e0301_only_when_referenced() {
    use std::os::unix::fs::symlink;
    let dir = TempDir::new();
    dir.write("secrets/mobile", SHIPPED);
    dir.write("secrets/signing", "serve-test-signing-key-0123456789");
    // a leftover of an old rotation, referenced by nothing
    symlink("..2025_01_01/old", dir.path().join("secrets/stale")).unwrap();
    dir.write(
        "shop.policy",
        &token_policy("secrets/mobile", "secrets/signing"),
    );
    let gw = Gateway::start(dir.path());
    assert_tokens(&token(&gw, "shop.test", SHIPPED));

    // the app's secret becomes a dangling link: the reload fails and names it
    std::fs::remove_file(dir.path().join("secrets/mobile")).unwrap();
    symlink("..data/mobile", dir.path().join("secrets/mobile")).unwrap();
    let config = poll(WAIT, "the failed reload", || {
        let c = gw.config();
        c["last_reload_error"].is_string().then_some(c)
    });
    let error = config["last_reload_error"].as_str().unwrap();
    let file = dir.path().join("secrets/mobile");
    assert!(
        error.contains("error[E0301]: the secret for app `mobile` is missing")
            && error.contains(&format!(
                "file `{}` cannot be read: it is a symbolic link to `..data/mobile`, which does not exist",
                file.display()
            )),
        "{error}"
    );
    assert!(!error.contains("os error"), "{error}");
    // still serving the previous policy
    assert_tokens(&token(&gw, "shop.test", SHIPPED));
}

/// The directory holding the policy directory is watched for the policy directory's name
/// only: other files there (it may be `/etc`) cause no reload.
#[test]
fn files_written_beside_the_policy_directory_cause_no_reload() {
    let dir = TempDir::new();
    dir.write("live/shop.policy", &versioned(1));
    let gw = Gateway::start(&dir.path().join("live"));
    for i in 0..5 {
        dir.write(&format!("unrelated-{i}.txt"), "noise");
        dir.write("live.bak/shop.policy", &versioned(9));
    }
    std::thread::sleep(std::time::Duration::from_millis(600));
    let config = gw.config();
    assert_eq!(config["reloads_ok"], 0, "{config}");
    assert_eq!(config["reloads_failed"], 0, "{config}");
    dir.write("live/shop.policy", &versioned(2));
    wait_served(&gw, 2);
    assert_eq!(gw.config()["reloads_ok"], 1);
}

#[test]
fn a_policy_file_symlinked_from_outside_the_directory_is_picked_up_by_the_watcher() {
    let dir = TempDir::new();
    let outside = dir.write("outside/shop.policy", &versioned(1));
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.path().join("policies/shop.policy")).unwrap();
    let gw = Gateway::start(&dir.path().join("policies"));
    wait_served(&gw, 1);
    replace(&outside, &versioned(2));
    wait_served(&gw, 2);
    std::fs::write(&outside, versioned(3)).unwrap();
    wait_served(&gw, 3);
}
