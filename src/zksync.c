/*-------------------------------------------------------------------------
 * zksync.c
 *	  _PG_init and every SQL-callable function.
 *
 * The functions here check their arguments (a NULL is an ERROR with
 * SQLSTATE 22004, never a silent NULL result: the SQL functions are not
 * STRICT on purpose), make one call down, and form the result rows: into
 * a recipe (lock.c, semaphore.c, barrier.c) for the locks, leases and
 * barriers, into the views' reader (waits.c) for zksync_waits(),
 * zksync_blocking() and zksync_lock_holders(), and into the session
 * (session.c) for zksync_session().  _PG_init binds our message catalog
 * (nls.mk) and calls each module's init; the settings live in settings.c.
 *
 * What can go wrong here is a bad argument (22004 for a NULL, 22023 for a
 * bad value, names.c for a bad name); everything else is the callee's.
 * Text another client may have written reaches a result only through
 * foreign_datum() (docs/foreign-data.md).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "utils/timestamp.h"

#include "nls.h"
#include "names.h"
#include "settings.h"
#include "session.h"
#include "tree.h"
#include "waits.h"
#include "semaphore.h"
#include "barrier.h"
#include "xact.h"
#include "handoff.h"
#include "shared.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	pg_bindtextdomain(TEXTDOMAIN);
	zksync_settings_init();
	zksync_shared_init();
	zksync_handoff_init();
	zksync_lock_init();
	zksync_semaphore_init();
	zksync_barrier_init();
	zksync_tree_init();

	zksync_xact_init();
}

/* ---- argument helpers ---- */

/* A NULL where a name is needed: ERROR 22004, one message per kind */
static void
report_null_name(ZkNameKind kind)
{
	switch (kind)
	{
		case ZKNAME_LOCK:
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("lock name must not be NULL")));
			break;
		case ZKNAME_BARRIER:
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("barrier name must not be NULL")));
			break;
		case ZKNAME_DBARRIER:
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("double barrier name must not be NULL")));
			break;
		case ZKNAME_SEMAPHORE:
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("semaphore name must not be NULL")));
			break;
	}
}

/* Argument `n`, a name of `kind`: valid, in UTF-8, or an ERROR */
static char *
name_arg(FunctionCallInfo fcinfo, int n, ZkNameKind kind)
{
	if (PG_ARGISNULL(n))
		report_null_name(kind);
	return zksync_name_from_text(PG_GETARG_TEXT_PP(n), kind, 0);
}

static int
timeout_arg(FunctionCallInfo fcinfo, int n)
{
	int			v;

	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("timeout_ms must not be NULL")));
	v = PG_GETARG_INT32(n);
	if (v < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout_ms must not be negative: %d", v)));
	return v;
}

/* ---- locks ---- */

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/*
 * The lock names of argument `n`: a text for the one-name forms, a text[]
 * for the array forms (told apart by the argument's type).  An array's
 * names come back valid, sorted and each once; an empty array, or a NULL
 * or bad element, is an ERROR naming it.
 */
static const char **
names_arg(FunctionCallInfo fcinfo, int n, int *count)
{
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			nelems,
				i,
				k = 0;
	const char **names;

	if (get_fn_expr_argtype(fcinfo->flinfo, n) != TEXTARRAYOID)
	{
		names = palloc(sizeof(char *));
		names[0] = name_arg(fcinfo, n, ZKNAME_LOCK);
		*count = 1;
		return names;
	}
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the array of lock names must not be NULL")));
	arr = PG_GETARG_ARRAYTYPE_P(n);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the array of lock names must have one dimension, not %d",
						ARR_NDIM(arr))));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &nelems);
	if (nelems == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the array of lock names must not be empty")));
	names = palloc(sizeof(char *) * nelems);
	for (i = 0; i < nelems; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("lock name %d of the array must not be NULL", i + 1)));
		names[i] = zksync_name_from_text(DatumGetTextPP(elems[i]), ZKNAME_LOCK,
										 i + 1);
	}
	/* the order every caller takes them in; duplicates count once */
	qsort(names, nelems, sizeof(char *), name_cmp);
	for (i = 0; i < nelems; i++)
		if (k == 0 || strcmp(names[k - 1], names[i]) != 0)
			names[k++] = names[i];
	*count = k;
	return names;
}

