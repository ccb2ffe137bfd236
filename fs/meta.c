#include "fs/meta.h"

#include <errno.h>
#include <pthread.h>
/* Debian builds libsqlite3 with the session extension; the header hides it unless asked. */
#define SQLITE_ENABLE_SESSION 1
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "fs/log.h"

/* 1: the first schema. 2: blocks.xsum (format 2); a version-1 database is migrated at open
 * (migrate_v1). */
#define META_SCHEMA_VERSION 2

static const char *const shared_tables[] = {"inodes", "dentries", "symlinks", "bmap",
					    "blocks", "xattrs",   "ranges",   "trash"};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS inodes(ino INTEGER PRIMARY KEY, mode INT NOT NULL, uid INT NOT NULL,"
    " gid INT NOT NULL, nlink INT NOT NULL, size INT NOT NULL, rdev INT NOT NULL,"
    " atime INT NOT NULL, mtime INT NOT NULL, ctime INT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS dentries(parent INT NOT NULL, name TEXT NOT NULL, ino INT NOT NULL,"
    " cookie INT NOT NULL, PRIMARY KEY(parent, name)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS dentries_cookie ON dentries(parent, cookie);"
    "CREATE INDEX IF NOT EXISTS dentries_ino ON dentries(ino);"
    "CREATE TABLE IF NOT EXISTS symlinks(ino INTEGER PRIMARY KEY, target BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS bmap(ino INT NOT NULL, idx INT NOT NULL, hash BLOB NOT NULL,"
    " PRIMARY KEY(ino, idx)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS blocks(hash BLOB PRIMARY KEY, pack TEXT NOT NULL, off INT NOT NULL,"
    " slen INT NOT NULL, rlen INT NOT NULL, codec INT NOT NULL, xsum INT) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS blocks_pack ON blocks(pack, off);"
    "CREATE TABLE IF NOT EXISTS xattrs(ino INT NOT NULL, name TEXT NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY(ino, name)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS ranges(start INTEGER PRIMARY KEY, host TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS trash(ino INTEGER PRIMARY KEY, name TEXT NOT NULL, parent INT NOT NULL,"
    " deleted INT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS trash_name ON trash(name);"
    "CREATE TABLE IF NOT EXISTS pending(id INTEGER PRIMARY KEY AUTOINCREMENT, cs BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS local(key TEXT PRIMARY KEY, value);"
    "CREATE TABLE IF NOT EXISTS conflicts(id INTEGER PRIMARY KEY, time INT NOT NULL, what TEXT NOT NULL);";

enum stmt_id {
	S_GET_ATTR,
	S_PUT_ATTR,
	S_DEL_INODE,
	S_DEL_BMAP_ALL,
	S_DEL_XATTR_ALL,
	S_DEL_SYMLINK,
	S_LOOKUP,
	S_ADD_DENTRY,
	S_DEL_DENTRY,
	S_DIR_EMPTY,
	S_READDIR,
	S_COUNT_SUBDIRS,
	S_PARENT_OF,
	S_GET_SYMLINK,
	S_SET_SYMLINK,
	S_BMAP_GET,
	S_BMAP_SET,
	S_BMAP_DEL,
	S_BMAP_TRUNC,
	S_BMAP_EACH,
	S_BLOCK_GET,
	S_BLOCK_PUT,
	S_BLOCKS_RANGE,
	S_XATTR_GET,
	S_XATTR_INSERT,
	S_XATTR_UPDATE,
	S_XATTR_LIST,
	S_XATTR_DEL,
	S_LOCAL_GET,
	S_LOCAL_SET,
	S_LOCAL_DEL_PREFIX,
	S_RANGE_TAKEN,
	S_ADD_RANGE,
	S_PENDING_ADD,
	S_PENDING_SCAN,
	S_PENDING_DEL,
	S_PENDING_COUNT,
	S_ORPHANS,
	S_COUNT_INODES,
	S_TOTAL_SIZE,
	S_BLOCKS_EACH,
	S_BMAP_UNPLACED,
	S_FILES_WITH_BLOCK,
	S_NAME_OF,
	S_BLOCK_DEL,
	S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_GET_ATTR] = "SELECT mode,uid,gid,nlink,size,rdev,atime,mtime,ctime FROM inodes WHERE ino=?",
    [S_PUT_ATTR] = "INSERT INTO inodes(ino,mode,uid,gid,nlink,size,rdev,atime,mtime,ctime)"
		   " VALUES(?,?,?,?,?,?,?,?,?,?) ON CONFLICT(ino) DO UPDATE SET mode=excluded.mode,"
		   " uid=excluded.uid, gid=excluded.gid, nlink=excluded.nlink, size=excluded.size,"
		   " rdev=excluded.rdev, atime=excluded.atime, mtime=excluded.mtime, ctime=excluded.ctime",
    [S_DEL_INODE] = "DELETE FROM inodes WHERE ino=?",
    [S_DEL_BMAP_ALL] = "DELETE FROM bmap WHERE ino=?",
    [S_DEL_XATTR_ALL] = "DELETE FROM xattrs WHERE ino=?",
    [S_DEL_SYMLINK] = "DELETE FROM symlinks WHERE ino=?",
    [S_LOOKUP] = "SELECT ino FROM dentries WHERE parent=? AND name=?",
    [S_ADD_DENTRY] = "INSERT INTO dentries(parent,name,ino,cookie) VALUES(?,?,?,?)",
    [S_DEL_DENTRY] = "DELETE FROM dentries WHERE parent=? AND name=?",
    [S_DIR_EMPTY] = "SELECT 1 FROM dentries WHERE parent=? LIMIT 1",
    [S_READDIR] = "SELECT d.name, d.ino, i.mode, d.cookie FROM dentries d LEFT JOIN inodes i ON i.ino=d.ino"
		  " WHERE d.parent=? AND d.cookie>? ORDER BY d.cookie",
    [S_COUNT_SUBDIRS] = "SELECT count(*) FROM dentries d JOIN inodes i ON i.ino=d.ino WHERE d.parent=?"
			" AND (i.mode & 61440)=16384",
    [S_PARENT_OF] = "SELECT parent FROM dentries WHERE ino=? LIMIT 1",
    [S_GET_SYMLINK] = "SELECT target FROM symlinks WHERE ino=?",
    [S_SET_SYMLINK] = "INSERT OR REPLACE INTO symlinks(ino,target) VALUES(?,?)",
    [S_BMAP_GET] = "SELECT hash FROM bmap WHERE ino=? AND idx=?",
    [S_BMAP_SET] = "INSERT INTO bmap(ino,idx,hash) VALUES(?,?,?) ON CONFLICT(ino,idx) DO UPDATE SET"
		   " hash=excluded.hash WHERE hash IS NOT excluded.hash",
    [S_BMAP_DEL] = "DELETE FROM bmap WHERE ino=? AND idx=?",
    [S_BMAP_TRUNC] = "DELETE FROM bmap WHERE ino=? AND idx>=?",
    [S_BMAP_EACH] = "SELECT idx, hash FROM bmap WHERE ino=? ORDER BY idx",
    [S_BLOCK_GET] = "SELECT pack,off,slen,rlen,codec,xsum FROM blocks WHERE hash=?",
    [S_BLOCK_PUT] = "INSERT OR IGNORE INTO blocks(hash,pack,off,slen,rlen,codec,xsum) VALUES(?,?,?,?,?,?,?)",
    [S_BLOCKS_RANGE] = "SELECT hash,off,slen,rlen,codec,xsum FROM blocks WHERE pack=? AND off>=? AND off<?"
		       " ORDER BY off",
    [S_XATTR_GET] = "SELECT value FROM xattrs WHERE ino=? AND name=?",
    [S_XATTR_INSERT] = "INSERT INTO xattrs(ino,name,value) VALUES(?,?,?)",
    [S_XATTR_UPDATE] = "UPDATE xattrs SET value=? WHERE ino=? AND name=?",
    [S_XATTR_LIST] = "SELECT name FROM xattrs WHERE ino=? ORDER BY name",
    [S_XATTR_DEL] = "DELETE FROM xattrs WHERE ino=? AND name=?",
    [S_LOCAL_GET] = "SELECT value FROM local WHERE key=?",
    [S_LOCAL_SET] = "INSERT OR REPLACE INTO local(key,value) VALUES(?,?)",
    [S_LOCAL_DEL_PREFIX] = "DELETE FROM local WHERE substr(key,1,length(?1))=?1",
    [S_RANGE_TAKEN] = "SELECT 1 FROM ranges WHERE start=?",
    [S_ADD_RANGE] = "INSERT INTO ranges(start,host) VALUES(?,?)",
    [S_PENDING_ADD] = "INSERT INTO pending(cs) VALUES(?)",
    [S_PENDING_SCAN] = "SELECT id, cs FROM pending WHERE id<=? ORDER BY id",
    [S_PENDING_DEL] = "DELETE FROM pending WHERE id<=?",
    [S_PENDING_COUNT] = "SELECT count(*) FROM pending",
    [S_ORPHANS] = "SELECT ino FROM inodes WHERE nlink=0 AND ino NOT IN (SELECT ino FROM trash)",
    [S_COUNT_INODES] = "SELECT count(*) FROM inodes",
    [S_TOTAL_SIZE] = "SELECT coalesce(sum(size),0) FROM inodes WHERE (mode & 61440)=32768",
    [S_BLOCKS_EACH] = "SELECT b.hash, b.pack, b.off, b.slen, b.rlen, b.codec, b.xsum,"
		      " EXISTS(SELECT 1 FROM bmap m WHERE m.hash=b.hash) FROM blocks b ORDER BY b.pack, b.off",
    [S_BMAP_UNPLACED] = "SELECT m.ino, m.idx, m.hash FROM bmap m WHERE NOT EXISTS"
			" (SELECT 1 FROM blocks b WHERE b.hash=m.hash) ORDER BY m.hash, m.ino, m.idx",
    [S_FILES_WITH_BLOCK] = "SELECT ino, min(idx) FROM bmap WHERE hash=? GROUP BY ino ORDER BY ino",
    [S_NAME_OF] = "SELECT parent, name FROM dentries WHERE ino=? ORDER BY parent, name LIMIT 1",
    [S_BLOCK_DEL] = "DELETE FROM blocks WHERE hash=?",
};

#define NSHARED (sizeof(shared_tables) / sizeof(shared_tables[0]))
#define REC_MAX_COLS 16

/* A shared table as changesets describe it: column count and primary-key flags (the "pk"
 * column of PRAGMA table_xinfo, as SQLite's session extension writes them). */
struct rec_table {
	int ncol;
	uint8_t pk[REC_MAX_COLS];
};

