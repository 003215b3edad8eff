-- One worker of the nightly batch.  psql variables: cluster, worker, night,
-- participants.  Every step is a NOTICE "TL|<epoch>|<event>" for the timeline.
\set ON_ERROR_STOP on
SET application_name = :'worker';
SET client_min_messages = notice;
DO $$
DECLARE
  me text := current_setting('application_name');
  t0 timestamptz;
  waited int;
  ran boolean := false;
  holder text;
  night text := current_setting('demo.night');
  n int := current_setting('demo.participants')::int;
BEGIN
  -- 1. the operator's gate
  t0 := clock_timestamp();
  RAISE NOTICE 'TL|%|waits for the operator''s barrier "nightly-gate"', extract(epoch FROM t0);
  PERFORM zksync_barrier_wait('nightly-gate');
  waited := (extract(epoch FROM clock_timestamp() - t0) * 1000)::int;
  RAISE NOTICE 'TL|%|passed the gate after % ms', extract(epoch FROM clock_timestamp()), waited;

  -- 2. the job itself: exactly one worker, on any cluster, runs it
  t0 := clock_timestamp();
  IF zksync_try_write_lock('nightly-job', 500) THEN
    IF zksync_barrier_is_set('nightly-job-done-' || night) THEN
      RAISE NOTICE 'TL|%|got the lock, but tonight''s job is already done: skips', extract(epoch FROM clock_timestamp());
    ELSE
      RAISE NOTICE 'TL|%|RUNS THE JOB under write lock "nightly-job" (token %)',
        extract(epoch FROM clock_timestamp()), zksync_lock_token('nightly-job');
      PERFORM pg_sleep(1.5);   -- the batch job's work
      PERFORM zksync_barrier_set('nightly-job-done-' || night);
      RAISE NOTICE 'TL|%|job finished, marked done', extract(epoch FROM clock_timestamp());
    END IF;
    PERFORM zksync_write_unlock('nightly-job');
  ELSE
    SELECT owner::json->>'application_name' || ' on port ' || (owner::json->>'port')
      INTO holder FROM zksync_lock_holders('nightly-job') WHERE granted LIMIT 1;
    RAISE NOTICE 'TL|%|sees the job taken (held by %): waits for it to finish',
      extract(epoch FROM clock_timestamp()), coalesce(holder, 'someone');
    -- wait for the runner: a read lock is granted once the writer is done
    PERFORM zksync_read_lock('nightly-job');
    PERFORM zksync_read_unlock('nightly-job');
    RAISE NOTICE 'TL|%|saw the job finish after % ms', extract(epoch FROM clock_timestamp()),
      (extract(epoch FROM clock_timestamp() - t0) * 1000)::int;
  END IF;

  -- 3. a multi-cluster phase: all start together, all end together
  t0 := clock_timestamp();
  PERFORM zksync_dbarrier_enter('nightly-phase2-' || night, n);
  RAISE NOTICE 'TL|%|entered phase 2 with all % workers (waited % ms)', extract(epoch FROM clock_timestamp()), n,
    (extract(epoch FROM clock_timestamp() - t0) * 1000)::int;
  PERFORM pg_sleep(0.2 + random() * 0.8);   -- this worker's share of phase 2
  RAISE NOTICE 'TL|%|finished its share of phase 2, waits for the others', extract(epoch FROM clock_timestamp());
  t0 := clock_timestamp();
  PERFORM zksync_dbarrier_exit('nightly-phase2-' || night);
  RAISE NOTICE 'TL|%|left phase 2 with everyone (waited % ms)', extract(epoch FROM clock_timestamp()),
    (extract(epoch FROM clock_timestamp() - t0) * 1000)::int;
END $$;