static Datum
lock_blocking(FunctionCallInfo fcinfo, ZkLockMode mode, bool xact)
{
	int			n;
	const char **names = names_arg(fcinfo, 0, &n);

	zksync_lock_acquire_many(names, n, mode, xact, false, 0);
	PG_RETURN_VOID();
}

static Datum
lock_try(FunctionCallInfo fcinfo, ZkLockMode mode, bool xact)
{
	int			n;
	const char **names = names_arg(fcinfo, 0, &n);
	int			timeout = timeout_arg(fcinfo, 1);

	PG_RETURN_BOOL(zksync_lock_acquire_many(names, n, mode, xact, true, timeout));
}

static Datum
unlock(FunctionCallInfo fcinfo, ZkLockMode mode)
{
	int			n;
	const char **names = names_arg(fcinfo, 0, &n);

	PG_RETURN_BOOL(zksync_lock_release_many(names, n, mode));
}

PG_FUNCTION_INFO_V1(zksync_write_lock);
Datum
zksync_write_lock(PG_FUNCTION_ARGS)
{
	return lock_blocking(fcinfo, ZKLOCK_WRITE, false);
}

PG_FUNCTION_INFO_V1(zksync_read_lock);
Datum
zksync_read_lock(PG_FUNCTION_ARGS)
{
	return lock_blocking(fcinfo, ZKLOCK_READ, false);
}

PG_FUNCTION_INFO_V1(zksync_xact_write_lock);
Datum
zksync_xact_write_lock(PG_FUNCTION_ARGS)
{
	return lock_blocking(fcinfo, ZKLOCK_WRITE, true);
}

PG_FUNCTION_INFO_V1(zksync_xact_read_lock);
Datum
zksync_xact_read_lock(PG_FUNCTION_ARGS)
{
	return lock_blocking(fcinfo, ZKLOCK_READ, true);
}

PG_FUNCTION_INFO_V1(zksync_try_write_lock);
Datum
zksync_try_write_lock(PG_FUNCTION_ARGS)
{
	return lock_try(fcinfo, ZKLOCK_WRITE, false);
}

PG_FUNCTION_INFO_V1(zksync_try_read_lock);
Datum
zksync_try_read_lock(PG_FUNCTION_ARGS)
{
	return lock_try(fcinfo, ZKLOCK_READ, false);
}

PG_FUNCTION_INFO_V1(zksync_try_xact_write_lock);
Datum
zksync_try_xact_write_lock(PG_FUNCTION_ARGS)
{
	return lock_try(fcinfo, ZKLOCK_WRITE, true);
}

PG_FUNCTION_INFO_V1(zksync_try_xact_read_lock);
Datum
zksync_try_xact_read_lock(PG_FUNCTION_ARGS)
{
	return lock_try(fcinfo, ZKLOCK_READ, true);
}

PG_FUNCTION_INFO_V1(zksync_write_unlock);
Datum
zksync_write_unlock(PG_FUNCTION_ARGS)
{
	return unlock(fcinfo, ZKLOCK_WRITE);
}

PG_FUNCTION_INFO_V1(zksync_read_unlock);
Datum
zksync_read_unlock(PG_FUNCTION_ARGS)
{
	return unlock(fcinfo, ZKLOCK_READ);
}

PG_FUNCTION_INFO_V1(zksync_unlock_all);
Datum
zksync_unlock_all(PG_FUNCTION_ARGS)
{
	zksync_release_session_holds(false);
	zksync_semaphore_release_all();
	PG_RETURN_VOID();
}

/* ---- barriers ---- */

/* An optional timeout: NULL means no limit (returned as -1). */
static int
optional_timeout_arg(FunctionCallInfo fcinfo, int n)
{
	if (PG_NARGS() <= n || PG_ARGISNULL(n))
		return -1;
	return timeout_arg(fcinfo, n);
}

PG_FUNCTION_INFO_V1(zksync_barrier_set_sql);
Datum
zksync_barrier_set_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(zksync_barrier_set(name_arg(fcinfo, 0, ZKNAME_BARRIER)));
}

PG_FUNCTION_INFO_V1(zksync_barrier_unset_sql);
Datum
zksync_barrier_unset_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(zksync_barrier_unset(name_arg(fcinfo, 0, ZKNAME_BARRIER)));
}