struct rfs_meta {
	sqlite3 *db;
	pthread_mutex_t lock;
	/* below: protected by lock */
	sqlite3_stmt *stmts[S_COUNT];
	/* The changeset recorder (see "changeset recorder" below): on inside rfs_meta_begin/commit
	 * and while a rebase re-applies local changes. */
	int in_txn; /* between rfs_meta_begin*() and rfs_meta_commit/rollback */
	int recording;
	int rec_failed;     /* a change could not be recorded: the transaction must not commit */
	int rec_table;      /* index of the table whose header was written last, -1: none */
	struct rfs_buf rec; /* the changeset so far */
	struct rec_table tables[NSHARED];
	uint64_t next_id, range_end;
	uint64_t id_reserved; /* ids below this are covered by the stored next_id */
};

static int sql_fail(struct rfs_meta *m, const char *what)
{
	RFS_LOG(LOG_ERR, "metadata database: %s failed: %s", what, sqlite3_errmsg(m->db));
	int ec = sqlite3_errcode(m->db);
	/* A statement that fails after changing rows is undone by SQLite, but the recorder has
	 * recorded those rows: the transaction must not commit them (rfs_meta_commit refuses).
	 * A constraint failure is exempt: our writes that can hit one change a single row, and
	 * SQLite checks constraints before the pre-update hook fires. */
	if (m->recording && (ec & 0xff) != SQLITE_CONSTRAINT)
		m->rec_failed = 1;
	if (ec == SQLITE_FULL)
		return -ENOSPC;
	if (ec == SQLITE_CONSTRAINT)
		return -EEXIST;
	return -EIO;
}

static sqlite3_stmt *stmt(struct rfs_meta *m, enum stmt_id id)
{
	sqlite3_stmt *s = m->stmts[id];
	if (!s) {
		if (sqlite3_prepare_v3(m->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
			RFS_LOG(LOG_ERR, "metadata database: cannot prepare '%s': %s", stmt_sql[id],
				sqlite3_errmsg(m->db));
			return NULL;
		}
		m->stmts[id] = s;
	}
	return s;
}

/* Runs a statement that returns no rows. Resets it. */
/* Inside a transaction that SQLite has already rolled back (an I/O error, a full disk, an
 * interrupt), a statement would run in autocommit mode: committed at once, outside the
 * operation and never recorded. Refuse it; the operation fails and is rolled back. */
static int txn_lost(struct rfs_meta *m)
{
	if (!m->in_txn || !sqlite3_get_autocommit(m->db))
		return 0;
	RFS_LOG(LOG_ERR, "metadata database: the transaction was rolled back by SQLite; not running more "
			 "statements in it");
	if (m->recording)
		m->rec_failed = 1;
	return 1;
}

static int run(struct rfs_meta *m, sqlite3_stmt *s, const char *what)
{
	if (txn_lost(m)) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		return -EIO;
	}
	int r = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (r != SQLITE_DONE && r != SQLITE_ROW)
		return sql_fail(m, what);
	return 0;
}

static int exec(struct rfs_meta *m, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(m->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		RFS_LOG(LOG_ERR, "metadata database: '%s' failed: %s", sql, msg ? msg : "?");
		sqlite3_free(msg);
		if (m->recording)
			m->rec_failed = 1; /* as in sql_fail */
		return -EIO;
	}
	return 0;
}

static int migrate_v1(struct rfs_meta *m);
static int rec_load_tables(struct rfs_meta *m);
static void rec_hook(void *ctx, sqlite3 *db, int op, const char *zdb, const char *ztab, sqlite3_int64 key1,
		     sqlite3_int64 key2);

int rfs_meta_open(const char *path, struct rfs_meta **out, char *err, size_t errlen)
{
	struct rfs_meta *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	int rc = 0;
	if (sqlite3_open_v2(path, &m->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "cannot open metadata database '%s': %s", path,
			 m->db ? sqlite3_errmsg(m->db) : "out of memory");
		rc = -EIO;
		goto fail;
	}
	sqlite3_busy_timeout(m->db, 5000);
	if (exec(m, "PRAGMA journal_mode=WAL") < 0 || exec(m, "PRAGMA synchronous=NORMAL") < 0 ||
	    exec(m, "PRAGMA cache_size=-16384") < 0 || exec(m, schema_sql) < 0) {
		snprintf(err, errlen,
			 "cannot initialise metadata database '%s': %s (is the cache disk full or read-only?)", path,
			 sqlite3_errmsg(m->db));
		rc = -EIO;
		goto fail;
	}
	int64_t ver = 0;
	if (rfs_meta_local_get_int(m, "schema", &ver) == 0 && ver == 1 && (rc = migrate_v1(m)) < 0) {
		snprintf(err, errlen,
			 "cannot upgrade metadata database '%s' to schema %d: %s (see roamfs.log; removing it "
			 "rebuilds it from the store, losing changes not yet uploaded)",
			 path, META_SCHEMA_VERSION,
			 rc == -EIO ? "a pending change is damaged or SQLite failed" : strerror(-rc));
		goto fail;
	} else if (ver == 1) {
		ver = META_SCHEMA_VERSION;
	}
	if (ver && ver != META_SCHEMA_VERSION) {
		snprintf(err, errlen,
			 "metadata database '%s' has schema %lld, this roamfs knows %d; "
			 "remove it to rebuild from the store",
			 path, (long long)ver, META_SCHEMA_VERSION);
		rc = -EPROTO;
		goto fail;
	}
	rfs_meta_local_set_int(m, "schema", META_SCHEMA_VERSION);
	/* The root directory exists in every replica from the start; it is not recorded in
	 * any changeset, so every host creates the same row. */
	{
		char sql[256];
		int64_t now = rfs_now_ns();
		snprintf(sql, sizeof(sql), "INSERT OR IGNORE INTO inodes VALUES(1,%u,%u,%u,2,0,0,%lld,%lld,%lld)",
			 (unsigned)(S_IFDIR | 0755), (unsigned)getuid(), (unsigned)getgid(), (long long)now,
			 (long long)now, (long long)now);
		if (exec(m, sql) < 0) {
			snprintf(err, errlen, "cannot create the root directory in '%s'", path);
			rc = -EIO;
			goto fail;
		}
	}
	int64_t v;
	if (rfs_meta_local_get_int(m, "next_id", &v) == 0)
		m->next_id = m->id_reserved = (uint64_t)v;
	if (rfs_meta_local_get_int(m, "range_end", &v) == 0)
		m->range_end = (uint64_t)v;
	if (rec_load_tables(m) < 0) {
		snprintf(err, errlen, "metadata database '%s' does not have the tables this roamfs expects", path);
		rc = -EPROTO;
		goto fail;
	}
	sqlite3_preupdate_hook(m->db, rec_hook, m);
	*out = m;
	return 0;
fail:
	rfs_meta_close(m);
	return rc;
}

