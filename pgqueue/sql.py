"""Every SQL statement pgqueue runs, named ``EntityVerb`` so related ones sort together.

Values are always bound parameters (``%(name)s``, psycopg's style). Each state change is one
statement guarded by the state it expects, so running it twice, or after another worker moved
the job, changes nothing: callers compare what came back with what they asked for and log the
difference. The retry delay lives in the SQL function ``pgqueue_retry_delay`` (migration 0001).
"""

from __future__ import annotations

# --- jobs: the worker's hot path -----------------------------------------------------------

JOB_CLAIM = """
WITH due AS (
    SELECT id
    FROM extraction_jobs
    WHERE status = 'pending'
      AND next_retry_at <= coalesce(%(now)s::timestamptz, now())
      -- Only a registered worker claims: one declared lost (and deleted from the registry)
      -- claims nothing until its heartbeat has registered it again.
      AND EXISTS (SELECT 1 FROM pgqueue_workers WHERE id = %(worker_id)s)
      -- 0 takes any job; a worker's slots reserved for less urgent work pass a higher bound.
      AND priority >= %(min_priority)s
    -- Most urgent first (index ix_extraction_jobs_claim: pending jobs by priority, due time).
    ORDER BY priority, next_retry_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE extraction_jobs AS job
SET status = 'processing',
    worker_id = %(worker_id)s,
    claim_token = gen_random_uuid(),
    started_at = now(),
    updated_at = now()
FROM due
WHERE job.id = due.id
RETURNING job.id::text AS id, job.claim_token::text AS claim_token, job.filename, job.file_url,
          job.file_size, job.format, job.options::text AS options, job.retry_count,
          job.max_retries, job.priority
"""

# A batch of outcomes, fenced on the claim that computed each one: only a row still processing
# under that claim's token changes, so a late outcome of an earlier attempt (or of a job
# cancelled, rescued or handed back meanwhile) changes nothing. ``result`` set means success;
# otherwise ``retryable`` decides between a retry (while retries are left) and failure. Every
# failed attempt is appended to ``error_history``. The token stays on the row, so a retried
# write-back whose first answer was lost can tell that it was written.
#
# A row locked by someone else's open transaction (a web request cancelling the job, or
# enqueuing its attachment again) is skipped, never waited for. One row comes back per outcome,
# with its ``fate``: ``written``; ``busy`` (locked: write it again later); ``written_before``
# (this claim's outcome is already there); ``lost`` (the claim no longer holds the row).
JOB_FINISH_MANY = """
WITH outcome AS (
    SELECT *
    FROM unnest(
        %(ids)s::uuid[], %(claim_tokens)s::uuid[], %(results)s::jsonb[], %(retryable)s::boolean[],
        %(error_types)s::text[], %(messages)s::text[], %(extractors)s::text[],
        %(extractor_versions)s::text[]
    ) AS outcome(id, claim_token, result, retryable, error_type, message, extractor,
                 extractor_version)
),
held AS (
    SELECT job.id, outcome.result, outcome.error_type, outcome.message, outcome.extractor,
           outcome.extractor_version,
           CASE
               WHEN outcome.result IS NOT NULL THEN 'completed'
               WHEN outcome.retryable AND job.retry_count < job.max_retries THEN 'pending'
               ELSE 'failed'
           END AS new_status
    FROM extraction_jobs AS job
    JOIN outcome ON outcome.id = job.id
    WHERE job.status = 'processing' AND job.claim_token = outcome.claim_token
    FOR UPDATE OF job SKIP LOCKED
),
written AS (
    UPDATE extraction_jobs AS job
    SET status = held.new_status,
        result = held.result,
        -- Who wrote the result: set with it, cleared with it.
        extractor = held.extractor,
        extractor_version = held.extractor_version,
        error_message = held.message,
        retry_count = job.retry_count + (held.new_status = 'pending')::int,
        next_retry_at = CASE
            WHEN held.new_status = 'pending' THEN now() + pgqueue_retry_delay(
                job.retry_count, %(backoff_base)s, %(backoff_factor)s, %(backoff_cap)s,
                %(backoff_jitter)s)
            ELSE job.next_retry_at
        END,
        completed_at = CASE WHEN held.new_status = 'pending' THEN NULL ELSE now() END,
        error_history = CASE
            WHEN held.result IS NOT NULL THEN job.error_history
            ELSE job.error_history || jsonb_build_array(jsonb_build_object(
                'at', now(), 'attempt', job.retry_count + 1, 'error_type', held.error_type,
                'message', held.message, 'worker_id', job.worker_id,
                'retried', held.new_status = 'pending'))
        END,
        updated_at = now()
    FROM held
    WHERE job.id = held.id
    RETURNING job.id, job.status, job.retry_count, job.next_retry_at
)
SELECT outcome.id::text AS id, written.status, written.retry_count, written.next_retry_at,
       CASE
           WHEN written.id IS NOT NULL THEN 'written'
           -- Read as the statement began: a row skipped as locked still shows this claim.
           ELSE coalesce((
               SELECT CASE
                          WHEN job.claim_token IS DISTINCT FROM outcome.claim_token THEN 'lost'
                          WHEN job.status = 'processing' THEN 'busy'
                          ELSE 'written_before'
                      END
               FROM extraction_jobs AS job WHERE job.id = outcome.id), 'lost')
       END AS fate
FROM outcome
LEFT JOIN written ON written.id = outcome.id
"""