PG_FUNCTION_INFO_V1(zksync_barrier_is_set_sql);
Datum
zksync_barrier_is_set_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(zksync_barrier_is_set(name_arg(fcinfo, 0, ZKNAME_BARRIER)));
}

PG_FUNCTION_INFO_V1(zksync_barrier_wait_sql);
Datum
zksync_barrier_wait_sql(PG_FUNCTION_ARGS)
{
	char	   *name = name_arg(fcinfo, 0, ZKNAME_BARRIER);

	PG_RETURN_BOOL(zksync_barrier_wait(name, optional_timeout_arg(fcinfo, 1)));
}

PG_FUNCTION_INFO_V1(zksync_dbarrier_enter_sql);
Datum
zksync_dbarrier_enter_sql(PG_FUNCTION_ARGS)
{
	char	   *name = name_arg(fcinfo, 0, ZKNAME_DBARRIER);
	int			participants;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("participants must not be NULL")));
	participants = PG_GETARG_INT32(1);
	if (participants < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("participants must be at least 1, not %d", participants)));
	PG_RETURN_BOOL(zksync_dbarrier_enter(name, participants,
										 optional_timeout_arg(fcinfo, 2)));
}

PG_FUNCTION_INFO_V1(zksync_dbarrier_exit_sql);
Datum
zksync_dbarrier_exit_sql(PG_FUNCTION_ARGS)
{
	char	   *name = name_arg(fcinfo, 0, ZKNAME_DBARRIER);

	PG_RETURN_BOOL(zksync_dbarrier_exit(name, optional_timeout_arg(fcinfo, 1)));
}

/* ---- introspection ---- */

/*
 * A text value for a view that another client may have written (a child
 * name, a path made with one, a field of its owner data): valid in the
 * database encoding whatever the bytes were (zksync_foreign_text).
 */
static Datum
foreign_datum(const char *s)
{
	return CStringGetTextDatum(zksync_foreign_cstring(s));
}