void rfs_meta_close(struct rfs_meta *m)
{
	if (!m)
		return;
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(m->stmts[i]);
	rfs_buf_free(&m->rec);
	sqlite3_close(m->db);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

void rfs_meta_test_progress(struct rfs_meta *m, int every, int (*cb)(void *), void *arg)
{
	sqlite3_progress_handler(m->db, every, cb, arg);
}

void rfs_meta_lock(struct rfs_meta *m)
{
	pthread_mutex_lock(&m->lock);
}

void rfs_meta_unlock(struct rfs_meta *m)
{
	pthread_mutex_unlock(&m->lock);
}

/* ---------- changeset recorder ----------
 *
 * Every recorded transaction leaves its changeset in `pending`. SQLite's session extension
 * made them, but a new session per transaction re-read each touched table's schema (PRAGMA
 * table_xinfo) and prepared a SELECT per table to build the changeset: ~9% of the daemon's
 * CPU when copying many small files. The recorder writes the same format itself from the
 * pre-update hook (SQLite's changeset format: a table header 'T', the column count, one
 * primary-key byte per column, the name; then per change the op, an "indirect" byte and the
 * old and/or new values), with the table layouts read once at open.
 * It does not merge changes to one row within a transaction (an INSERT then an UPDATE are two
 * records, for example): sqlite3changegroup merges them when pending changesets are combined
 * for a log record (rfs_meta_pending_collect), which is the only way `pending` is read.
 * What it records: INSERT with every new value; DELETE with every old value; UPDATE with the
 * primary key and the old values of changed columns, and the new values of changed columns
 * (others "undefined"), or nothing when no column changed; an UPDATE that changes the primary
 * key as a DELETE and an INSERT - what the session extension records. */

static int shared_index(const char *table)
{
	for (size_t i = 0; i < NSHARED; i++)
		if (!strcmp(table, shared_tables[i]))
			return (int)i;
	return -1;
}

/* Reads the layout of every shared table (after any migration). */
static int rec_load_tables(struct rfs_meta *m)
{
	for (size_t t = 0; t < NSHARED; t++) {
		char sql[96];
		snprintf(sql, sizeof(sql), "PRAGMA table_xinfo(%s)", shared_tables[t]);
		sqlite3_stmt *s;
		if (sqlite3_prepare_v2(m->db, sql, -1, &s, NULL) != SQLITE_OK)
			return -EIO;
		int n = 0, r;
		while ((r = sqlite3_step(s)) == SQLITE_ROW && n < REC_MAX_COLS)
			m->tables[t].pk[n++] = (uint8_t)sqlite3_column_int(s, 5);
		sqlite3_finalize(s);
		if (n == 0 || r != SQLITE_DONE)
			return -EIO; /* no such table, or wider than we record */
		m->tables[t].ncol = n;
	}
	return 0;
}

static void rec_varint(struct rfs_buf *b, uint64_t v, int *err)
{
	uint8_t tmp[10];
	int n = 0;
	if (v & ((uint64_t)0xff000000 << 32)) { /* SQLite's varint: the ninth byte carries 8 bits */
		tmp[8] = (uint8_t)v;
		v >>= 8;
		for (int i = 7; i >= 0; i--) {
			tmp[i] = (uint8_t)((v & 0x7f) | 0x80);
			v >>= 7;
		}
		n = 9;
	} else {
		uint8_t rev[10];
		int k = 0;
		do {
			rev[k++] = (uint8_t)((v & 0x7f) | 0x80);
			v >>= 7;
		} while (v);
		rev[0] &= 0x7f;
		for (int i = 0; i < k; i++)
			tmp[i] = rev[k - 1 - i];
		n = k;
	}
	if (rfs_buf_append(b, tmp, (size_t)n) < 0)
		*err = 1;
}

/* One value: type byte, then 8 big-endian bytes (integer, real) or a varint length and the
 * bytes (text, blob), or nothing (NULL). */
static void rec_value(struct rfs_buf *b, sqlite3_value *v, int *err)
{
	int type = v ? sqlite3_value_type(v) : SQLITE_NULL;
	uint8_t t = type == SQLITE_INTEGER ? 1
		    : type == SQLITE_FLOAT ? 2
		    : type == SQLITE_TEXT  ? 3
		    : type == SQLITE_BLOB  ? 4
					   : 5;
	if (rfs_buf_append(b, &t, 1) < 0) {
		*err = 1;
		return;
	}
	if (t == 1 || t == 2) {
		uint64_t x;
		if (t == 1) {
			x = (uint64_t)sqlite3_value_int64(v);
		} else {
			double d = sqlite3_value_double(v);
			memcpy(&x, &d, 8);
		}
		uint8_t be[8];
		for (int i = 0; i < 8; i++)
			be[i] = (uint8_t)(x >> (56 - 8 * i));
		if (rfs_buf_append(b, be, 8) < 0)
			*err = 1;
	} else if (t == 3 || t == 4) {
		const void *p = t == 3 ? (const void *)sqlite3_value_text(v) : sqlite3_value_blob(v);
		int n = sqlite3_value_bytes(v);
		rec_varint(b, (uint64_t)n, err);
		if (n > 0 && rfs_buf_append(b, p, (size_t)n) < 0)
			*err = 1;
	}
}

static int rec_equal(sqlite3_value *a, sqlite3_value *b)
{
	int ta = sqlite3_value_type(a), tb = sqlite3_value_type(b);
	if (ta != tb)
		return 0;
	switch (ta) {
	case SQLITE_INTEGER:
		return sqlite3_value_int64(a) == sqlite3_value_int64(b);
	case SQLITE_FLOAT: {
		double x = sqlite3_value_double(a), y = sqlite3_value_double(b);
		return !memcmp(&x, &y, sizeof(x));
	}
	case SQLITE_NULL:
		return 1;
	default: {
		const void *pa = ta == SQLITE_TEXT ? (const void *)sqlite3_value_text(a) : sqlite3_value_blob(a);
		int na = sqlite3_value_bytes(a);
		const void *pb = tb == SQLITE_TEXT ? (const void *)sqlite3_value_text(b) : sqlite3_value_blob(b);
		int nb = sqlite3_value_bytes(b);
		return na == nb && (na == 0 || !memcmp(pa, pb, (size_t)na));
	}
	}
}

/* One change of a row: op (SQLITE_INSERT/DELETE/UPDATE) with the old and/or new record. For
 * UPDATE, changed[] says which columns differ. */
static void rec_change(struct rfs_meta *m, int t, int op, int depth, const uint8_t *changed)
{
	const struct rec_table *T = &m->tables[t];
	struct rfs_buf *b = &m->rec;
	int err = 0;
	if (m->rec_table != t) {
		uint8_t h = 'T';
		err |= rfs_buf_append(b, &h, 1) < 0;
		rec_varint(b, (uint64_t)T->ncol, &err);
		err |= rfs_buf_append(b, T->pk, (size_t)T->ncol) < 0;
		err |= rfs_buf_append(b, shared_tables[t], strlen(shared_tables[t]) + 1) < 0;
		m->rec_table = t;
	}
	uint8_t hdr[2] = {(uint8_t)op, depth > 0};
	err |= rfs_buf_append(b, hdr, 2) < 0;
	static const uint8_t undefined = 0;
	for (int rec = 0; rec < 2 && !err; rec++) {
		int old = rec == 0;
		if (old ? op == SQLITE_INSERT : op == SQLITE_DELETE)
			continue;
		for (int i = 0; i < T->ncol && !err; i++) {
			int with = op != SQLITE_UPDATE || (old ? (T->pk[i] || changed[i]) : (!T->pk[i] && changed[i]));
			if (!with) {
				err |= rfs_buf_append(b, &undefined, 1) < 0;
				continue;
			}
			sqlite3_value *v = NULL;
			if ((old ? sqlite3_preupdate_old(m->db, i, &v) : sqlite3_preupdate_new(m->db, i, &v)) !=
			    SQLITE_OK)
				err = 1;
			else
				rec_value(b, v, &err);
		}
	}
	if (err)
		m->rec_failed = 1;
}

static void rec_hook(void *ctx, sqlite3 *db, int op, const char *zdb, const char *ztab, sqlite3_int64 key1,
		     sqlite3_int64 key2)
{
	struct rfs_meta *m = ctx;
	if (!m->recording || strcmp(zdb, "main"))
		return;
	int t = shared_index(ztab);
	if (t < 0)
		return;
	const struct rec_table *T = &m->tables[t];
	int depth = sqlite3_preupdate_depth(db);
	if (sqlite3_preupdate_count(db) != T->ncol) {
		m->rec_failed = 1; /* the table changed shape under us */
		return;
	}
	if (op != SQLITE_UPDATE) {
		rec_change(m, t, op, depth, NULL);
		return;
	}
	uint8_t changed[REC_MAX_COLS] = {0};
	int any = 0, key_changed = key1 != key2;
	for (int i = 0; i < T->ncol; i++) {
		sqlite3_value *a, *b;
		if (sqlite3_preupdate_old(db, i, &a) != SQLITE_OK || sqlite3_preupdate_new(db, i, &b) != SQLITE_OK) {
			m->rec_failed = 1;
			return;
		}
		changed[i] = !rec_equal(a, b);
		any |= changed[i];
		if (T->pk[i] && changed[i])
			key_changed = 1;
	}
	if (key_changed) {
		rec_change(m, t, SQLITE_DELETE, depth, NULL);
		rec_change(m, t, SQLITE_INSERT, depth, NULL);
	} else if (any) {
		rec_change(m, t, SQLITE_UPDATE, depth, changed);
	}
}

/* The pre-update hook is one slot per connection: sqlite3session_create() on m->db would take
 * it (and treat the rfs_meta as a session). Nothing in roamfs uses sessions on m->db. */
static void rec_start(struct rfs_meta *m)
{
	m->recording = 1;
	m->rec_failed = 0;
	m->rec_table = -1;
	m->rec.len = 0;
}

static void rec_stop(struct rfs_meta *m)
{
	m->recording = 0;
	m->rec.len = 0;
	if (m->rec.cap > (4u << 20)) /* a huge transaction: do not keep its buffer */
		rfs_buf_free(&m->rec);
}

int rfs_meta_begin(struct rfs_meta *m)
{
	pthread_mutex_lock(&m->lock);
	if (exec(m, "BEGIN IMMEDIATE") < 0) {
		pthread_mutex_unlock(&m->lock);
		return -EIO;
	}
	m->in_txn = 1;
	rec_start(m);
	return 0;
}

int rfs_meta_begin_unrecorded(struct rfs_meta *m)
{
	pthread_mutex_lock(&m->lock);
	if (exec(m, "BEGIN IMMEDIATE") < 0) {
		pthread_mutex_unlock(&m->lock);
		return -EIO;
	}
	m->in_txn = 1;
	return 0;
}

int rfs_meta_commit(struct rfs_meta *m)
{
	int rc = 0;
	if (sqlite3_get_autocommit(m->db)) {
		/* SQLite rolled the transaction back itself (an I/O error, a full disk, an
		 * interrupt): nothing to commit, and nothing of it may reach `pending` */
		RFS_LOG(LOG_ERR, "metadata database: the transaction was rolled back by SQLite; the "
				 "operation is undone");
		rc = -EIO;
		goto rollback;
	}
	if (m->recording && m->rec_failed) {
		RFS_LOG(LOG_ERR, "metadata database: a statement of this operation failed or a change "
				 "could not be recorded; the operation is undone");
		rc = -EIO;
		goto rollback;
	}
	if (m->recording && m->rec.len) {
		m->recording = 0; /* the pending row itself is not a shared change */
		sqlite3_stmt *s = stmt(m, S_PENDING_ADD);
		if (!s) {
			rc = -EIO;
			goto rollback;
		}
		sqlite3_bind_blob(s, 1, m->rec.data, (int)m->rec.len, SQLITE_STATIC);
		rc = run(m, s, "saving a pending change");
		if (rc < 0)
			goto rollback;
	}
	rec_stop(m);
	if (sqlite3_exec(m->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		rc = sql_fail(m, "COMMIT");
		goto rollback; /* also reloads the id allocator: a lost reservation must not count */
	}
	m->in_txn = 0;
	pthread_mutex_unlock(&m->lock);
	return rc;
rollback:
	rfs_meta_rollback(m);
	return rc;
}

void rfs_meta_rollback(struct rfs_meta *m)
{
	rec_stop(m);
	m->in_txn = 0;
	if (!sqlite3_get_autocommit(m->db)) /* SQLite may have rolled it back already */
		exec(m, "ROLLBACK");
	/* the id allocator may have advanced inside the rolled-back transaction: reload */
	int64_t v;
	if (rfs_meta_local_get_int(m, "next_id", &v) == 0)
		m->next_id = (uint64_t)v;
	else
		m->next_id = 0;
	m->id_reserved = m->next_id;
	if (rfs_meta_local_get_int(m, "range_end", &v) == 0)
		m->range_end = (uint64_t)v;
	else
		m->range_end = 0;
	pthread_mutex_unlock(&m->lock);
}

int rfs_meta_get_attr(struct rfs_meta *m, uint64_t ino, struct rfs_attr *a)
{
	sqlite3_stmt *s = stmt(m, S_GET_ATTR);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	int r = sqlite3_step(s);
	int rc = 0;
	if (r == SQLITE_ROW) {
		a->ino = ino;
		a->mode = (uint32_t)sqlite3_column_int64(s, 0);
		a->uid = (uint32_t)sqlite3_column_int64(s, 1);
		a->gid = (uint32_t)sqlite3_column_int64(s, 2);
		a->nlink = (uint32_t)sqlite3_column_int64(s, 3);
		a->size = (uint64_t)sqlite3_column_int64(s, 4);
		a->rdev = (uint64_t)sqlite3_column_int64(s, 5);
		a->atime = sqlite3_column_int64(s, 6);
		a->mtime = sqlite3_column_int64(s, 7);
		a->ctime = sqlite3_column_int64(s, 8);
	} else if (r == SQLITE_DONE) {
		rc = -ENOENT;
	} else {
		rc = sql_fail(m, "reading an inode");
	}
	sqlite3_reset(s);
	return rc;
}

int rfs_meta_put_attr(struct rfs_meta *m, const struct rfs_attr *a)
{
	sqlite3_stmt *s = stmt(m, S_PUT_ATTR);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)a->ino);
	sqlite3_bind_int64(s, 2, a->mode);
	sqlite3_bind_int64(s, 3, a->uid);
	sqlite3_bind_int64(s, 4, a->gid);
	sqlite3_bind_int64(s, 5, a->nlink);
	sqlite3_bind_int64(s, 6, (sqlite3_int64)a->size);
	sqlite3_bind_int64(s, 7, (sqlite3_int64)a->rdev);
	sqlite3_bind_int64(s, 8, a->atime);
	sqlite3_bind_int64(s, 9, a->mtime);
	sqlite3_bind_int64(s, 10, a->ctime);
	return run(m, s, "writing an inode");
}

