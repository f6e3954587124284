//! Table definitions, shared by both backends (migrations/sqlite, migrations/postgres).

diesel::table! {
    media (id) {
        id -> BigInt,
        uuid -> Text,
        org -> Text,
        uploaded_by -> Text,
        filename -> Text,
        content_type -> Text,
        size -> BigInt,
        sha256 -> Text,
        md5 -> Text,
        kind -> Text,
        width -> Nullable<Integer>,
        height -> Nullable<Integer>,
        created_at -> Timestamp,
        blob_key -> Nullable<Text>,
        duration_ms -> Nullable<BigInt>,
    }
}

diesel::table! {
    blobs (blob_key) {
        blob_key -> Text,
        sha256 -> Text,
        size -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    renditions (blob_key, variant) {
        blob_key -> Text,
        variant -> Text,
        status -> Text,
        content_type -> Nullable<Text>,
        size -> Nullable<BigInt>,
        sha256 -> Nullable<Text>,
        width -> Nullable<Integer>,
        height -> Nullable<Integer>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    catalog_items (id) {
        id -> BigInt,
        org -> Text,
        kind -> Text,
        product_id -> Nullable<BigInt>,
        name -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    catalog_item_media (item_id, position) {
        item_id -> BigInt,
        position -> Integer,
        media_id -> BigInt,
    }
}

diesel::table! {
    uploads (id) {
        id -> Text,
        org -> Text,
        user_id -> Text,
        filename -> Text,
        byte_offset -> BigInt,
        total -> Nullable<BigInt>,
        sha256_state -> Binary,
        md5_state -> Binary,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        media_id -> Nullable<BigInt>,
        lease -> Nullable<Text>,
        lease_expires -> Nullable<Timestamp>,
        staging_state -> Nullable<Text>,
        event_id -> Nullable<BigInt>,
        concat -> Nullable<Text>,
        final_id -> Nullable<Text>,
    }
}

diesel::table! {
    events (id) {
        id -> BigInt,
        org -> Text,
        title -> Text,
        description -> Nullable<Text>,
        starts_at -> Nullable<Timestamp>,
        ends_at -> Nullable<Timestamp>,
        gallery_count -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    event_managers (event_id, user_id) {
        event_id -> BigInt,
        user_id -> Text,
    }
}

diesel::table! {
    gallery_items (id) {
        id -> BigInt,
        event_id -> BigInt,
        media_id -> BigInt,
    }
}

diesel::joinable!(gallery_items -> media (media_id));
diesel::joinable!(gallery_items -> events (event_id));
diesel::joinable!(event_managers -> events (event_id));
diesel::joinable!(catalog_item_media -> catalog_items (item_id));
diesel::joinable!(catalog_item_media -> media (media_id));
diesel::allow_tables_to_appear_in_same_query!(
    media,
    uploads,
    events,
    event_managers,
    gallery_items,
    blobs,
    renditions,
    catalog_items,
    catalog_item_media
);
