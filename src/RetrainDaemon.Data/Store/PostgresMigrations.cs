namespace RetrainDaemon.Data.Store;

/// <summary>
/// The PostgreSQL store's schema history: the same versions, names, tables, columns, checks and indexes as
/// <see cref="SqliteMigrations"/>, in PostgreSQL's dialect. Each entry runs once, in order, inside one
/// transaction together with its row in <c>schema_migrations</c>; never edit an applied entry — add a new one
/// here and in <see cref="SqliteMigrations"/> with the same version.
/// </summary>
internal static class PostgresMigrations
{
    public static readonly IReadOnlyList<(int Version, string Name, string Sql)> All =
    [
        (1, "samples and feedback keyed by event id", """
            CREATE TABLE samples (
                -- An identity is backed by a sequence, which never hands out a number twice (rolled-back
                -- transactions leave gaps), so a watermark stays meaningful. GENERATED ALWAYS: nobody picks their own.
                seq          bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                event_id     text    NOT NULL UNIQUE,
                model        text    NOT NULL,
                source       text    NOT NULL,
                event_time   timestamptz,
                modality     text    NOT NULL CHECK (modality IN ('image', 'text')),
                split        text    NOT NULL CHECK (split IN ('train', 'holdout')),
                label        text,
                width        integer NOT NULL,
                height       integer NOT NULL,
                channels     integer NOT NULL,
                pixels       bytea,
                text         text,
                source_text  text,
                received_at  timestamptz NOT NULL
            );
            CREATE INDEX ix_samples_model_seq ON samples (model, seq);
            CREATE TABLE feedback (
                seq              bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                event_id         text    NOT NULL UNIQUE,
                model            text    NOT NULL,
                source           text    NOT NULL,
                event_time       timestamptz,
                generation_id    text    NOT NULL,
                version          text    NOT NULL,
                rating           integer CHECK (rating BETWEEN 1 AND 5),
                accepted         boolean,
                correction_text  text,
                correction_image bytea,
                rater            text,
                received_at      timestamptz NOT NULL
            );
            CREATE INDEX ix_feedback_model_seq ON feedback (model, seq);
            """),
        (2, "run ledger: fine-tune and analysis runs and their stages", """
            CREATE TABLE runs (
                run_id             text    PRIMARY KEY,
                model              text    NOT NULL,
                kind               text    NOT NULL CHECK (kind IN ('finetune', 'analysis')),
                status             text    NOT NULL CHECK (status IN ('running', 'promoted', 'rejected', 'failed', 'skipped', 'completed')),
                trigger            text    NOT NULL,
                started_at         timestamptz NOT NULL,
                finished_at        timestamptz,
                watermark          bigint,
                previous_watermark bigint,
                parent_version     integer,
                version            integer,
                directory          text,
                detail             text,
                attempts           integer NOT NULL DEFAULT 1,
                -- Insertion order, standing in for SQLite's implicit rowid: it breaks ties between runs (and
                -- stages) started within one clock tick the same way in both stores.
                row_order          bigint  GENERATED ALWAYS AS IDENTITY UNIQUE
            );
            CREATE INDEX ix_runs_model_kind_started ON runs (model, kind, started_at);
            CREATE TABLE run_stages (
                run_id      text    NOT NULL REFERENCES runs (run_id),
                attempt     integer NOT NULL,
                stage       text    NOT NULL,
                started_at  timestamptz NOT NULL,
                finished_at timestamptz,
                outcome     text    CHECK (outcome IN ('ok', 'failed', 'skipped', 'interrupted')),
                detail      text,
                row_order   bigint  GENERATED ALWAYS AS IDENTITY UNIQUE,
                PRIMARY KEY (run_id, attempt, stage)
            );
            """),
        (3, "generations served, feedback joined to them, corrections as samples", """
            CREATE TABLE generations (
                generation_id text    PRIMARY KEY,
                model         text    NOT NULL,
                version       integer NOT NULL,
                created_at    timestamptz NOT NULL,
                modality      text    NOT NULL CHECK (modality IN ('image', 'text')),
                slice         text,
                input         text
            );
            CREATE INDEX ix_generations_model_version ON generations (model, version);
            -- The slice of the generation a feedback row cites, copied at commit so per-slice analysis needs no join.
            ALTER TABLE feedback ADD COLUMN slice text;
            ALTER TABLE samples ADD COLUMN origin text NOT NULL DEFAULT 'producer' CHECK (origin IN ('producer', 'correction'));
            ALTER TABLE samples ADD COLUMN correction_of text;
            """),
    ];
}
