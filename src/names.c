/*-------------------------------------------------------------------------
 * names.c
 *	  Validation of everything that becomes part of a ZooKeeper path.
 *
 * A lock or barrier name becomes exactly one path component under
 * zksync.root, so a name that ZooKeeper would refuse, or one that would
 * climb out of the root ("..", "a/b"), must be refused here with a clear
 * ERROR, before any request is built.  ZooKeeper refuses these code points
 * in paths: U+0000, U+0001-U+001F, U+007F-U+009F, U+D800-U+F8FF and
 * U+FFF0-U+FFFF, and the components "." and "..".  The server checks
 * UTF-16 code units, so a character beyond U+FFFF (a surrogate pair, in
 * U+D800-U+DFFF) is refused too.
 *
 * What can go wrong: nothing here talks to ZooKeeper.  A bad name is an
 * ERROR 22023 whose DETAIL gives the reason (one message per kind of
 * name); a bad zksync.hosts or zksync.root is only reported back to its
 * check hook (settings.c), since a check hook must not throw.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "nls.h"
#include "layout.h"
#include "names.h"

/*
 * Check one path component given in UTF-8.  Returns NULL when it is
 * valid, else a palloc'd reason.
 */
static char *
component_problem(const char *s, int len, int maxlen)
{
	const unsigned char *p = (const unsigned char *) s;
	const unsigned char *end = p + len;

	if (len == 0)
		return pstrdup(_("it is empty"));
	if (len > maxlen)
		return psprintf(_("it is %d bytes long, at most %d are allowed"), len, maxlen);
	if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
		return psprintf(_("\"%s\" is not allowed"), s);

	while (p < end)
	{
		int			clen = pg_utf_mblen(p);
		pg_wchar	c;

		if (p + clen > end || !pg_utf8_islegal(p, clen))
			return pstrdup(_("it is not valid UTF-8"));
		c = utf8_to_unicode(p);
		if (c == '/')
			return pstrdup(_("it contains \"/\""));
		if (c == 0 ||
			(c >= 0x01 && c <= 0x1F) ||
			(c >= 0x7F && c <= 0x9F) ||
			(c >= 0xD800 && c <= 0xF8FF) ||
			(c >= 0xFFF0))
			return psprintf(_("it contains the character U+%04X, which ZooKeeper does not allow"),
							(unsigned int) c);
		p += clen;
	}
	return NULL;
}

/* The name as it can be shown in a message: control characters escaped. */
static char *
printable(const char *s)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (; *s; s++)
	{
		if ((unsigned char) *s < 0x20 || *s == 0x7f)
			appendStringInfo(&buf, "\\x%02x", (unsigned char) *s);
		else
			appendStringInfoChar(&buf, *s);
	}
	return buf.data;
}

/*
 * A bad name: ERROR 22023, one message per kind of name so that each can
 * be translated; `problem` (a sentence) says what is wrong with it.
 */
static void
report_bad_name(ZkNameKind kind, int element, const char *name,
				const char *problem)
{
	switch (kind)
	{
		case ZKNAME_LOCK:
			if (element > 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid lock name \"%s\" at position %d of the array",
								name, element),
						 errdetail_internal("%s", problem),
						 errhint("A name is one ZooKeeper path component: 1 to %d bytes, no \"/\", no control characters, not \".\" or \"..\".",
								 ZKSYNC_NAME_MAX)));
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid lock name \"%s\"", name),
					 errdetail_internal("%s", problem),
					 errhint("A name is one ZooKeeper path component: 1 to %d bytes, no \"/\", no control characters, not \".\" or \"..\".",
							 ZKSYNC_NAME_MAX)));
			break;
		case ZKNAME_BARRIER:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid barrier name \"%s\"", name),
					 errdetail_internal("%s", problem),
					 errhint("A name is one ZooKeeper path component: 1 to %d bytes, no \"/\", no control characters, not \".\" or \"..\".",
							 ZKSYNC_NAME_MAX)));
			break;
		case ZKNAME_DBARRIER:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid double barrier name \"%s\"", name),
					 errdetail_internal("%s", problem),
					 errhint("A name is one ZooKeeper path component: 1 to %d bytes, no \"/\", no control characters, not \".\" or \"..\".",
							 ZKSYNC_NAME_MAX)));
			break;
		case ZKNAME_SEMAPHORE:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid semaphore name \"%s\"", name),
					 errdetail_internal("%s", problem),
					 errhint("A name is one ZooKeeper path component: 1 to %d bytes, no \"/\", no control characters, not \".\" or \"..\".",
							 ZKSYNC_NAME_MAX)));
			break;
	}
}

