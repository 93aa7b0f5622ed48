-- Vigil schema 17 (SQLite): a person's photo, so responders recognise the
-- person they are sent to. The server stores only images it re-encoded
-- itself (JPEG, at most 512 px on the long side, no EXIF).
CREATE TABLE person_photos (
    person_id    TEXT PRIMARY KEY REFERENCES people (id),
    content_type TEXT NOT NULL,
    bytes        BLOB NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;
