use hive_testkit::{TestServer, backends, error_body};

#[tokio::test]
async fn health_is_limited_per_client_ip_with_headers_and_a_json_429() {
    for backend in backends() {
        let server = TestServer::builder(backend)
            .var("HIVE_RATE_LIMITS", "health=3/1h")
            .start()
            .await;
        for remaining in ["2", "1", "0"] {
            let response = server.client.get("/api/health").await;
            assert_eq!(response.status(), 200, "{backend:?}");
            assert_eq!(response.headers()["ratelimit-limit"], "3");
            assert_eq!(
                response.headers()["ratelimit-remaining"],
                remaining,
                "{backend:?}"
            );
        }
        let refused = server.client.get("/api/health").await;
        assert_eq!(refused.status(), 429, "{backend:?}");
        let retry: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (1190..=1200).contains(&retry),
            "one interval of 20 minutes: {retry}"
        );
        assert_eq!(refused.headers()["ratelimit-remaining"], "0");
        let body = error_body(refused).await;
        assert_eq!(body.error.code, "rate_limited");

        // Other areas have their own policies.
        let api = server.client.get("/api/v1/nothing").await;
        assert_eq!(api.status(), 404);
        assert_eq!(api.headers()["ratelimit-limit"], "120");
        server.stop().await.0.unwrap();
    }
}