# Jobs this worker holds in the table under a claim it does not know go back to pending, due
# now, without counting an attempt: a claim that committed while its answer was lost with the
# connection (held = the tokens of the claims this worker knows), or, at shutdown, every job
# it stopped (held = none). Rows locked by someone else's transaction are skipped: whatever
# that transaction does to them, they are no longer this worker's to hand back.
JOB_RELEASE_ORPHANS = """
WITH orphan AS (
    SELECT id
    FROM extraction_jobs
    WHERE worker_id = %(worker_id)s AND status = 'processing'
      AND NOT coalesce(claim_token = ANY(%(held)s::uuid[]), false)
    FOR UPDATE SKIP LOCKED
)
UPDATE extraction_jobs AS job
SET status = 'pending', next_retry_at = now(), claim_token = NULL, updated_at = now()
FROM orphan
WHERE job.id = orphan.id
RETURNING job.id::text AS id
"""

JOB_NEXT_DUE = """
SELECT min(next_retry_at) AS next_due FROM extraction_jobs WHERE status = 'pending'
"""

JOB_ANY_DUE = """
SELECT EXISTS (
    SELECT 1 FROM extraction_jobs WHERE status = 'pending' AND next_retry_at <= now()
) AS due
"""

# --- jobs: what the web app and operators do -----------------------------------------------

JOB_CANCEL = """
WITH cancelled AS (
    UPDATE extraction_jobs
    SET status = 'cancelled', completed_at = now(), updated_at = now(), claim_token = NULL,
        error_message = %(reason)s
    WHERE id = CAST(%(id)s AS uuid) AND status IN ('pending', 'processing')
    RETURNING id::text AS id
)
SELECT id, pg_notify('pgqueue_cancel', id) IS NULL AS notified FROM cancelled
"""

JOB_GET_STATUS = """
SELECT id::text AS id, status FROM extraction_jobs WHERE id = CAST(%(id)s AS uuid)
"""

# An operator's retry: a failed or cancelled job gets a fresh set of retries, due now.
JOB_RETRY = """
WITH retried AS (
    UPDATE extraction_jobs
    SET status = 'pending', retry_count = 0, next_retry_at = now(), completed_at = NULL,
        result = NULL, updated_at = now()
    WHERE id = CAST(%(id)s AS uuid) AND status IN ('failed', 'cancelled')
    RETURNING id::text AS id
)
SELECT id, pg_notify('pgqueue_jobs', '') IS NULL AS notified FROM retried
"""

# --- workers: registry, heartbeat, rescue ----------------------------------------------------

# A worker declared lost registers again under the same id: its claims were rescued, and the
# claim tokens fence out whatever its stopped runs still produce.
WORKER_REGISTER = """
INSERT INTO pgqueue_workers (id, hostname, pid, slots, version, formats)
VALUES (%(worker_id)s, %(hostname)s, %(pid)s, %(slots)s, %(version)s, %(formats)s)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), updated_at = now()
"""

# The formats the registered workers extract (their own registry, plugins included).
WORKER_FORMATS = """
SELECT DISTINCT unnest(formats) AS format FROM pgqueue_workers
"""

WORKER_DEREGISTER = """
DELETE FROM pgqueue_workers WHERE id = %(worker_id)s
"""

