use super::*;

#[test]
fn return_paths_stay_on_hive_s_origin() {
    let base = "https://hive.example.com";
    for (requested, kept) in [
        (None, "/"),
        (Some("/"), "/"),
        (Some("/agents?tab=mine"), "/agents?tab=mine"),
        (Some("/a/../b"), "/b"),
        (Some("//evil.example.com/x"), "/"),
        // Dot segments that normalise to `//host`.
        (Some("/.//evil.example.com"), "/"),
        (Some("/%2e//evil.example.com"), "/"),
        (Some("/..//evil.example.com"), "/"),
        (Some("/a/..//evil.example.com/x?y=1"), "/"),
        (Some("/\\evil.example.com"), "/"),
        (Some("https://evil.example.com/"), "/"),
        (Some("javascript:alert(1)"), "/"),
        (Some("agents"), "/"),
        (Some("/x\n"), "/"),
        (Some("/x#frag"), "/x"),
    ] {
        assert_eq!(same_origin_path(base, requested), kept, "{requested:?}");
    }
    let long = format!("/{}", "a".repeat(MAX_RETURN_PATH));
    assert_eq!(same_origin_path(base, Some(&long)), "/");
}

#[test]
fn provider_error_codes_are_cleaned_for_the_record() {
    let Refusal::Provider(reason, code) =
        Refusal::provider("provider_error", Some("access_denied\"<script>"))
    else {
        panic!("a provider refusal");
    };
    assert_eq!(
        (reason, code.as_str()),
        ("provider_error", "access_deniedscript")
    );
}

/// The server awaits these in handlers, which must be `Send`.
#[allow(dead_code, clippy::let_underscore_future)]
fn futures_are_send(oidc: &Oidc, meta: &RequestMeta) {
    fn send<T: Send>(_: T) {}
    send(oidc.start("corp", None, meta));
    send(oidc.callback("corp", Callback::default(), meta));
}
