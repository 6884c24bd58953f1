-- Single sign-on links: the Hive account an OpenID Connect provider's subject signs in as.
-- One link per (provider, subject) and per (provider, account); a deleted account takes its
-- links with it. `email` is what the provider said when the link was made, for admins.
CREATE TABLE oidc_links (
    provider   text        NOT NULL CHECK (length(provider) BETWEEN 1 AND 32),
    subject    text        NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      text        CHECK (email IS NULL OR length(email) <= 254),
    created_at timestamptz NOT NULL,
    PRIMARY KEY (provider, subject),
    UNIQUE (provider, user_id)
);

CREATE INDEX oidc_links_user ON oidc_links (user_id);