static int run_ino(struct rfs_meta *m, enum stmt_id id, uint64_t ino, const char *what)
{
	sqlite3_stmt *s = stmt(m, id);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	return run(m, s, what);
}

int rfs_meta_delete_inode(struct rfs_meta *m, uint64_t ino)
{
	int rc = run_ino(m, S_DEL_BMAP_ALL, ino, "deleting a block map");
	if (rc == 0)
		rc = run_ino(m, S_DEL_XATTR_ALL, ino, "deleting xattrs");
	if (rc == 0)
		rc = run_ino(m, S_DEL_SYMLINK, ino, "deleting a symlink");
	if (rc == 0)
		rc = run_ino(m, S_DEL_INODE, ino, "deleting an inode");
	return rc;
}

int rfs_meta_lookup(struct rfs_meta *m, uint64_t parent, const char *name, uint64_t *ino)
{
	sqlite3_stmt *s = stmt(m, S_LOOKUP);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)parent);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	int r = sqlite3_step(s);
	int rc = 0;
	if (r == SQLITE_ROW)
		*ino = (uint64_t)sqlite3_column_int64(s, 0);
	else if (r == SQLITE_DONE)
		rc = -ENOENT;
	else
		rc = sql_fail(m, "looking up a name");
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

int rfs_meta_add_dentry(struct rfs_meta *m, uint64_t parent, const char *name, uint64_t ino)
{
	uint64_t cookie;
	int rc = rfs_meta_alloc_id(m, &cookie);
	if (rc < 0)
		return rc;
	sqlite3_stmt *s = stmt(m, S_ADD_DENTRY);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)parent);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)ino);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)cookie);
	return run(m, s, "adding a directory entry");
}

int rfs_meta_del_dentry(struct rfs_meta *m, uint64_t parent, const char *name)
{
	sqlite3_stmt *s = stmt(m, S_DEL_DENTRY);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)parent);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	int rc = run(m, s, "removing a directory entry");
	if (rc == 0 && sqlite3_changes(m->db) == 0)
		rc = -ENOENT;
	return rc;
}

int rfs_meta_dir_is_empty(struct rfs_meta *m, uint64_t dir)
{
	sqlite3_stmt *s = stmt(m, S_DIR_EMPTY);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)dir);
	int r = sqlite3_step(s);
	sqlite3_reset(s);
	if (r == SQLITE_ROW)
		return 0;
	if (r == SQLITE_DONE)
		return 1;
	return sql_fail(m, "checking a directory");
}

int rfs_meta_readdir(struct rfs_meta *m, uint64_t dir, uint64_t after, rfs_dirent_cb cb, void *arg)
{
	sqlite3_stmt *s = stmt(m, S_READDIR);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)dir);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)after);
	int r, rc = 0;
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		if (cb(arg, (const char *)sqlite3_column_text(s, 0), (uint64_t)sqlite3_column_int64(s, 1),
		       (uint32_t)sqlite3_column_int64(s, 2), (uint64_t)sqlite3_column_int64(s, 3)))
			break;
	}
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		rc = sql_fail(m, "reading a directory");
	sqlite3_reset(s);
	return rc;
}

int rfs_meta_count_subdirs(struct rfs_meta *m, uint64_t dir, uint32_t *n)
{
	sqlite3_stmt *s = stmt(m, S_COUNT_SUBDIRS);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)dir);
	int rc = 0;
	if (sqlite3_step(s) == SQLITE_ROW)
		*n = (uint32_t)sqlite3_column_int64(s, 0);
	else
		rc = sql_fail(m, "counting subdirectories");
	sqlite3_reset(s);
	return rc;
}

int rfs_meta_parent_of(struct rfs_meta *m, uint64_t dir, uint64_t *parent)
{
	if (dir == RFS_ROOT_INO) {
		*parent = RFS_ROOT_INO;
		return 0;
	}
	sqlite3_stmt *s = stmt(m, S_PARENT_OF);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)dir);
	int r = sqlite3_step(s);
	int rc = 0;
	if (r == SQLITE_ROW)
		*parent = (uint64_t)sqlite3_column_int64(s, 0);
	else if (r == SQLITE_DONE)
		rc = -ENOENT;
	else
		rc = sql_fail(m, "finding a parent directory");
	sqlite3_reset(s);
	return rc;
}

int rfs_meta_get_symlink(struct rfs_meta *m, uint64_t ino, char *buf, size_t len)
{
	sqlite3_stmt *s = stmt(m, S_GET_SYMLINK);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	int r = sqlite3_step(s);
	int rc = 0;
	if (r == SQLITE_ROW) {
		int n = sqlite3_column_bytes(s, 0);
		if ((size_t)n + 1 > len) {
			rc = -ENAMETOOLONG;
		} else {
			memcpy(buf, sqlite3_column_blob(s, 0), (size_t)n);
			buf[n] = 0;
		}
	} else if (r == SQLITE_DONE) {
		rc = -ENOENT;
	} else {
		rc = sql_fail(m, "reading a symlink");
	}
	sqlite3_reset(s);
	return rc;
}

int rfs_meta_set_symlink(struct rfs_meta *m, uint64_t ino, const char *target)
{
	sqlite3_stmt *s = stmt(m, S_SET_SYMLINK);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	sqlite3_bind_blob(s, 2, target, (int)strlen(target), SQLITE_STATIC);
	return run(m, s, "writing a symlink");
}

int rfs_meta_bmap_get(struct rfs_meta *m, uint64_t ino, uint64_t idx, uint8_t hash[RFS_HASH_LEN])
{
	sqlite3_stmt *s = stmt(m, S_BMAP_GET);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)idx);
	int r = sqlite3_step(s);
	int rc = 0;
	if (r == SQLITE_ROW && sqlite3_column_bytes(s, 0) == RFS_HASH_LEN)
		memcpy(hash, sqlite3_column_blob(s, 0), RFS_HASH_LEN);
	else if (r == SQLITE_DONE)
		rc = -ENOENT;
	else
		rc = sql_fail(m, "reading a block map");
	sqlite3_reset(s);
	return rc;
}

int rfs_meta_bmap_set(struct rfs_meta *m, uint64_t ino, uint64_t idx, const uint8_t hash[RFS_HASH_LEN])
{
	sqlite3_stmt *s = stmt(m, S_BMAP_SET);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)idx);
	sqlite3_bind_blob(s, 3, hash, RFS_HASH_LEN, SQLITE_STATIC);
	return run(m, s, "writing a block map");
}

int rfs_meta_bmap_del(struct rfs_meta *m, uint64_t ino, uint64_t idx)
{
	sqlite3_stmt *s = stmt(m, S_BMAP_DEL);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)idx);
	return run(m, s, "removing a block map entry");
}

int rfs_meta_bmap_truncate(struct rfs_meta *m, uint64_t ino, uint64_t first)
{
	sqlite3_stmt *s = stmt(m, S_BMAP_TRUNC);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)first);
	return run(m, s, "truncating a block map");
}

int rfs_meta_bmap_each(struct rfs_meta *m, uint64_t ino, rfs_bmap_cb cb, void *arg)
{
	sqlite3_stmt *s = stmt(m, S_BMAP_EACH);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	int r, rc = 0;
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		if (sqlite3_column_bytes(s, 1) != RFS_HASH_LEN)
			continue;
		if (cb(arg, (uint64_t)sqlite3_column_int64(s, 0), sqlite3_column_blob(s, 1)))
			break;
	}
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		rc = sql_fail(m, "reading a block map");
	sqlite3_reset(s);
	return rc;
}

/* off, slen, rlen, codec, xsum of a blocks row, from column c on. */
static void loc_columns(sqlite3_stmt *s, int c, struct rfs_block_loc *loc)
{
	loc->off = (uint64_t)sqlite3_column_int64(s, c);
	loc->slen = (uint32_t)sqlite3_column_int64(s, c + 1);
	loc->rlen = (uint32_t)sqlite3_column_int64(s, c + 2);
	loc->codec = (uint8_t)sqlite3_column_int64(s, c + 3);
	loc->has_xsum = sqlite3_column_type(s, c + 4) == SQLITE_INTEGER;
	loc->xsum = loc->has_xsum ? (uint64_t)sqlite3_column_int64(s, c + 4) : 0;
}

int rfs_meta_block_get(struct rfs_meta *m, const uint8_t hash[RFS_HASH_LEN], struct rfs_block_loc *loc)
{
	sqlite3_stmt *s = stmt(m, S_BLOCK_GET);
	if (!s)
		return -EIO;
	sqlite3_bind_blob(s, 1, hash, RFS_HASH_LEN, SQLITE_STATIC);
	int r = sqlite3_step(s);
	int rc = 0;
	if (r == SQLITE_ROW) {
		snprintf(loc->pack, sizeof(loc->pack), "%s", (const char *)sqlite3_column_text(s, 0));
		loc_columns(s, 1, loc);
	} else if (r == SQLITE_DONE) {
		rc = -ENOENT;
	} else {
		rc = sql_fail(m, "reading a block location");
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

int rfs_meta_block_put(struct rfs_meta *m, const uint8_t hash[RFS_HASH_LEN], const struct rfs_block_loc *loc)
{
	sqlite3_stmt *s = stmt(m, S_BLOCK_PUT);
	if (!s)
		return -EIO;
	sqlite3_bind_blob(s, 1, hash, RFS_HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, loc->pack, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)loc->off);
	sqlite3_bind_int64(s, 4, loc->slen);
	sqlite3_bind_int64(s, 5, loc->rlen);
	sqlite3_bind_int64(s, 6, loc->codec);
	if (loc->has_xsum)
		sqlite3_bind_int64(s, 7, (sqlite3_int64)loc->xsum);
	else
		sqlite3_bind_null(s, 7);
	return run(m, s, "writing a block location");
}

int rfs_meta_blocks_in_range(struct rfs_meta *m, const char *pack, uint64_t from, uint64_t to, rfs_block_cb cb,
			     void *arg)
{
	sqlite3_stmt *s = stmt(m, S_BLOCKS_RANGE);
	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, pack, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)from);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)to);
	int r, rc = 0;
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		if (sqlite3_column_bytes(s, 0) != RFS_HASH_LEN)
			continue;
		struct rfs_block_loc loc;
		snprintf(loc.pack, sizeof(loc.pack), "%s", pack);
		loc_columns(s, 1, &loc);
		if (cb(arg, sqlite3_column_blob(s, 0), &loc))
			break;
	}
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		rc = sql_fail(m, "listing blocks of a pack");
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

int rfs_meta_xattr_get(struct rfs_meta *m, uint64_t ino, const char *name, struct rfs_buf *out)
{
	sqlite3_stmt *s = stmt(m, S_XATTR_GET);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	int r = sqlite3_step(s);
	int rc = 0;
	if (r == SQLITE_ROW)
		rc = rfs_buf_append(out, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0));
	else if (r == SQLITE_DONE)
		rc = -ENODATA;
	else
		rc = sql_fail(m, "reading an xattr");
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