# Proves this worker alive, and says which of the claims it is running no longer hold their
# rows (cancelled, or rescued while it was cut off), so it can stop those runs.
WORKER_HEARTBEAT = """
WITH beat AS (
    UPDATE pgqueue_workers SET heartbeat_at = now(), updated_at = now()
    WHERE id = %(worker_id)s
    RETURNING id
)
SELECT EXISTS (SELECT 1 FROM beat) AS registered,
       ARRAY(
           SELECT held.claim_token::text
           FROM unnest(%(held_ids)s::uuid[], %(held_tokens)s::uuid[]) AS held(id, claim_token)
           WHERE NOT EXISTS (
               SELECT 1 FROM extraction_jobs AS job
               WHERE job.id = held.id AND job.status = 'processing'
                 AND job.claim_token = held.claim_token)
       ) AS lost
"""

# Maintenance statements run in one worker at a time: each takes a transaction-level advisory
# lock inside itself and does nothing without it. No lock outlives its statement, so a worker
# frozen or cut off while "leading" cannot block maintenance for everyone else.

# Jobs held by a worker that stopped heartbeating (or that is not registered at all) go back
# to pending as a failed attempt, or fail when their retries are used up. Dead workers leave
# the registry in the same statement, and idle workers are woken to claim the rescued jobs.
JOB_RESCUE_LOST = """
WITH lead AS (
    -- Nobody could heartbeat while the server was down: right after a restart every heartbeat
    -- looks stale, so nothing counts as lost until the server has run for a worker timeout.
    -- ``now`` may be given (tests move the clock instead of sleeping).
    SELECT pg_try_advisory_xact_lock(%(lock_key)s)
           AND pg_postmaster_start_time() < stale.before AS leader,
           stale.before
    FROM (SELECT coalesce(%(now)s::timestamptz, now())
                 - make_interval(secs => %(worker_timeout)s) AS before) AS stale
),
dead AS (
    DELETE FROM pgqueue_workers
    WHERE heartbeat_at < (SELECT before FROM lead)
      AND (SELECT leader FROM lead)
    RETURNING id
),
lost AS (
    SELECT job.id
    FROM extraction_jobs AS job
    WHERE job.status = 'processing'
      AND (SELECT leader FROM lead)
      AND NOT EXISTS (
          SELECT 1 FROM pgqueue_workers AS worker
          WHERE worker.id = job.worker_id
            AND worker.heartbeat_at >= (SELECT before FROM lead)
      )
    FOR UPDATE OF job SKIP LOCKED
),
rescued AS (
    UPDATE extraction_jobs AS job
    SET status = CASE WHEN job.retry_count < job.max_retries THEN 'pending' ELSE 'failed' END,
        retry_count = job.retry_count + (job.retry_count < job.max_retries)::int,
        next_retry_at = CASE
            WHEN job.retry_count < job.max_retries THEN now() + pgqueue_retry_delay(
                job.retry_count, %(backoff_base)s, %(backoff_factor)s, %(backoff_cap)s,
                %(backoff_jitter)s)
            ELSE job.next_retry_at
        END,
        completed_at = CASE WHEN job.retry_count < job.max_retries THEN NULL ELSE now() END,
        error_message = 'worker lost: the worker running this job stopped heartbeating',
        error_history = job.error_history || jsonb_build_array(jsonb_build_object(
            'at', now(), 'attempt', job.retry_count + 1, 'error_type', 'WorkerLost',
            'message', 'worker lost: the worker running this job stopped heartbeating',
            'worker_id', job.worker_id, 'retried', job.retry_count < job.max_retries)),
        claim_token = NULL,
        updated_at = now()
    FROM lost
    WHERE job.id = lost.id
    RETURNING job.id::text AS id, job.status, job.retry_count, job.worker_id::text AS worker_id
)
SELECT rescued.*, (SELECT count(*) FROM dead) AS dead_workers,
       pg_notify('pgqueue_jobs', '') IS NULL AS notified
FROM rescued
"""

