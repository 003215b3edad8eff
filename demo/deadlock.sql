-- One of two jobs that take the same two locks in opposite orders (part 2
-- of the demo).  psql variables: job (its application_name), first,
-- second (the lock names, in its order), gate (a double barrier that both
-- jobs enter once they hold their first lock, so that the deadlock
-- happens every time).  Fed to psql on standard input, so that an ERROR
-- reads as in an interactive session; what psql prints to stderr is the
-- transcript: the \warn lines say what the job does.
\set ON_ERROR_STOP off
\set VERBOSITY default
SET application_name = :'job';
SET log_lock_waits = on;            -- long zksync waits in the server log, as PostgreSQL's own
SET deadlock_timeout = '2s';        -- a zksync wait looks for a deadlock after this long
BEGIN;
SELECT zksync_xact_write_lock(:'first');
\warn holds write lock :"first", waits until the other job holds its first lock
SELECT zksync_dbarrier_enter(:'gate', 2);
\warn asks for write lock :"second"
SELECT zksync_xact_write_lock(:'second');
\if :ERROR
  \warn the lock call failed with SQLSTATE :SQLSTATE: rolls back (its locks go with the transaction) and runs the job again
  ROLLBACK;
  BEGIN;
  SELECT zksync_xact_write_lock(:'first');
  SELECT zksync_xact_write_lock(:'second');
  \warn holds :"first" and :"second" (second attempt), works
  SELECT pg_sleep(0.5);
  COMMIT;
  \warn JOB FINISHED (second attempt)
\else
  \warn holds :"first" and :"second", works
  SELECT pg_sleep(1);
  COMMIT;
  \warn JOB FINISHED
\endif
