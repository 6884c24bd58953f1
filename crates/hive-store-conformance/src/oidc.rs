//! Single sign-on links: unique per (provider, subject) and per (provider, account), made with
//! their audit record, an account created with its link in one transaction.

use crate::audited::{audit_count, broken, refused};
use crate::{T0, note};
use futures_util::future::join_all;
use hive_proto::Role;
use hive_store::{NewUser, OidcLinkRow, Store, StoreError, truncate_to_micros};
use uuid::Uuid;

fn new_user(email: &str) -> NewUser {
    NewUser {
        id: Uuid::now_v7(),
        email: email.to_owned(),
        display_name: "Sso".to_owned(),
        role: Role::Viewer,
        password_hash: None,
        created_at: truncate_to_micros(T0),
    }
}

async fn user(store: &dyn Store) -> Uuid {
    let id = Uuid::now_v7();
    let user = NewUser {
        id,
        ..new_user(&format!("{}@example.com", id.simple()))
    };
    store
        .users()
        .create(&user, note("user.create").append())
        .await
        .unwrap();
    id
}

fn link(provider: &str, subject: &str, user_id: Uuid) -> OidcLinkRow {
    OidcLinkRow {
        provider: provider.to_owned(),
        subject: subject.to_owned(),
        user_id,
        email: Some("sso@example.com".to_owned()),
        created_at: truncate_to_micros(T0),
    }
}

pub async fn oidc_links_round_trip_and_stay_unique(store: &dyn Store) {
    let links = store.oidc_links();
    let (ada, bob) = (user(store).await, user(store).await);
    assert_eq!(links.find("corp", "sub-1").await.unwrap(), None);
    let before = audit_count(store).await;
    links
        .link(&link("corp", "sub-1", ada), note("auth.oidc.link").append())
        .await
        .unwrap();
    assert_eq!(
        audit_count(store).await,
        before + 1,
        "audited with the link"
    );
    assert_eq!(
        links.find("corp", "sub-1").await.unwrap(),
        Some(link("corp", "sub-1", ada))
    );
    // Subjects are exact: another case is another subject, another provider another link.
    assert_eq!(links.find("corp", "SUB-1").await.unwrap(), None);
    assert_eq!(links.find("other", "sub-1").await.unwrap(), None);

    // One account per subject, one subject per account and provider.
    for (taken, what) in [
        (link("corp", "sub-1", bob), "a linked subject"),
        (
            link("corp", "sub-2", ada),
            "a second subject for the same account",
        ),
    ] {
        let result = links.link(&taken, note("auth.oidc.link").append()).await;
        assert!(
            matches!(result, Err(StoreError::Conflict(_))),
            "{what}: {result:?}"
        );
    }
    assert_eq!(
        audit_count(store).await,
        before + 1,
        "refused links leave no record"
    );
    // Another provider may link the same account.
    links
        .link(&link("other", "x", ada), note("auth.oidc.link").append())
        .await
        .unwrap();
    let listed = links.list_for_user(ada).await.unwrap();
    let providers: Vec<&str> = listed.iter().map(|l| l.provider.as_str()).collect();
    assert_eq!(providers, ["corp", "other"]);
    assert!(links.list_for_user(bob).await.unwrap().is_empty());

    // No link to an account that does not exist.
    let ghost = links
        .link(
            &link("corp", "ghost", Uuid::now_v7()),
            note("auth.oidc.link").append(),
        )
        .await;
    assert!(matches!(ghost, Err(StoreError::NotFound)), "{ghost:?}");

    // Unlinking frees the subject.
    assert!(
        links
            .unlink("corp", ada, note("auth.oidc.unlink").append())
            .await
            .unwrap()
    );
    assert!(
        !links
            .unlink("corp", ada, note("auth.oidc.unlink").append())
            .await
            .unwrap()
    );
    assert_eq!(links.find("corp", "sub-1").await.unwrap(), None);
    links
        .link(&link("corp", "sub-1", bob), note("auth.oidc.link").append())
        .await
        .unwrap();

    // Out-of-range values are the schema's to refuse.
    for bad in [
        link("corp", &"s".repeat(256), ada),
        link(&"p".repeat(33), "sub", ada),
        link("corp", "", ada),
    ] {
        let result = links.link(&bad, note("auth.oidc.link").append()).await;
        assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
    }
}

pub async fn an_account_is_created_with_its_link_or_not_at_all(store: &dyn Store) {
    let links = store.oidc_links();
    let ada = new_user("ada@example.com");
    let created = links
        .create_linked_user(
            &ada,
            &link("corp", "sub-ada", ada.id),
            note("user.create").append(),
        )
        .await
        .unwrap();
    assert_eq!((created.id, created.role), (ada.id, Role::Viewer));
    assert_eq!(created.password_hash, None);
    assert_eq!(
        links
            .find("corp", "sub-ada")
            .await
            .unwrap()
            .unwrap()
            .user_id,
        ada.id
    );

    // A taken email or a linked subject: nothing is created.
    let same_email = new_user("ada@example.com");
    let result = links
        .create_linked_user(
            &same_email,
            &link("corp", "sub-new", same_email.id),
            note("user.create").append(),
        )
        .await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    assert_eq!(links.find("corp", "sub-new").await.unwrap(), None);
    let linked_subject = new_user("eve@example.com");
    let result = links
        .create_linked_user(
            &linked_subject,
            &link("corp", "sub-ada", linked_subject.id),
            note("user.create").append(),
        )
        .await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    assert!(
        store
            .users()
            .get(linked_subject.id)
            .await
            .unwrap()
            .is_none()
    );

    // Concurrent first sign-ins of one subject make one account.
    let attempts = (0..8).map(|n| {
        let user = new_user(&format!("race{n}@example.com"));
        async move {
            let row = link("corp", "sub-race", user.id);
            let record = note("user.create");
            links.create_linked_user(&user, &row, record.append()).await
        }
    });
    let won = join_all(attempts)
        .await
        .into_iter()
        .filter(Result::is_ok)
        .count();
    assert_eq!(won, 1);

    // A failed audit record leaves neither account nor link.
    let carol = new_user("carol@example.com");
    refused(
        links
            .create_linked_user(
                &carol,
                &link("corp", "sub-carol", carol.id),
                broken("user.create").append(),
            )
            .await,
        "create",
    );
    assert!(store.users().get(carol.id).await.unwrap().is_none());
    assert_eq!(links.find("corp", "sub-carol").await.unwrap(), None);
    let dave = user(store).await;
    refused(
        links
            .link(
                &link("corp", "sub-dave", dave),
                broken("auth.oidc.link").append(),
            )
            .await,
        "link",
    );
    assert_eq!(links.find("corp", "sub-dave").await.unwrap(), None);
    links
        .link(
            &link("corp", "sub-dave", dave),
            note("auth.oidc.link").append(),
        )
        .await
        .unwrap();
    refused(
        links
            .unlink("corp", dave, broken("auth.oidc.unlink").append())
            .await,
        "unlink",
    );
    assert!(links.find("corp", "sub-dave").await.unwrap().is_some());
}
