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
        (2, "run ledger: fine-tune and analysis runs and their stages", """
            CREATE TABLE runs (
                run_id             TEXT    PRIMARY KEY,
                model              TEXT    NOT NULL,
                kind               TEXT    NOT NULL CHECK (kind IN ('finetune', 'analysis')),
                status             TEXT    NOT NULL CHECK (status IN ('running', 'promoted', 'rejected', 'failed', 'skipped', 'completed')),
                trigger            TEXT    NOT NULL,
                started_at         TEXT    NOT NULL,
                finished_at        TEXT,
                watermark          INTEGER,
                previous_watermark INTEGER,
                parent_version     INTEGER,
                version            INTEGER,
                directory          TEXT,
                detail             TEXT,
                attempts           INTEGER NOT NULL DEFAULT 1
            );
            CREATE INDEX ix_runs_model_kind_started ON runs (model, kind, started_at);
            CREATE TABLE run_stages (
                run_id      TEXT    NOT NULL REFERENCES runs (run_id),
                attempt     INTEGER NOT NULL,
                stage       TEXT    NOT NULL,
                started_at  TEXT    NOT NULL,
                finished_at TEXT,
                outcome     TEXT    CHECK (outcome IN ('ok', 'failed', 'skipped', 'interrupted')),
                detail      TEXT,
                PRIMARY KEY (run_id, attempt, stage)
            );
            """),
        (3, "generations served, feedback joined to them, corrections as samples", """
            CREATE TABLE generations (
                generation_id TEXT    PRIMARY KEY,
                model         TEXT    NOT NULL,
                version       INTEGER NOT NULL,
                created_at    TEXT    NOT NULL,
                modality      TEXT    NOT NULL CHECK (modality IN ('image', 'text')),
                slice         TEXT,
                input         TEXT
            ) WITHOUT ROWID;
            CREATE INDEX ix_generations_model_version ON generations (model, version);
            -- The slice of the generation a feedback row cites, copied at commit so per-slice analysis needs no join.
            ALTER TABLE feedback ADD COLUMN slice TEXT;
            ALTER TABLE samples ADD COLUMN origin TEXT NOT NULL DEFAULT 'producer' CHECK (origin IN ('producer', 'correction'));
            ALTER TABLE samples ADD COLUMN correction_of TEXT;
            """),
    ];
}
