-- Vigil schema 17 (PostgreSQL): a person's photo, so responders recognise
-- the person they are sent to. The server stores only images it
-- re-encoded itself (JPEG, at most 512 px on the long side, no EXIF).
CREATE TABLE person_photos (
    person_id    text PRIMARY KEY REFERENCES people (id),
    content_type text NOT NULL,
    bytes        bytea NOT NULL,
    updated_at   timestamptz NOT NULL
);