# Retention, a bounded batch at a time (up to ``batch`` rows of each kind): failed and cancelled
# jobs, and completed ones whose result a newer completed job of the same attachment replaced
# (``superseded_by``, kept by a trigger), older than ``older_than_seconds``; and, only when
# ``unlinked_older_than_seconds`` is given, completed jobs without an attachment (no record_id or
# no attachment_id: the web app may hold their ids). The latest result of an attachment is never
# deleted. Each kind is read from a partial index that holds only that kind. The maintenance
# loop passes its lock key (one worker at a time); ``pgqueue purge`` passes NULL: it is asked
# for, not scheduled.
JOB_PRUNE_FINISHED = """
WITH lead AS (
    SELECT CAST(%(lock_key)s AS bigint) IS NULL
           OR pg_try_advisory_xact_lock(CAST(%(lock_key)s AS bigint)) AS leader
),
replaced AS (
    SELECT id FROM extraction_jobs
    WHERE (status IN ('failed', 'cancelled') OR superseded_by IS NOT NULL)
      AND completed_at < now() - make_interval(secs => %(older_than_seconds)s)
      AND (SELECT leader FROM lead)
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
),
unlinked AS (
    SELECT id FROM extraction_jobs
    WHERE status = 'completed' AND (record_id IS NULL OR attachment_id IS NULL)
      AND completed_at < now() - make_interval(
          secs => CAST(%(unlinked_older_than_seconds)s AS double precision))
      AND (SELECT leader FROM lead)
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
)
-- An id array, not a join: a join to the picked rows may hash the whole table.
DELETE FROM extraction_jobs AS job
WHERE job.id = ANY(ARRAY(SELECT id FROM replaced UNION ALL SELECT id FROM unlinked))
RETURNING CAST(job.id AS text) AS id
"""

# Due jobs and the age of the oldest one, for metrics (bounded: counts at most 10,000).
QUEUE_SAMPLE = """
SELECT (SELECT count(*) FROM (
            SELECT 1 FROM extraction_jobs
            WHERE status = 'pending' AND next_retry_at <= now() LIMIT 10000) AS due_jobs) AS due,
       extract(epoch FROM now() - (
            SELECT min(next_retry_at) FROM extraction_jobs
            WHERE status = 'pending' AND next_retry_at <= now()))::float AS lag_seconds
"""

MAINTENANCE_LOCK_KEY = 7341591

SCHEMA_CHECK = """
SELECT to_regclass('extraction_jobs')::text AS jobs, to_regclass('pgqueue_workers')::text AS workers
"""

# What a worker reports about the server's connections after it was refused one.
SERVER_CAPACITY = """
SELECT current_setting('max_connections')::int AS max_connections,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS in_use
"""

NOTIFY_JOBS = "NOTIFY pgqueue_jobs"
LISTEN_JOBS = "LISTEN pgqueue_jobs"
LISTEN_CANCEL = "LISTEN pgqueue_cancel"
CHANNEL_JOBS = "pgqueue_jobs"
CHANNEL_CANCEL = "pgqueue_cancel"

# --- enqueue ---------------------------------------------------------------------------------

# One job. A second enqueue of an attachment that already has an active job returns that job
# (the no-op update makes RETURNING see it; ``xmax <> 0`` tells it was not inserted now).
# Casts are written CAST(... AS ...) so the same text serves psycopg and SQLAlchemy ``text()``.
JOB_ENQUEUE = """
INSERT INTO extraction_jobs
    (filename, file_url, file_size, format, record_id, field_id, attachment_id, options,
     max_retries, priority)
VALUES
    (%(filename)s, %(file_url)s, %(file_size)s, %(format)s, CAST(%(record_id)s AS uuid),
     CAST(%(field_id)s AS uuid), CAST(%(attachment_id)s AS uuid), CAST(%(options)s AS jsonb),
     %(max_retries)s, %(priority)s)
ON CONFLICT (record_id, attachment_id)
    WHERE status IN ('pending', 'processing') AND attachment_id IS NOT NULL
DO UPDATE SET updated_at = extraction_jobs.updated_at
RETURNING CAST(id AS text) AS id, status, (xmax <> 0) AS existing
"""

# Bulk, for rows without an attachment: they cannot conflict, so they go straight in.
JOB_COPY = """
COPY extraction_jobs
    (filename, file_url, file_size, format, record_id, field_id, attachment_id, options,
     max_retries, priority)
FROM STDIN
"""

# Bulk, for rows with an attachment: COPY into a session-local staging table, then one
# INSERT ... SELECT that skips attachments that already have an active job.
JOB_STAGING_CREATE = """
CREATE TEMP TABLE IF NOT EXISTS pgqueue_incoming (
    filename text, file_url text, file_size bigint, format text, record_id uuid,
    field_id uuid, attachment_id uuid, options jsonb, max_retries integer, priority smallint
) ON COMMIT DELETE ROWS
"""

