CREATE TABLE media (
    id BIGSERIAL PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    org TEXT NOT NULL,
    uploaded_by TEXT NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    md5 TEXT NOT NULL,
    kind TEXT NOT NULL,
    width INTEGER,
    height INTEGER,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX media_org_id ON media (org, id);
CREATE INDEX media_sha256 ON media (sha256);

CREATE TABLE uploads (
    id TEXT PRIMARY KEY NOT NULL,
    org TEXT NOT NULL,
    user_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    byte_offset BIGINT NOT NULL DEFAULT 0,
    total BIGINT,
    sha256_state BYTEA NOT NULL,
    md5_state BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    media_id BIGINT REFERENCES media (id) ON DELETE SET NULL,
    lease TEXT,
    lease_expires TIMESTAMP
);
CREATE INDEX uploads_expires_at ON uploads (expires_at);

CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    org TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT,
    starts_at TIMESTAMP,
    ends_at TIMESTAMP,
    gallery_count BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX events_org_id ON events (org, id);

CREATE TABLE event_managers (
    event_id BIGINT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    PRIMARY KEY (event_id, user_id)
);

CREATE TABLE gallery_items (
    id BIGSERIAL PRIMARY KEY,
    event_id BIGINT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    media_id BIGINT NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    UNIQUE (event_id, media_id)
);
CREATE INDEX gallery_items_event_position ON gallery_items (event_id, id);
CREATE INDEX gallery_items_media ON gallery_items (media_id);