int rfs_meta_xattr_set(struct rfs_meta *m, uint64_t ino, const char *name, const void *v, size_t len, int flags)
{
	struct rfs_buf cur = {0};
	int rc = rfs_meta_xattr_get(m, ino, name, &cur);
	rfs_buf_free(&cur);
	if (rc < 0 && rc != -ENODATA)
		return rc;
	int exists = rc == 0;
	if (exists && (flags & XATTR_CREATE))
		return -EEXIST;
	if (!exists && (flags & XATTR_REPLACE))
		return -ENODATA;
	static const char empty[1];
	sqlite3_stmt *s;
	if (exists) {
		s = stmt(m, S_XATTR_UPDATE);
		if (!s)
			return -EIO;
		sqlite3_bind_blob(s, 1, len ? v : empty, (int)len, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)ino);
		sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC);
	} else {
		s = stmt(m, S_XATTR_INSERT);
		if (!s)
			return -EIO;
		sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
		sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
		sqlite3_bind_blob(s, 3, len ? v : empty, (int)len, SQLITE_STATIC);
	}
	return run(m, s, "writing an xattr");
}

int rfs_meta_xattr_list(struct rfs_meta *m, uint64_t ino, struct rfs_buf *out)
{
	sqlite3_stmt *s = stmt(m, S_XATTR_LIST);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	int r, rc = 0;
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		const char *n = (const char *)sqlite3_column_text(s, 0);
		rc = rfs_buf_append(out, n, strlen(n) + 1);
		if (rc < 0)
			break;
	}
	if (rc == 0 && r != SQLITE_DONE)
		rc = sql_fail(m, "listing xattrs");
	sqlite3_reset(s);
	return rc;
}

int rfs_meta_xattr_remove(struct rfs_meta *m, uint64_t ino, const char *name)
{
	sqlite3_stmt *s = stmt(m, S_XATTR_DEL);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	int rc = run(m, s, "removing an xattr");
	if (rc == 0 && sqlite3_changes(m->db) == 0)
		rc = -ENODATA;
	return rc;
}

int rfs_meta_local_get_int(struct rfs_meta *m, const char *key, int64_t *v)
{
	sqlite3_stmt *s = stmt(m, S_LOCAL_GET);
	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	int r = sqlite3_step(s);
	int rc = 0;
	if (r == SQLITE_ROW)
		*v = sqlite3_column_int64(s, 0);
	else if (r == SQLITE_DONE)
		rc = -ENOENT;
	else
		rc = sql_fail(m, "reading local state");
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

int rfs_meta_local_set_int(struct rfs_meta *m, const char *key, int64_t v)
{
	sqlite3_stmt *s = stmt(m, S_LOCAL_SET);
	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, v);
	return run(m, s, "writing local state");
}

int rfs_meta_local_get_text(struct rfs_meta *m, const char *key, char *buf, size_t len)
{
	sqlite3_stmt *s = stmt(m, S_LOCAL_GET);
	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	int r = sqlite3_step(s);
	int rc = 0;
	if (r == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		snprintf(buf, len, "%s", (const char *)sqlite3_column_text(s, 0));
	else if (r == SQLITE_DONE || r == SQLITE_ROW)
		rc = -ENOENT;
	else
		rc = sql_fail(m, "reading local state");
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

int rfs_meta_local_set_text(struct rfs_meta *m, const char *key, const char *v)
{
	sqlite3_stmt *s = stmt(m, S_LOCAL_SET);
	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, v, -1, SQLITE_STATIC);
	return run(m, s, "writing local state");
}

int rfs_meta_local_delete_prefix(struct rfs_meta *m, const char *prefix)
{
	sqlite3_stmt *s = stmt(m, S_LOCAL_DEL_PREFIX);
	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, prefix, -1, SQLITE_STATIC);
	return run(m, s, "deleting local state");
}

int rfs_meta_alloc_id(struct rfs_meta *m, uint64_t *id)
{
	int rc;
	if (m->next_id == 0 || m->next_id >= m->range_end) {
		/* Claim a random free range. Ranges are picked at random (2^38 of them) rather
		 * than "next after the highest" so that two hosts claiming at the same time
		 * practically never pick the same one; the claim is still recorded in the log. */
		sqlite3_stmt *s = stmt(m, S_RANGE_TAKEN);
		if (!s)
			return -EIO;
		uint64_t start = 0;
		for (int tries = 0; tries < 64 && !start; tries++) {
			uint64_t r;
			rfs_random(&r, sizeof(r));
			start = ((r % (1ULL << 38)) + 1) * RFS_ID_RANGE;
			sqlite3_bind_int64(s, 1, (sqlite3_int64)start);
			if (sqlite3_step(s) == SQLITE_ROW)
				start = 0; /* taken */
			sqlite3_reset(s);
		}
		if (!start)
			return -ENOSPC;
		char host[64] = "";
		rfs_meta_local_get_text(m, "host_id", host, sizeof(host));
		s = stmt(m, S_ADD_RANGE);
		if (!s)
			return -EIO;
		sqlite3_bind_int64(s, 1, (sqlite3_int64)start);
		sqlite3_bind_text(s, 2, host, -1, SQLITE_STATIC);
		rc = run(m, s, "claiming an inode range");
		if (rc < 0)
			return rc;
		m->next_id = m->id_reserved = start;
		m->range_end = start + RFS_ID_RANGE;
		rc = rfs_meta_local_set_int(m, "range_end", (int64_t)m->range_end);
		if (rc < 0)
			return rc;
	}
	*id = m->next_id++;
	if (m->next_id <= m->id_reserved)
		return 0;
	/* Persist a reservation, not every id: the stored next_id is where a restart continues
	 * (ids below it may have been handed out), so a crash leaves a gap, never a reused id.
	 * One `local` row write per RFS_ID_RESERVE creates instead of one per create. */
	m->id_reserved = m->next_id - 1 + RFS_ID_RESERVE;
	if (m->id_reserved > m->range_end)
		m->id_reserved = m->range_end;
	return rfs_meta_local_set_int(m, "next_id", (int64_t)m->id_reserved);
}

int rfs_meta_pending_collect(struct rfs_meta *m, struct rfs_buf *out, int64_t *upto, int64_t *count)
{
	sqlite3_changegroup *g = NULL;
	int rc = 0;
	int64_t max_id = 0, n = 0;
	if (sqlite3changegroup_new(&g) != SQLITE_OK)
		return -ENOMEM;
	sqlite3_stmt *s = stmt(m, S_PENDING_SCAN);
	if (!s) {
		rc = -EIO;
		goto out;
	}
	sqlite3_bind_int64(s, 1, *upto > 0 ? *upto : INT64_MAX);
	int r;
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		max_id = sqlite3_column_int64(s, 0);
		if (sqlite3changegroup_add(g, sqlite3_column_bytes(s, 1), (void *)sqlite3_column_blob(s, 1)) !=
		    SQLITE_OK) {
			RFS_LOG(LOG_ERR, "pending change %lld cannot be combined", (long long)max_id);
			rc = -EIO;
			break;
		}
		n++;
	}
	sqlite3_reset(s);
	if (rc < 0)
		goto out;
	if (n) {
		int len = 0;
		void *p = NULL;
		if (sqlite3changegroup_output(g, &len, &p) != SQLITE_OK) {
			rc = -ENOMEM;
			goto out;
		}
		rc = rfs_buf_append(out, p, (size_t)len);
		sqlite3_free(p);
	}
	*upto = max_id;
	if (count)
		*count = n;
out:
	sqlite3changegroup_delete(g);
	return rc;
}

int rfs_meta_pending_delete_upto(struct rfs_meta *m, int64_t upto)
{
	sqlite3_stmt *s = stmt(m, S_PENDING_DEL);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, upto);
	return run(m, s, "removing committed changes");
}

int rfs_meta_pending_count(struct rfs_meta *m, int64_t *n)
{
	sqlite3_stmt *s = stmt(m, S_PENDING_COUNT);
	if (!s)
		return -EIO;
	int rc = 0;
	if (sqlite3_step(s) == SQLITE_ROW)
		*n = sqlite3_column_int64(s, 0);
	else
		rc = sql_fail(m, "counting pending changes");
	sqlite3_reset(s);
	return rc;
}

static int apply_conflict(void *ctx, int why, sqlite3_changeset_iter *it)
{
	(void)ctx;
	(void)it;
	if (why == SQLITE_CHANGESET_DATA || why == SQLITE_CHANGESET_CONFLICT)
		return SQLITE_CHANGESET_REPLACE;
	return SQLITE_CHANGESET_OMIT;
}

/* ---------- changeset structure check ---------- */