JOB_STAGING_COPY = """
COPY pgqueue_incoming
    (filename, file_url, file_size, format, record_id, field_id, attachment_id, options,
     max_retries, priority)
FROM STDIN
"""

JOB_STAGING_INSERT = """
INSERT INTO extraction_jobs
    (filename, file_url, file_size, format, record_id, field_id, attachment_id, options,
     max_retries, priority)
SELECT filename, file_url, file_size, format, record_id, field_id, attachment_id, options,
       max_retries, priority
FROM pgqueue_incoming
ON CONFLICT (record_id, attachment_id)
    WHERE status IN ('pending', 'processing') AND attachment_id IS NOT NULL
DO NOTHING
"""

# The staging table is empty between calls: each call deletes what it staged (cheaper than
# TRUNCATE for a thousand rows), and ON COMMIT DELETE ROWS empties it after a failed call.
JOB_STAGING_CLEAR = "DELETE FROM pgqueue_incoming"

# --- reading and steering jobs: the web app and the operator's CLI -------------------------
# Written with CAST(... AS ...) where a value meets a uuid column, so the same text serves
# psycopg and SQLAlchemy ``text()`` with any driver.

JOB_GET = """
SELECT CAST(id AS text) AS id, filename, file_url, file_size, format,
       CAST(record_id AS text) AS record_id, CAST(field_id AS text) AS field_id,
       CAST(attachment_id AS text) AS attachment_id, status, options, result, error_message,
       error_history, retry_count, max_retries, next_retry_at, started_at, completed_at,
       CAST(worker_id AS text) AS worker_id, created_at, updated_at, priority,
       CAST(superseded_by AS text) AS superseded_by, extractor, extractor_version
FROM extraction_jobs
WHERE id = CAST(%(id)s AS uuid)
"""

# Newest first; empty filter arrays match everything. ``total`` counts every match (before
# LIMIT), for paging.
JOB_LIST = """
SELECT CAST(id AS text) AS id, filename, format, status, retry_count, max_retries,
       CAST(record_id AS text) AS record_id, created_at, started_at, completed_at,
       next_retry_at, left(error_message, 200) AS error_message, count(*) OVER () AS total
FROM extraction_jobs
WHERE (cardinality(CAST(%(statuses)s AS text[])) = 0 OR status = ANY(CAST(%(statuses)s AS text[])))
  AND (cardinality(CAST(%(formats)s AS text[])) = 0 OR format = ANY(CAST(%(formats)s AS text[])))
  AND (CAST(%(record_id)s AS uuid) IS NULL OR record_id = CAST(%(record_id)s AS uuid))
  AND (CAST(%(since_seconds)s AS double precision) IS NULL
       OR created_at >= now() - make_interval(secs => CAST(%(since_seconds)s AS double precision)))
ORDER BY created_at DESC, id
LIMIT %(limit)s OFFSET %(offset)s
"""

# An operator's retry of every failed job matching the filters, a bounded batch at a time, with
# the same fence and the same reset as JOB_RETRY. ``before`` (taken once, from the database's
# clock) keeps a job that is retried and fails again during the run from being picked twice.
JOB_RETRY_FAILED_MANY = """
WITH picked AS (
    SELECT id
    FROM extraction_jobs
    WHERE status = 'failed'
      AND completed_at <= CAST(%(before)s AS timestamptz)
      AND (cardinality(CAST(%(formats)s AS text[])) = 0 OR format = ANY(CAST(%(formats)s AS text[])))
      AND (CAST(%(since_seconds)s AS double precision) IS NULL
           OR completed_at >= CAST(%(before)s AS timestamptz)
                              - make_interval(secs => CAST(%(since_seconds)s AS double precision)))
    ORDER BY completed_at
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
),
retried AS (
    UPDATE extraction_jobs AS job
    SET status = 'pending', retry_count = 0, next_retry_at = now(), completed_at = NULL,
        result = NULL, updated_at = now()
    FROM picked
    WHERE job.id = picked.id AND job.status = 'failed'
    RETURNING CAST(job.id AS text) AS id
)
SELECT id, pg_notify('pgqueue_jobs', '') IS NULL AS notified FROM retried
"""

CLOCK_NOW = "SELECT now() AS now"

# --- reports: ``pgqueue status``, over the dashboard views of migration 0002 ---------------