PG_FUNCTION_INFO_V1(zksync_locks);
Datum
zksync_locks(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ZkLockInfo *rows;
	int			n,
				i,
				pass;

	InitMaterializedSRF(fcinfo, 0);
	for (pass = 0; pass < 2; pass++)
	{
		n = pass == 0 ? zksync_lock_snapshot(&rows) :
			zksync_semaphore_snapshot(&rows);
		for (i = 0; i < n; i++)
		{
			Datum		values[7];
			bool		nulls[7] = {0};

			values[0] = foreign_datum(rows[i].name);
			values[1] = CStringGetTextDatum(rows[i].mode);
			values[2] = Int32GetDatum(rows[i].session_count);
			values[3] = Int32GetDatum(rows[i].xact_count);
			values[4] = CStringGetTextDatum(rows[i].state);
			if (rows[i].node[0])
				values[5] = foreign_datum(rows[i].node);
			else
				nulls[5] = true;
			if (rows[i].has_token)
				values[6] = Int64GetDatum(rows[i].token);
			else
				nulls[6] = true;
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(zksync_lock_token);
Datum
zksync_lock_token(PG_FUNCTION_ARGS)
{
	char	   *name = name_arg(fcinfo, 0, ZKNAME_LOCK);
	ZkLockInfo *rows;
	int			n,
				i;
	int			best = -1;

	n = zksync_lock_snapshot(&rows);
	for (i = 0; i < n; i++)
	{
		if (strcmp(rows[i].name, name) != 0 || !rows[i].has_token)
			continue;
		/* the write node, if both are held */
		if (best < 0 || strcmp(rows[i].mode, "write") == 0)
			best = i;
	}
	if (best < 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(rows[best].token);
}

PG_FUNCTION_INFO_V1(zksync_lock_holders);
Datum
zksync_lock_holders(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name = name_arg(fcinfo, 0, ZKNAME_LOCK);
	ZkWaitRow  *rows;
	int			n,
				i;

	InitMaterializedSRF(fcinfo, 0);
	/* every client's contenders, granted by the rule the lock's wait uses */
	n = zksync_read_queue(ZKSYNC_LOCKS, 0, name, &rows);
	for (i = 0; i < n; i++)
	{
		ZkWaitRow  *r = &rows[i];
		const ZkContender *c = &r->contenders[r->index];
		Datum		values[5];
		bool		nulls[5] = {0};

		values[0] = CStringGetTextDatum(r->mode);
		values[1] = foreign_datum(c->name);
		values[2] = Int64GetDatum(c->seq);
		values[3] = BoolGetDatum(r->granted);
		values[4] = CStringGetTextDatum(zksync_owner_text(r->data, r->datalen));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* One zksync_waits()-style value another client may have written: text or NULL */
static void
text_or_null(const char *v, Datum *value, bool *isnull)
{
	if (v)
		*value = foreign_datum(v);
	else
		*isnull = true;
}

/*
 * Who made row r's node, as columns from values[0] on: cluster, host,
 * port, database (if with_database), pid, application_name; NULL where
 * the node is not a zksync backend's or the owner data leaves it out.
 */
static void
owner_columns(const ZkWaitRow *r, bool with_database, Datum *values,
			  bool *nulls)
{
	int			c = 0;

	text_or_null(r->owner.cluster, &values[c], &nulls[c]);
	c++;
	text_or_null(r->owner.host, &values[c], &nulls[c]);
	c++;
	values[c] = Int32GetDatum(r->owner.port);
	nulls[c++] = !r->is_backend;
	if (with_database)
	{
		text_or_null(r->owner.database, &values[c], &nulls[c]);
		c++;
	}
	values[c] = Int32GetDatum(r->owner.pid);
	nulls[c++] = !r->is_backend;
	text_or_null(r->owner.application_name, &values[c], &nulls[c]);
}

PG_FUNCTION_INFO_V1(zksync_waits);
Datum
zksync_waits(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ZkWaitRow  *rows;
	int			n,
				i;

	InitMaterializedSRF(fcinfo, 0);
	n = zksync_read_waits(&rows);
	for (i = 0; i < n; i++)
	{
		ZkWaitRow  *r = &rows[i];
		Datum		values[13];
		bool		nulls[13] = {0};

		values[0] = CStringGetTextDatum(r->kind->kind);
		values[1] = foreign_datum(r->name);
		values[2] = CStringGetTextDatum(r->mode);
		values[3] = BoolGetDatum(r->granted);
		values[4] = TimestampTzGetDatum(time_t_to_timestamptz(r->ctime_ms / 1000) +
										(r->ctime_ms % 1000) * 1000);
		owner_columns(r, true, &values[5], &nulls[5]);
		/* a persistent node (a barrier) has no session */
		values[11] = CStringGetTextDatum(zksync_session_text(r->session));
		nulls[11] = r->session == 0;
		values[12] = foreign_datum(r->node);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(zksync_blocking);
Datum
zksync_blocking(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ZkWaitRow  *rows;
	int		   *b;
	int			n,
				i;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pid must not be NULL")));
	InitMaterializedSRF(fcinfo, 0);
	n = zksync_read_blockers(PG_GETARG_INT32(0), &rows, &b);
	for (i = 0; i < n; i++)
	{
		ZkWaitRow  *r = &rows[b[i]];
		Datum		values[8];
		bool		nulls[8] = {0};

		values[0] = CStringGetTextDatum(r->kind->kind);
		values[1] = foreign_datum(r->name);
		values[2] = CStringGetTextDatum(r->mode);
		owner_columns(r, false, &values[3], &nulls[3]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* ---- semaphores ---- */

static int
max_leases_arg(FunctionCallInfo fcinfo, int n)
{
	int			v;

	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("max_leases must not be NULL")));
	v = PG_GETARG_INT32(n);
	if (v < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_leases must be at least 1, not %d", v)));
	return v;
}

static Datum
semaphore_acquire(FunctionCallInfo fcinfo, bool xact)
{
	char	   *name = name_arg(fcinfo, 0, ZKNAME_SEMAPHORE);
	int			max = max_leases_arg(fcinfo, 1);

	PG_RETURN_BOOL(zksync_semaphore_acquire(name, max, xact,
											optional_timeout_arg(fcinfo, 2)));
}

PG_FUNCTION_INFO_V1(zksync_semaphore_acquire_sql);
Datum
zksync_semaphore_acquire_sql(PG_FUNCTION_ARGS)
{
	return semaphore_acquire(fcinfo, false);
}

PG_FUNCTION_INFO_V1(zksync_xact_semaphore_acquire_sql);
Datum
zksync_xact_semaphore_acquire_sql(PG_FUNCTION_ARGS)
{
	return semaphore_acquire(fcinfo, true);
}

PG_FUNCTION_INFO_V1(zksync_semaphore_release_sql);
Datum
zksync_semaphore_release_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(zksync_semaphore_release(name_arg(fcinfo, 0, ZKNAME_SEMAPHORE)));
}

PG_FUNCTION_INFO_V1(zksync_semaphore_leases);
Datum
zksync_semaphore_leases(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name = name_arg(fcinfo, 0, ZKNAME_SEMAPHORE);
	ZkHolderInfo *rows;
	int			n,
				i;

	InitMaterializedSRF(fcinfo, 0);
	n = zksync_semaphore_contenders(name, &rows);
	for (i = 0; i < n; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {0};

		if (!rows[i].present)
			continue;			/* gone meanwhile */
		values[0] = foreign_datum(rows[i].node);
		values[1] = Int64GetDatum(rows[i].sequence);
		values[2] = BoolGetDatum(rows[i].granted);
		values[3] = CStringGetTextDatum(rows[i].owner);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(zksync_session);
Datum
zksync_session(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {0};
	char		server[256];
	int64		id = zk_session_id();

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	values[0] = CStringGetTextDatum(zk_session_state_name());
	if (id != 0)
		values[1] = CStringGetTextDatum(zksync_session_text(id));
	else
		nulls[1] = true;
	if (zk_current_server(server, sizeof(server)))
		values[2] = CStringGetTextDatum(server);
	else
		nulls[2] = true;
	if (id != 0)
		values[3] = Int32GetDatum(zk_negotiated_timeout());
	else
		nulls[3] = true;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* ---- operations: counters and the local view (shared.c) ---- */

PG_FUNCTION_INFO_V1(zksync_stats);
Datum
zksync_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	ZkStats		st;
	Datum		values[12];
	bool		nulls[12] = {0};

	/* the columns before stats_reset; -1 is wait_time_ms */
	static const int order[] = {
		ZKSTAT_ACQUIRED, ZKSTAT_WAITED, -1, ZKSTAT_TIMEOUTS,
		ZKSTAT_CANCELLED, ZKSTAT_DEADLOCKS, ZKSTAT_LOST,
		ZKSTAT_SESSIONS_EXPIRED, ZKSTAT_RECONNECTS, ZKSTAT_HANDOFFS,
		ZKSTAT_UNTRACKED
	};
	int			i;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	zksync_stats_read(&st);
	for (i = 0; i < (int) lengthof(order); i++)
	{
		if (order[i] < 0)
			values[i] = Float8GetDatum(st.wait_time_ms);
		else
			values[i] = Int64GetDatum((int64) st.counts[order[i]]);
	}
	Assert(tupdesc->natts == lengthof(order) + 1);
	values[lengthof(order)] = TimestampTzGetDatum(st.stats_reset);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

PG_FUNCTION_INFO_V1(zksync_stats_reset);
Datum
zksync_stats_reset(PG_FUNCTION_ARGS)
{
	zksync_stats_reset_all();
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(zksync_local_locks);
Datum
zksync_local_locks(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ZkLocalRow *rows;
	int			n;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	n = zksync_local_read(&rows);
	for (i = 0; i < n; i++)
	{
		Datum		values[8];
		bool		nulls[8] = {0};

		values[0] = Int32GetDatum(rows[i].pid);
		values[1] = CStringGetTextDatum(zksync_local_kind_name(rows[i].kind));
		values[2] = CStringGetTextDatum(rows[i].name);
		values[3] = CStringGetTextDatum(rows[i].mode);
		values[4] = BoolGetDatum(rows[i].state == ZKLOCAL_HELD ||
								 rows[i].state == ZKLOCAL_RELEASING);
		values[5] = CStringGetTextDatum(zksync_local_state_name(rows[i].state));
		values[6] = TimestampTzGetDatum(rows[i].since);
		values[7] = Int64GetDatum(rows[i].token);
		nulls[7] = rows[i].token == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