/* SQLite's session varint: 7 bits per byte, high bit set to continue, the ninth byte whole. */
static int cs_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v)
{
	uint64_t x = 0;
	for (int k = 0; k < 9; k++) {
		if (*i >= n)
			return -1;
		uint8_t c = p[(*i)++];
		if (k == 8) {
			*v = (x << 8) | c;
			return 0;
		}
		x = (x << 7) | (c & 0x7f);
		if (!(c & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -1;
}

/* One old.* or new.* record of ncol values: type byte, then 8 bytes (integer, real),
 * varint length + bytes (text, blob) or nothing (absent, NULL). */
static int cs_record(const uint8_t *p, size_t n, size_t *i, uint64_t ncol)
{
	for (uint64_t c = 0; c < ncol; c++) {
		if (*i >= n)
			return -1;
		uint8_t t = p[(*i)++];
		uint64_t len = 0;
		if (t == 1 || t == 2)
			len = 8;
		else if ((t == 3 || t == 4) && cs_varint(p, n, i, &len) < 0)
			return -1;
		else if (t != 0 && t != 3 && t != 4 && t != 5)
			return -1;
		if (len > n - *i)
			return -1;
		*i += (size_t)len;
	}
	return 0;
}

int rfs_meta_changeset_check(const void *cs, size_t len)
{
	const uint8_t *p = cs;
	size_t i = 0;
	uint64_t ncol = 0;
	while (i < len) {
		if (p[i] == 'T') { /* table header: column count, PK flags, name */
			i++;
			if (cs_varint(p, len, &i, &ncol) < 0 || ncol == 0 || ncol > 1000 || ncol > len - i)
				return -EIO;
			i += (size_t)ncol;
			const uint8_t *nul = i < len ? memchr(p + i, 0, len - i) : NULL;
			if (!nul)
				return -EIO;
			i = (size_t)(nul - p) + 1;
			continue;
		}
		if (!ncol || len - i < 2)
			return -EIO; /* a change before any table, or cut after its op byte */
		uint8_t op = p[i];
		i += 2; /* op, indirect flag */
		int old = op == SQLITE_DELETE || op == SQLITE_UPDATE, new = op == SQLITE_INSERT || op == SQLITE_UPDATE;
		if (!old && !new)
			return -EIO;
		if ((old && cs_record(p, len, &i, ncol) < 0) || (new &&cs_record(p, len, &i, ncol) < 0))
			return -EIO;
	}
	return 0;
}

/* Rewrites a well-formed changeset so that the changes it records for table tab with ncol_old
 * columns carry one more, trailing column: NULL in INSERT and DELETE records, "unchanged" in
 * UPDATEs - what those rows hold after ALTER TABLE ADD COLUMN. sqlite3changegroup refuses to
 * combine changesets whose column counts differ, so changes recorded before the column was
 * added and still pending are widened with it. */
static int changeset_widen(const uint8_t *p, size_t len, const char *tab, uint64_t ncol_old, struct rfs_buf *out)
{
	static const uint8_t null_value = 5, unchanged = 0;
	size_t i = 0;
	uint64_t ncol = 0;
	int widen = 0, rc = rfs_meta_changeset_check(p, len);
	if (rc < 0 || ncol_old >= 127)
		return -EIO;
	while (i < len && rc == 0) {
		size_t start = i;
		if (p[i] == 'T') { /* table header (structure checked above) */
			i++;
			cs_varint(p, len, &i, &ncol);
			size_t pk = i;
			const uint8_t *name = p + pk + ncol;
			i = (size_t)((const uint8_t *)memchr(name, 0, len - pk - (size_t)ncol) - p) + 1;
			widen = ncol == ncol_old && !strcmp((const char *)name, tab);
			if (!widen) {
				rc = rfs_buf_append(out, p + start, i - start);
				continue;
			}
			uint8_t hdr[2] = {'T', (uint8_t)(ncol + 1)};
			if ((rc = rfs_buf_append(out, hdr, 2)) == 0 &&
			    (rc = rfs_buf_append(out, p + pk, (size_t)ncol)) == 0 &&
			    (rc = rfs_buf_append(out, &unchanged, 1)) == 0) /* not part of the primary key */
				rc = rfs_buf_append(out, name, i - (size_t)(name - p));
			continue;
		}
		uint8_t op = p[i];
		i += 2;
		int old = op == SQLITE_DELETE || op == SQLITE_UPDATE, new = op == SQLITE_INSERT || op == SQLITE_UPDATE;
		const uint8_t *extra = op == SQLITE_UPDATE ? &unchanged : &null_value;
		rc = rfs_buf_append(out, p + start, 2);
		for (int rec = 0; rec < 2 && rc == 0; rec++) {
			if (!(rec == 0 ? old : new))
				continue;
			size_t r0 = i;
			cs_record(p, len, &i, ncol);
			rc = rfs_buf_append(out, p + r0, i - r0);
			if (rc == 0 && widen)
				rc = rfs_buf_append(out, extra, 1);
		}
	}
	return rc;
}

/* Schema 1 -> 2: blocks gains xsum (NULL for the blocks already there: they are verified by
 * their SHA-256), and pending changesets recorded against the old table are widened. One
 * transaction: a crash leaves the database at version 1, migrated again at the next open. */
static int migrate_v1(struct rfs_meta *m)
{
	int rc = exec(m, "BEGIN IMMEDIATE");
	if (rc < 0)
		return rc;
	sqlite3_stmt *scan = NULL, *upd = NULL;
	if (sqlite3_prepare_v2(m->db, "SELECT id, cs FROM pending ORDER BY id", -1, &scan, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(m->db, "UPDATE pending SET cs=? WHERE id=?", -1, &upd, NULL) != SQLITE_OK) {
		rc = -EIO;
		goto out;
	}
	if ((rc = exec(m, "ALTER TABLE blocks ADD COLUMN xsum INT")) < 0)
		goto out;
	int r = SQLITE_DONE;
	while (rc == 0 && (r = sqlite3_step(scan)) == SQLITE_ROW) {
		struct rfs_buf w = {0};
		rc = changeset_widen(sqlite3_column_blob(scan, 1), (size_t)sqlite3_column_bytes(scan, 1), "blocks", 6,
				     &w);
		if (rc == 0) {
			sqlite3_bind_blob(upd, 1, w.data ? (const void *)w.data : "", (int)w.len, SQLITE_STATIC);
			sqlite3_bind_int64(upd, 2, sqlite3_column_int64(scan, 0));
			rc = sqlite3_step(upd) == SQLITE_DONE ? 0 : -EIO;
			sqlite3_reset(upd);
		} else {
			RFS_LOG(LOG_ERR, "metadata database: pending change %lld is damaged; cannot upgrade it",
				(long long)sqlite3_column_int64(scan, 0));
		}
		rfs_buf_free(&w);
	}
	if (rc == 0 && r != SQLITE_DONE)
		rc = sql_fail(m, "reading the pending changes to upgrade");
	if (rc == 0 && sqlite3_get_autocommit(m->db))
		rc = -EIO; /* SQLite rolled the upgrade back: do not mark the database upgraded */
	if (rc == 0)
		rc = rfs_meta_local_set_int(m, "schema", META_SCHEMA_VERSION);
out:
	sqlite3_finalize(scan);
	sqlite3_finalize(upd);
	if (rc == 0 && (rc = exec(m, "COMMIT")) == 0)
		RFS_LOG(LOG_INFO, "metadata database upgraded to schema %d (blocks.xsum)", META_SCHEMA_VERSION);
	else
		exec(m, "ROLLBACK");
	return rc;
}

int rfs_meta_apply_changeset(struct rfs_meta *m, const void *cs, size_t len)
{
	if (rfs_meta_changeset_check(cs, len) < 0) {
		RFS_LOG(LOG_ERR, "metadata database: a log entry's changeset is damaged (%zu bytes); not applied", len);
		return -EIO;
	}
	int r = sqlite3changeset_apply(m->db, (int)len, (void *)cs, NULL, apply_conflict, NULL);
	if (r != SQLITE_OK)
		return sql_fail(m, "applying a log entry");
	return 0;
}

int rfs_meta_orphans(struct rfs_meta *m, int (*cb)(void *arg, uint64_t ino), void *arg)
{
	sqlite3_stmt *s = stmt(m, S_ORPHANS);
	if (!s)
		return -EIO;
	uint64_t inos[256];
	size_t n = 0;
	while (n < 256 && sqlite3_step(s) == SQLITE_ROW)
		inos[n++] = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	for (size_t i = 0; i < n; i++)
		if (cb(arg, inos[i]))
			break;
	return 0;
}

int rfs_meta_count_inodes(struct rfs_meta *m, uint64_t *n)
{
	sqlite3_stmt *s = stmt(m, S_COUNT_INODES);
	if (!s)
		return -EIO;
	int rc = 0;
	if (sqlite3_step(s) == SQLITE_ROW)
		*n = (uint64_t)sqlite3_column_int64(s, 0);
	else
		rc = sql_fail(m, "counting inodes");
	sqlite3_reset(s);
	return rc;
}

int rfs_meta_total_size(struct rfs_meta *m, uint64_t *bytes)
{
	sqlite3_stmt *s = stmt(m, S_TOTAL_SIZE);
	if (!s)
		return -EIO;
	int rc = 0;
	if (sqlite3_step(s) == SQLITE_ROW)
		*bytes = (uint64_t)sqlite3_column_int64(s, 0);
	else
		rc = sql_fail(m, "summing sizes");
	sqlite3_reset(s);
	return rc;
}

/* ---------- applying remote records, rebase ---------- */

static int touched_iter(sqlite3_changeset_iter *it, rfs_touch_cb cb, void *arg)
{
	const char *tab;
	int ncol, op, indirect;
	while (sqlite3changeset_next(it) == SQLITE_ROW) {
		if (sqlite3changeset_op(it, &tab, &ncol, &op, &indirect) != SQLITE_OK)
			return -EIO;
		sqlite3_value *v0 = NULL, *v1 = NULL;
		/* primary key columns are present in old (update/delete) or new (insert) values */
		if (op == SQLITE_INSERT) {
			sqlite3changeset_new(it, 0, &v0);
			if (!strcmp(tab, "dentries"))
				sqlite3changeset_new(it, 1, &v1);
		} else {
			sqlite3changeset_old(it, 0, &v0);
			if (!strcmp(tab, "dentries"))
				sqlite3changeset_old(it, 1, &v1);
		}
		if (!v0)
			continue;
		if (!strcmp(tab, "dentries")) {
			if (v1 && sqlite3_value_type(v1) == SQLITE_TEXT)
				cb(arg, 0, (uint64_t)sqlite3_value_int64(v0), (const char *)sqlite3_value_text(v1));
			/* the entry's target changed too: its attributes (nlink) may differ */
			sqlite3_value *vi = NULL;
			if (op == SQLITE_INSERT)
				sqlite3changeset_new(it, 2, &vi);
			else if (op == SQLITE_DELETE)
				sqlite3changeset_old(it, 2, &vi);
			if (vi)
				cb(arg, (uint64_t)sqlite3_value_int64(vi), 0, NULL);
		} else if (!strcmp(tab, "trash")) {
			/* columns: ino, name, parent, deleted: the entry lives in the virtual .trash */
			sqlite3_value *vn = NULL;
			if (op == SQLITE_INSERT)
				sqlite3changeset_new(it, 1, &vn);
			else if (op == SQLITE_DELETE)
				sqlite3changeset_old(it, 1, &vn);
			if (vn && sqlite3_value_type(vn) == SQLITE_TEXT)
				cb(arg, 0, RFS_TRASH_DIR_INO, (const char *)sqlite3_value_text(vn));
			cb(arg, (uint64_t)sqlite3_value_int64(v0), 0, NULL);
		} else if (!strcmp(tab, "inodes") || !strcmp(tab, "bmap") || !strcmp(tab, "xattrs") ||
			   !strcmp(tab, "symlinks")) {
			cb(arg, (uint64_t)sqlite3_value_int64(v0), 0, NULL);
		}
	}
	return 0;
}

int rfs_meta_changeset_touched(const void *cs, size_t len, rfs_touch_cb cb, void *arg)
{
	sqlite3_changeset_iter *it;
	if (rfs_meta_changeset_check(cs, len) < 0 || sqlite3changeset_start(&it, (int)len, (void *)cs) != SQLITE_OK)
		return -EINVAL;
	int rc = touched_iter(it, cb, arg);
	sqlite3changeset_finalize(it);
	return rc;
}

struct parents {
	uint64_t *v;
	size_t n, cap;
};

static void parents_add(void *arg, uint64_t ino, uint64_t parent, const char *name)
{
	(void)ino;
	struct parents *p = arg;
	if (!name)
		return;
	for (size_t i = 0; i < p->n; i++)
		if (p->v[i] == parent)
			return;
	if (p->n == p->cap) {
		size_t nc = p->cap ? p->cap * 2 : 16;
		uint64_t *nv = realloc(p->v, nc * sizeof(*nv));
		if (!nv)
			return;
		p->v = nv;
		p->cap = nc;
	}
	p->v[p->n++] = parent;
}

/* Link counts are derived: 2 + subdirectories, recomputed after merging. */
static int fix_dir_nlinks(struct rfs_meta *m, const struct parents *p)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(m->db,
			       "UPDATE inodes SET nlink = 2 + (SELECT count(*) FROM dentries d JOIN inodes i"
			       " ON i.ino=d.ino WHERE d.parent=?1 AND (i.mode & 61440)=16384)"
			       " WHERE ino=?1 AND (mode & 61440)=16384 AND nlink > 0",
			       -1, &s, NULL) != SQLITE_OK)
		return sql_fail(m, "preparing link count repair");
	int rc = 0;
	for (size_t i = 0; i < p->n && rc == 0; i++) {
		sqlite3_bind_int64(s, 1, (sqlite3_int64)p->v[i]);
		if (sqlite3_step(s) != SQLITE_DONE)
			rc = sql_fail(m, "repairing a link count");
		sqlite3_reset(s);
	}
	sqlite3_finalize(s);
	return rc;
}

struct dentry_conflict {
	uint64_t parent, ino, cookie;
	char name[256];
};

struct rebase_ctx {
	struct dentry_conflict *d;
	size_t nd, capd;
	int other; /* rows changed on both sides (local value kept) or deleted remotely */
};

static int rebase_conflict(void *arg, int why, sqlite3_changeset_iter *it)
{
	struct rebase_ctx *c = arg;
	const char *tab;
	int ncol, op, indirect;
	sqlite3changeset_op(it, &tab, &ncol, &op, &indirect);
	if (why == SQLITE_CHANGESET_CONFLICT && op == SQLITE_INSERT && !strcmp(tab, "dentries")) {
		sqlite3_value *vp = NULL, *vn = NULL, *vi = NULL, *vc = NULL;
		sqlite3changeset_new(it, 0, &vp);
		sqlite3changeset_new(it, 1, &vn);
		sqlite3changeset_new(it, 2, &vi);
		sqlite3changeset_new(it, 3, &vc);
		if (vp && vn && vi && vc && c->nd < 100000) {
			if (c->nd == c->capd) {
				size_t nc = c->capd ? c->capd * 2 : 8;
				struct dentry_conflict *nd = realloc(c->d, nc * sizeof(*nd));
				if (!nd)
					return SQLITE_CHANGESET_ABORT;
				c->d = nd;
				c->capd = nc;
			}
			struct dentry_conflict *d = &c->d[c->nd++];
			d->parent = (uint64_t)sqlite3_value_int64(vp);
			snprintf(d->name, sizeof(d->name), "%s", (const char *)sqlite3_value_text(vn));
			d->ino = (uint64_t)sqlite3_value_int64(vi);
			d->cookie = (uint64_t)sqlite3_value_int64(vc);
		}
		return SQLITE_CHANGESET_OMIT; /* the remote entry keeps the name */
	}
	if (strcmp(tab, "ranges") && strcmp(tab, "blocks"))
		c->other++;
	if (why == SQLITE_CHANGESET_DATA || why == SQLITE_CHANGESET_CONFLICT)
		return SQLITE_CHANGESET_REPLACE; /* the later commit (ours) wins */
	return SQLITE_CHANGESET_OMIT;
}

static int replace_conflict(void *ctx, int why, sqlite3_changeset_iter *it)
{
	(void)ctx;
	(void)it;
	if (why == SQLITE_CHANGESET_DATA || why == SQLITE_CHANGESET_CONFLICT)
		return SQLITE_CHANGESET_REPLACE;
	return SQLITE_CHANGESET_OMIT;
}

static void record_conflict(struct rfs_meta *m, const char *what)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(m->db, "INSERT INTO conflicts(time, what) VALUES(?,?)", -1, &s, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_int64(s, 1, rfs_now_ns());
	sqlite3_bind_text(s, 2, what, -1, SQLITE_TRANSIENT);
	sqlite3_step(s);
	sqlite3_finalize(s);
	RFS_LOG(LOG_WARNING, "sync conflict: %s", what);
}

int rfs_meta_apply_remote(struct rfs_meta *m, const void *cs, size_t len, const char *host_id)
{
	struct rfs_buf local = {0};
	struct parents par = {0};
	struct rebase_ctx rc_ctx = {0};
	void *inv = NULL;
	int ninv = 0, rc;
	int64_t upto = 0, count = 0;

	if (rfs_meta_changeset_check(cs, len) < 0) {
		RFS_LOG(LOG_ERR, "metadata database: a log entry's changeset is damaged (%zu bytes); not applied", len);
		return -EIO;
	}
	rc = rfs_meta_pending_collect(m, &local, &upto, &count);
	if (rc < 0)
		goto out;
	rfs_meta_changeset_touched(cs, len, parents_add, &par);
	if (local.len) {
		rfs_meta_changeset_touched(local.data, local.len, parents_add, &par);
		/* 1. undo our unpublished changes */
		if (sqlite3changeset_invert((int)local.len, local.data, &ninv, &inv) != SQLITE_OK) {
			rc = -ENOMEM;
			goto out;
		}
		if (sqlite3changeset_apply(m->db, ninv, inv, NULL, replace_conflict, NULL) != SQLITE_OK) {
			rc = sql_fail(m, "undoing local changes for a rebase");
			goto out;
		}
	}
	/* 2. the remote record, as every host applies it */
	if (sqlite3changeset_apply(m->db, (int)len, (void *)cs, NULL, replace_conflict, NULL) != SQLITE_OK) {
		rc = sql_fail(m, "applying a log record");
		goto out;
	}
	if (local.len) {
		/* 3. our changes again, recorded afresh */
		rec_start(m);
		if (sqlite3changeset_apply(m->db, (int)local.len, local.data, NULL, rebase_conflict, &rc_ctx) !=
		    SQLITE_OK) {
			rc = sql_fail(m, "re-applying local changes");
			goto out;
		}
		char stamp[32];
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm);
		for (size_t i = 0; i < rc_ctx.nd; i++) {
			struct dentry_conflict *d = &rc_ctx.d[i];
			char newname[512], what[1024];
			snprintf(newname, sizeof(newname), "%.200s.conflict-%s-%s", d->name, host_id, stamp);
			sqlite3_stmt *s = stmt(m, S_ADD_DENTRY);
			if (!s) {
				rc = -EIO;
				goto out;
			}
			sqlite3_bind_int64(s, 1, (sqlite3_int64)d->parent);
			sqlite3_bind_text(s, 2, newname, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 3, (sqlite3_int64)d->ino);
			sqlite3_bind_int64(s, 4, (sqlite3_int64)d->cookie);
			rc = run(m, s, "adding a conflict copy");
			if (rc < 0)
				goto out;
			snprintf(what, sizeof(what),
				 "'%s' (dir %llu) was created on another host too; ours is now '%s'", d->name,
				 (unsigned long long)d->parent, newname);
			record_conflict(m, what);
		}
		if (rc_ctx.other) {
			char what[128];
			snprintf(what, sizeof(what),
				 "%d rows changed on this and another host; this host's later values kept",
				 rc_ctx.other);
			RFS_LOG(LOG_INFO, "sync: %s", what);
		}
	}
	rc = fix_dir_nlinks(m, &par);
	if (rc < 0)
		goto out;
	if (local.len) {
		m->recording = 0;
		if (m->rec_failed || sqlite3_get_autocommit(m->db)) {
			RFS_LOG(LOG_ERR, "metadata database: the rebased local changes could not be recorded");
			rc = -EIO;
			goto out;
		}
		rc = rfs_meta_pending_delete_upto(m, upto);
		if (rc == 0 && m->rec.len > 0) {
			sqlite3_stmt *s = stmt(m, S_PENDING_ADD);
			if (!s) {
				rc = -EIO;
				goto out;
			}
			sqlite3_bind_blob(s, 1, m->rec.data, (int)m->rec.len, SQLITE_STATIC);
			rc = run(m, s, "saving rebased changes");
		}
	}
	if (rc == 0)
		rc = (int)rc_ctx.nd;
out:
	rec_stop(m);
	sqlite3_free(inv);
	rfs_buf_free(&local);
	free(par.v);
	free(rc_ctx.d);
	return rc;
}

int rfs_meta_conflicts(struct rfs_meta *m, int limit, int (*cb)(void *arg, int64_t time_ns, const char *what),
		       void *arg)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(m->db, "SELECT time, what FROM conflicts ORDER BY id DESC LIMIT ?", -1, &s, NULL) !=
	    SQLITE_OK)
		return sql_fail(m, "listing conflicts");
	sqlite3_bind_int(s, 1, limit);
	while (sqlite3_step(s) == SQLITE_ROW)
		if (cb(arg, sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1)))
			break;
	sqlite3_finalize(s);
	return 0;
}