REPORT_STATUS_BY_FORMAT = """
SELECT format, status, jobs FROM pgqueue_status_by_format ORDER BY format, status
"""

REPORT_QUEUE_LAG = """
SELECT due_jobs, oldest_due_at, lag_seconds FROM pgqueue_queue_lag
"""

REPORT_THROUGHPUT = """
SELECT count(*) FILTER (WHERE status = 'completed'
                        AND completed_at >= now() - interval '5 minutes') AS completed_5m,
       count(*) FILTER (WHERE status = 'failed'
                        AND completed_at >= now() - interval '5 minutes') AS failed_5m,
       count(*) FILTER (WHERE status = 'completed') AS completed_1h,
       count(*) FILTER (WHERE status = 'failed') AS failed_1h
FROM extraction_jobs
WHERE status IN ('completed', 'failed') AND completed_at >= now() - interval '1 hour'
"""

REPORT_LIVE_WORKERS = """
SELECT CAST(worker_id AS text) AS worker_id, hostname, pid, slots, version, started_at,
       heartbeat_age_seconds, jobs_held, CAST(held_job_ids AS text[]) AS held_job_ids
FROM pgqueue_live_workers
ORDER BY hostname, pid
"""

REPORT_FAILURE_REASONS = """
SELECT error_type, message_prefix, jobs, last_seen
FROM pgqueue_failure_reasons
ORDER BY jobs DESC, last_seen DESC
LIMIT %(limit)s
"""

JOB_COUNT_FINISHED = """
SELECT count(*) FILTER (WHERE status IN ('completed', 'failed', 'cancelled')) AS finished
FROM extraction_jobs
WHERE id = ANY(CAST(%(ids)s AS uuid[]))
"""

# ``pgqueue purge --include-latest``: every finished job older than asked, latest results
# included, a bounded batch at a time. (Without the flag, purge runs JOB_PRUNE_FINISHED.)
JOB_PURGE_ALL_FINISHED = """
WITH old AS (
    SELECT id FROM extraction_jobs
    WHERE status IN ('completed', 'failed', 'cancelled')
      AND completed_at < now() - make_interval(secs => %(older_than_seconds)s)
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM extraction_jobs AS job USING old WHERE job.id = old.id
RETURNING CAST(job.id AS text) AS id
"""

# --- the web dashboard (pgqueue.web) ----------------------------------------------------------
# Pages by keyset on (created_at, id), newest first, on ix_extraction_jobs_created: a page deep
# in a million rows costs what the first one does. A filter left NULL matches everything.

_WEB_JOB_MATCH = """
      (CAST(%(status)s AS text) IS NULL OR status = CAST(%(status)s AS text))
  AND (CAST(%(format)s AS text) IS NULL OR format = CAST(%(format)s AS text))
  AND (CAST(%(record_id)s AS uuid) IS NULL OR record_id = CAST(%(record_id)s AS uuid))
  AND (CAST(%(text)s AS text) IS NULL
       OR strpos(lower(filename), lower(CAST(%(text)s AS text))) > 0)
"""

WEB_JOB_PAGE = """
SELECT CAST(id AS text) AS id, filename, format, status, retry_count, max_retries,
       CAST(record_id AS text) AS record_id, created_at, completed_at,
       left(error_message, 200) AS error_message
FROM extraction_jobs
WHERE""" + _WEB_JOB_MATCH + """
  AND (CAST(%(after_at)s AS timestamptz) IS NULL
       OR (created_at, id) < (CAST(%(after_at)s AS timestamptz), CAST(%(after_id)s AS uuid)))
ORDER BY extraction_jobs.created_at DESC, extraction_jobs.id DESC
LIMIT %(limit)s
"""

# The ids an action on "every job matching this filter" touches, in the statuses it applies to;
# each is then changed through the same fenced statement as a single job.
WEB_JOB_IDS_MATCHING = """
SELECT CAST(id AS text) AS id
FROM extraction_jobs
WHERE""" + _WEB_JOB_MATCH + """
  AND status = ANY(CAST(%(statuses)s AS text[]))
ORDER BY extraction_jobs.created_at DESC, extraction_jobs.id DESC
LIMIT %(limit)s
"""

# Jobs per status, from the status index alone (an index-only scan on a vacuumed table).
WEB_STATUS_COUNTS = """
SELECT status, count(*) AS jobs FROM extraction_jobs GROUP BY status
"""