/*
 * Convert a SQL text argument into a validated name, in UTF-8, palloc'd.
 * `kind` says what it names and `element` its 1-based place in an array
 * (0: not in one), for messages.  Throws 22023 on a bad name.
 */
char *
zksync_name_from_text(text *t, ZkNameKind kind, int element)
{
	char	   *raw = text_to_cstring(t);
	char	   *utf8;
	char	   *problem;

	utf8 = (char *) pg_do_encoding_conversion((unsigned char *) raw,
											  strlen(raw),
											  GetDatabaseEncoding(),
											  PG_UTF8);
	problem = component_problem(utf8, strlen(utf8), ZKSYNC_NAME_MAX);
	if (problem)
		report_bad_name(kind, element, printable(raw),
						psprintf(_("The name is refused: %s."), problem));
	return utf8;
}

/* Check an absolute path made of valid components (no trailing "/"). */
static bool
path_is_valid(const char *path, int maxlen, char **why)
{
	const char *p = path;
	int			len = strlen(path);

	if (len == 0 || path[0] != '/')
	{
		*why = pstrdup(_("it must start with \"/\""));
		return false;
	}
	if (len > maxlen)
	{
		*why = psprintf(_("it is %d bytes long, at most %d are allowed"), len, maxlen);
		return false;
	}
	if (len == 1)
	{
		*why = pstrdup(_("it must name a node below \"/\""));
		return false;
	}
	while (*p == '/')
	{
		const char *start = p + 1;
		const char *slash = strchr(start, '/');
		int			clen = slash ? (int) (slash - start) : (int) strlen(start);
		char	   *problem = component_problem(start, clen, maxlen);

		if (clen == 0)
		{
			*why = pstrdup(_("it has an empty component (a doubled or trailing \"/\")"));
			return false;
		}
		if (problem)
		{
			*why = psprintf(_("component \"%.*s\": %s"), clen, start, problem);
			return false;
		}
		p = start + clen;
	}
	return true;
}

/*
 * Check hook helper for zksync.root.  Returns false and a reason when the
 * value is unusable.  Runs in check hooks, so it must not throw.
 */
bool
zksync_root_is_valid(const char *root, char **why)
{
	if (!path_is_valid(root, ZKSYNC_ROOT_MAX, why))
		return false;
	if (strcmp(root, "/zookeeper") == 0 || strncmp(root, "/zookeeper/", 11) == 0)
	{
		*why = pstrdup(_("\"/zookeeper\" is reserved by ZooKeeper"));
		return false;
	}
	return true;
}

/*
 * Check hook helper for zksync.hosts: "host:port[,host:port...][/chroot]".
 */
bool
zksync_hosts_are_valid(const char *hosts, char **why)
{
	const char *slash = strchr(hosts, '/');
	int			hlen = slash ? (int) (slash - hosts) : (int) strlen(hosts);
	char	   *list = pnstrdup(hosts, hlen);
	char	   *entry;
	char	   *save = NULL;

	if (hlen == 0)
	{
		*why = pstrdup(_("it names no server; expected host:port[,host:port...][/chroot]"));
		return false;
	}
	if (slash && !path_is_valid(slash, ZKSYNC_ROOT_MAX, why))
	{
		*why = psprintf(_("bad chroot: %s"), *why);
		return false;
	}
	if (list[0] == ',' || list[hlen - 1] == ',' || strstr(list, ",,"))
	{
		*why = pstrdup(_("it has an empty entry"));
		return false;
	}
	for (entry = strtok_r(list, ",", &save); entry; entry = strtok_r(NULL, ",", &save))
	{
		char	   *colon = strrchr(entry, ':');
		char	   *end;
		long		port;
		const char *c;

		if (colon == NULL || colon == entry)
		{
			*why = psprintf(_("\"%s\" is not host:port"), entry);
			return false;
		}
		port = strtol(colon + 1, &end, 10);
		if (*(colon + 1) == '\0' || *end != '\0' || port < 1 || port > 65535)
		{
			*why = psprintf(_("\"%s\" has no valid port (1-65535)"), entry);
			return false;
		}
		for (c = entry; c < colon; c++)
		{
			if (!(isalnum((unsigned char) *c) || strchr(".-_[]:", *c)))
			{
				*why = psprintf(_("\"%s\" has a bad host name"), entry);
				return false;
			}
		}
	}
	return true;
}