/* ---------- whole-store queries, for fsck and gc on a private replica ---------- */

int rfs_meta_index_block_refs(struct rfs_meta *m)
{
	return exec(m, "CREATE INDEX IF NOT EXISTS bmap_hash ON bmap(hash)");
}

int rfs_meta_blocks_each(struct rfs_meta *m, rfs_block_row_cb cb, void *arg)
{
	sqlite3_stmt *s = stmt(m, S_BLOCKS_EACH);
	if (!s)
		return -EIO;
	int r, rc = 0;
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		struct rfs_block_loc loc;
		const void *h = sqlite3_column_blob(s, 0);
		const char *pack = (const char *)sqlite3_column_text(s, 1);
		if (!h || sqlite3_column_bytes(s, 0) != RFS_HASH_LEN || !pack) {
			RFS_LOG(LOG_WARNING, "metadata database: a blocks row has a malformed hash or pack; skipped");
			continue;
		}
		snprintf(loc.pack, sizeof(loc.pack), "%s", pack);
		loc_columns(s, 2, &loc);
		rc = cb(arg, h, &loc, sqlite3_column_int(s, 7));
		if (rc)
			break;
	}
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		rc = sql_fail(m, "listing blocks");
	sqlite3_reset(s);
	return rc;
}

int rfs_meta_bmap_unplaced(struct rfs_meta *m, rfs_bmap_row_cb cb, void *arg)
{
	sqlite3_stmt *s = stmt(m, S_BMAP_UNPLACED);
	if (!s)
		return -EIO;
	int r, rc = 0;
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		const void *h = sqlite3_column_blob(s, 2);
		if (!h || sqlite3_column_bytes(s, 2) != RFS_HASH_LEN)
			continue;
		rc = cb(arg, (uint64_t)sqlite3_column_int64(s, 0), (uint64_t)sqlite3_column_int64(s, 1), h);
		if (rc)
			break;
	}
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		rc = sql_fail(m, "listing block map rows without a block");
	sqlite3_reset(s);
	return rc;
}