# Per format: the active jobs now, and the jobs finished in the last 24 hours (through
# ix_extraction_jobs_finished), so the overview never counts a whole history.
WEB_FORMATS_NOW = """
SELECT format, status, count(*) AS jobs
FROM extraction_jobs
WHERE status IN ('pending', 'processing')
GROUP BY format, status
UNION ALL
SELECT format, status, count(*) AS jobs
FROM extraction_jobs
WHERE completed_at >= now() - interval '24 hours'
GROUP BY format, status
"""

# The overview's failures of the last 24 hours by error type (the failures page groups every
# failed job by normalised message, through the pgqueue_failure_reasons view).
WEB_RECENT_FAILURES = """
SELECT coalesce(error_history -> -1 ->> 'error_type', 'Unknown') AS error_type,
       count(*) AS jobs, max(completed_at) AS last_seen
FROM extraction_jobs
WHERE status = 'failed' AND completed_at >= now() - interval '24 hours'
GROUP BY 1
ORDER BY jobs DESC, last_seen DESC
LIMIT 10
"""

# What ``pgqueue purge --dry-run`` reports: finished jobs older than asked, by what retention
# makes of them.
JOB_COUNT_PURGEABLE = """
SELECT count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE status = 'completed' AND superseded_by IS NOT NULL) AS superseded,
       count(*) FILTER (WHERE status = 'completed' AND superseded_by IS NULL
                        AND record_id IS NOT NULL AND attachment_id IS NOT NULL) AS latest,
       count(*) FILTER (WHERE status = 'completed'
                        AND (record_id IS NULL OR attachment_id IS NULL)) AS unlinked
FROM extraction_jobs
WHERE status IN ('completed', 'failed', 'cancelled')
  AND completed_at < now() - make_interval(secs => %(older_than_seconds)s)
"""

# --- re-extraction (``pgqueue reextract``) -----------------------------------------------------
# The results it looks at: the latest completed job of each attachment (``superseded_by`` NULL)
# of one format, written by an extractor version older than ``before_version`` (versions are
# whole numbers; "unknown" and other text count as older), finished within the window. Read in
# id order, a batch after ``after_id`` at a time, so a big table is read once in all.

# A new bulk job per such result, with the old job's file, attachment and options; an
# attachment with an active job is skipped (the same partial unique index as enqueue). The old
# result stays the latest until the new job completes. Returns the batch's last id (NULL when
# nothing was left), how many results it picked and how many jobs it enqueued. A dry run runs
# it in a transaction that is rolled back.
JOB_REEXTRACT_OUTDATED = """
WITH picked AS (
    SELECT id, filename, file_url, file_size, format, record_id, field_id, attachment_id,
           options, max_retries
    FROM extraction_jobs AS job
    WHERE job.id > CAST(%(after_id)s AS uuid)
      AND job.status = 'completed' AND job.superseded_by IS NULL
      AND job.record_id IS NOT NULL AND job.attachment_id IS NOT NULL
      AND job.format = %(format)s
      AND CASE WHEN job.extractor_version ~ '^[0-9]{1,9}$'
               THEN CAST(job.extractor_version AS integer) < %(before_version)s ELSE true END
      AND (CAST(%(since_seconds)s AS double precision) IS NULL OR job.completed_at >= now()
           - make_interval(secs => CAST(%(since_seconds)s AS double precision)))
      AND (CAST(%(until_seconds)s AS double precision) IS NULL OR job.completed_at < now()
           - make_interval(secs => CAST(%(until_seconds)s AS double precision)))
    ORDER BY job.id
    LIMIT %(batch)s
),
enqueued AS (
    INSERT INTO extraction_jobs
        (filename, file_url, file_size, format, record_id, field_id, attachment_id, options,
         max_retries, priority)
    SELECT filename, file_url, file_size, format, record_id, field_id, attachment_id, options,
           max_retries, %(priority)s
    FROM picked
    ON CONFLICT (record_id, attachment_id)
        WHERE status IN ('pending', 'processing') AND attachment_id IS NOT NULL
    DO NOTHING
    RETURNING id
)
SELECT (SELECT CAST(id AS text) FROM picked ORDER BY id DESC LIMIT 1) AS last_id,
       (SELECT count(*) FROM picked) AS picked,
       (SELECT count(*) FROM enqueued) AS enqueued
"""
