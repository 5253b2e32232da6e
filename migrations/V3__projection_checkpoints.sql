-- How far a projection rebuild has read the event log (global position), so
-- an interrupted rebuild resumes where it stopped instead of starting over.
CREATE TABLE projection_checkpoints (
    name        text PRIMARY KEY,
    position    bigint NOT NULL CHECK (position >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