int rfs_meta_files_with_block(struct rfs_meta *m, const uint8_t hash[RFS_HASH_LEN], rfs_bmap_row_cb cb, void *arg)
{
	sqlite3_stmt *s = stmt(m, S_FILES_WITH_BLOCK);
	if (!s)
		return -EIO;
	sqlite3_bind_blob(s, 1, hash, RFS_HASH_LEN, SQLITE_STATIC);
	int r, rc = 0;
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		rc = cb(arg, (uint64_t)sqlite3_column_int64(s, 0), (uint64_t)sqlite3_column_int64(s, 1), hash);
		if (rc)
			break;
	}
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		rc = sql_fail(m, "finding the files of a block");
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

int rfs_meta_name_of(struct rfs_meta *m, uint64_t ino, uint64_t *parent, char *name, size_t len)
{
	sqlite3_stmt *s = stmt(m, S_NAME_OF);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	int r = sqlite3_step(s);
	int rc = 0;
	if (r == SQLITE_ROW) {
		*parent = (uint64_t)sqlite3_column_int64(s, 0);
		snprintf(name, len, "%s", (const char *)sqlite3_column_text(s, 1));
	} else if (r == SQLITE_DONE) {
		rc = -ENOENT;
	} else {
		rc = sql_fail(m, "finding the name of an inode");
	}
	sqlite3_reset(s);
	return rc;
}

int rfs_meta_block_del(struct rfs_meta *m, const uint8_t hash[RFS_HASH_LEN])
{
	sqlite3_stmt *s = stmt(m, S_BLOCK_DEL);
	if (!s)
		return -EIO;
	sqlite3_bind_blob(s, 1, hash, RFS_HASH_LEN, SQLITE_STATIC);
	int rc = run(m, s, "deleting a block row");
	if (rc == 0 && sqlite3_changes(m->db) == 0)
		rc = -ENOENT;
	return rc;
}

/* Column col of one side of a changeset row (0: old values, 1: new), or NULL if absent. */
static sqlite3_value *cs_value(sqlite3_changeset_iter *it, int side, int col)
{
	sqlite3_value *v = NULL;
	if ((side == 0 ? sqlite3changeset_old(it, col, &v) : sqlite3changeset_new(it, col, &v)) != SQLITE_OK)
		return NULL;
	return v;
}

static const uint8_t *value_hash(sqlite3_value *v)
{
	if (v && sqlite3_value_type(v) == SQLITE_BLOB && sqlite3_value_bytes(v) == RFS_HASH_LEN)
		return sqlite3_value_blob(v);
	return NULL;
}

int rfs_meta_changeset_block_refs(const void *cs, size_t len, rfs_block_ref_cb cb, void *arg)
{
	sqlite3_changeset_iter *it;
	if (rfs_meta_changeset_check(cs, len) < 0 || sqlite3changeset_start(&it, (int)len, (void *)cs) != SQLITE_OK)
		return -EINVAL;
	const char *tab;
	int ncol, op, indirect, r;
	while ((r = sqlite3changeset_next(it)) == SQLITE_ROW) {
		if (sqlite3changeset_op(it, &tab, &ncol, &op, &indirect) != SQLITE_OK)
			break;
		int blocks = !strcmp(tab, "blocks") && ncol >= 2, bmap = !strcmp(tab, "bmap") && ncol >= 3;
		if (!blocks && !bmap)
			continue;
		/* old values exist for DELETE and UPDATE, new ones for INSERT and UPDATE (an UPDATE
		 * carries only the primary key and the changed columns) */
		for (int side = 0; side < 2; side++) {
			if ((side == 0 && op == SQLITE_INSERT) || (side == 1 && op == SQLITE_DELETE))
				continue;
			const uint8_t *hash;
			const char *pack = NULL;
			if (blocks) {
				hash = value_hash(cs_value(it, side == 1 && op == SQLITE_INSERT ? 1 : 0, 0));
				sqlite3_value *p = cs_value(it, side, 1);
				if (p && sqlite3_value_type(p) == SQLITE_TEXT)
					pack = (const char *)sqlite3_value_text(p);
			} else {
				hash = value_hash(cs_value(it, side, 2));
			}
			if (hash || pack)
				cb(arg, hash, pack);
		}
	}
	int fin = sqlite3changeset_finalize(it);
	return (r == SQLITE_ROW || r == SQLITE_DONE) && fin == SQLITE_OK ? 0 : -EINVAL;
}

int rfs_meta_export(struct rfs_meta *m, const char *path, int64_t *seq)
{
	int rc = 0;
	char head[80] = "";
	int64_t pending = 0, applied = 0;
	sqlite3 *copy = NULL;
	pthread_mutex_lock(&m->lock);
	if (rfs_meta_pending_count(m, &pending) < 0 || pending) {
		pthread_mutex_unlock(&m->lock);
		return -EAGAIN;
	}
	if (rfs_meta_local_get_text(m, "inflight", head, sizeof(head)) == 0 && head[0]) {
		pthread_mutex_unlock(&m->lock);
		return -EAGAIN;
	}
	rfs_meta_local_get_int(m, "applied_seq", &applied);
	rfs_meta_local_get_text(m, "head_hash", head, sizeof(head));
	unlink(path);
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(m->db, "VACUUM INTO ?", -1, &s, NULL) != SQLITE_OK) {
		rc = sql_fail(m, "preparing a checkpoint");
		pthread_mutex_unlock(&m->lock);
		return rc;
	}
	sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		rc = sql_fail(m, "writing a checkpoint copy");
	sqlite3_finalize(s);
	pthread_mutex_unlock(&m->lock);
	if (rc < 0)
		return rc;
	/* strip host-local state from the copy; keep the log position it corresponds to */
	if (sqlite3_open(path, &copy) != SQLITE_OK) {
		sqlite3_close(copy);
		return -EIO;
	}
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "BEGIN; DELETE FROM pending; DELETE FROM conflicts; DELETE FROM local WHERE key NOT IN ('schema');"
		 "INSERT INTO local VALUES('applied_seq', %lld); INSERT INTO local VALUES('head_hash', '%.64s');"
		 "COMMIT; PRAGMA journal_mode=DELETE;",
		 (long long)applied, head);
	if (sqlite3_exec(copy, sql, NULL, NULL, NULL) != SQLITE_OK) {
		RFS_LOG(LOG_ERR, "checkpoint copy: %s", sqlite3_errmsg(copy));
		rc = -EIO;
	}
	sqlite3_close(copy);
	*seq = applied;
	return rc;
}

int rfs_meta_pending_range(struct rfs_meta *m, int64_t *lo, int64_t *hi)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(m->db, "SELECT coalesce(min(id),0), coalesce(max(id),0) FROM pending", -1, &s, NULL) !=
	    SQLITE_OK)
		return sql_fail(m, "reading pending ids");
	int rc = 0;
	if (sqlite3_step(s) == SQLITE_ROW) {
		*lo = sqlite3_column_int64(s, 0);
		*hi = sqlite3_column_int64(s, 1);
	} else {
		rc = sql_fail(m, "reading pending ids");
	}
	sqlite3_finalize(s);
	return rc;
}

/* ---------- trash ---------- */

static int trash_exec(struct rfs_meta *m, const char *sql, uint64_t ino, const char *name, uint64_t parent, int64_t t)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(m->db, sql, -1, &s, NULL) != SQLITE_OK)
		return sql_fail(m, "preparing a trash statement");
	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	if (sqlite3_bind_parameter_count(s) >= 2)
		sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(s) >= 3)
		sqlite3_bind_int64(s, 3, (sqlite3_int64)parent);
	if (sqlite3_bind_parameter_count(s) >= 4)
		sqlite3_bind_int64(s, 4, t);
	if (txn_lost(m)) {
		sqlite3_finalize(s);
		return -EIO;
	}
	int r = sqlite3_step(s);
	sqlite3_finalize(s);
	return r == SQLITE_DONE ? 0 : sql_fail(m, "updating the trash");
}

int rfs_meta_trash_add(struct rfs_meta *m, uint64_t ino, const char *name, uint64_t parent, int64_t t)
{
	return trash_exec(m, "INSERT OR REPLACE INTO trash(ino,name,parent,deleted) VALUES(?,?,?,?)", ino, name, parent,
			  t);
}

int rfs_meta_trash_remove(struct rfs_meta *m, uint64_t ino)
{
	return trash_exec(m, "DELETE FROM trash WHERE ino=?", ino, NULL, 0, 0);
}

int rfs_meta_trash_lookup(struct rfs_meta *m, const char *name, uint64_t *ino)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(m->db, "SELECT ino FROM trash WHERE name=?", -1, &s, NULL) != SQLITE_OK)
		return sql_fail(m, "looking in the trash");
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	int r = sqlite3_step(s), rc = 0;
	if (r == SQLITE_ROW)
		*ino = (uint64_t)sqlite3_column_int64(s, 0);
	else if (r == SQLITE_DONE)
		rc = -ENOENT;
	else
		rc = sql_fail(m, "looking in the trash");
	sqlite3_finalize(s);
	return rc;
}

int rfs_meta_trash_has(struct rfs_meta *m, uint64_t ino)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(m->db, "SELECT 1 FROM trash WHERE ino=?", -1, &s, NULL) != SQLITE_OK)
		return sql_fail(m, "looking in the trash");
	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	int r = sqlite3_step(s);
	int rc = r == SQLITE_ROW ? 1 : r == SQLITE_DONE ? 0 : sql_fail(m, "looking in the trash");
	sqlite3_finalize(s);
	return rc; /* 1, 0, or -errno (not "absent": a caller would delete a trashed inode) */
}

int rfs_meta_trash_list(struct rfs_meta *m, uint64_t after, int64_t before_ns, rfs_dirent_cb cb, void *arg)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(
		m->db,
		"SELECT t.name, t.ino, coalesce(i.mode, 32768) FROM trash t LEFT JOIN inodes i ON i.ino=t.ino"
		" WHERE t.ino>? AND t.deleted<? ORDER BY t.ino",
		-1, &s, NULL) != SQLITE_OK)
		return sql_fail(m, "listing the trash");
	sqlite3_bind_int64(s, 1, (sqlite3_int64)after);
	sqlite3_bind_int64(s, 2, before_ns);
	while (sqlite3_step(s) == SQLITE_ROW) {
		uint64_t ino = (uint64_t)sqlite3_column_int64(s, 1);
		if (cb(arg, (const char *)sqlite3_column_text(s, 0), ino, (uint32_t)sqlite3_column_int64(s, 2), ino))
			break;
	}
	sqlite3_finalize(s);
	return 0;
}

int rfs_meta_set_exclusive(struct rfs_meta *m)
{
	pthread_mutex_lock(&m->lock);
	int rc = exec(m, "PRAGMA locking_mode=EXCLUSIVE");
	pthread_mutex_unlock(&m->lock);
	return rc;
}
