namespace RetrainDaemon.Data.Store;

/// <summary>
/// The store's schema history. Each entry runs once, in order, inside one transaction together
/// with its row in <c>schema_migrations</c>; never edit an applied entry — add a new one.
/// </summary>
internal static class SqliteMigrations
{
    public static readonly IReadOnlyList<(int Version, string Name, string Sql)> All =
    [
        (1, "samples and feedback keyed by event id", """
            CREATE TABLE samples (
                seq          INTEGER PRIMARY KEY AUTOINCREMENT, -- AUTOINCREMENT: never reused, so a watermark stays meaningful
                event_id     TEXT    NOT NULL UNIQUE,
                model        TEXT    NOT NULL,
                source       TEXT    NOT NULL,
                event_time   TEXT,
                modality     TEXT    NOT NULL CHECK (modality IN ('image', 'text')),
                split        TEXT    NOT NULL CHECK (split IN ('train', 'holdout')),
                label        TEXT,
                width        INTEGER NOT NULL,
                height       INTEGER NOT NULL,
                channels     INTEGER NOT NULL,
                pixels       BLOB,
                text         TEXT,
                source_text  TEXT,
                received_at  TEXT    NOT NULL
            );
            CREATE INDEX ix_samples_model_seq ON samples (model, seq);
            CREATE TABLE feedback (
                seq              INTEGER PRIMARY KEY AUTOINCREMENT,
                event_id         TEXT    NOT NULL UNIQUE,
                model            TEXT    NOT NULL,
                source           TEXT    NOT NULL,
                event_time       TEXT,
                generation_id    TEXT    NOT NULL,
                version          TEXT    NOT NULL,
                rating           INTEGER CHECK (rating BETWEEN 1 AND 5),
                accepted         INTEGER,
                correction_text  TEXT,
                correction_image BLOB,
                rater            TEXT,
                received_at      TEXT    NOT NULL
            );
            CREATE INDEX ix_feedback_model_seq ON feedback (model, seq);
            """),
    ];
}
