/* Unit tests for fs/meta.c: the SQLite metadata replica, its changesets and id ranges. */
#define SQLITE_ENABLE_SESSION 1
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include "check.h"
#include "fs/meta.h"

/* ---- fixtures ---- */

struct db {
	char path[4300];
	struct rfs_meta *m;
};

static char tmp_dir[4096];

static int db_open(struct db *d, const char *name)
{
	char err[512] = "";
	snprintf(d->path, sizeof(d->path), "%s/%s", tmp_dir, name);
	d->m = NULL;
	int rc = rfs_meta_open(d->path, &d->m, err, sizeof(err));
	if (!CHECK_OK(rc))
		fprintf(stderr, "  %s\n", err);
	return rc;
}

static void db_close(struct db *d)
{
	rfs_meta_close(d->m);
	d->m = NULL;
}

/* Each case gets a fresh directory for its databases. */
static int fresh_dir(void)
{
	return check_tmpdir(tmp_dir, sizeof(tmp_dir));
}

static struct rfs_attr mk_attr(uint64_t ino, uint32_t mode, uint64_t size, int64_t t)
{
	return (struct rfs_attr){.ino = ino,
				 .mode = mode,
				 .uid = 1000,
				 .gid = 100,
				 .nlink = S_ISDIR(mode) ? 2 : 1,
				 .size = size,
				 .rdev = 0,
				 .atime = t,
				 .mtime = t + 1,
				 .ctime = t + 2};
}

/* Inside a transaction: a new inode named name in parent. Returns its number, 0 on failure. */
static uint64_t mknode(struct rfs_meta *m, uint64_t parent, const char *name, uint32_t mode)
{
	uint64_t ino;
	if (!CHECK_OK(rfs_meta_alloc_id(m, &ino)))
		return 0;
	struct rfs_attr a = mk_attr(ino, mode, 0, 1000000000LL * (int64_t)(ino % 1000000));
	if (!CHECK_OK(rfs_meta_put_attr(m, &a)) || !CHECK_OK(rfs_meta_add_dentry(m, parent, name, ino)))
		return 0;
	return ino;
}

static int attr_equal(const struct rfs_attr *a, const struct rfs_attr *b)
{
	return a->ino == b->ino && a->mode == b->mode && a->uid == b->uid && a->gid == b->gid && a->nlink == b->nlink &&
	       a->size == b->size && a->rdev == b->rdev && a->atime == b->atime && a->mtime == b->mtime &&
	       a->ctime == b->ctime;
}

static void hash_of(uint64_t v, uint8_t h[RFS_HASH_LEN])
{
	rfs_sha256(&v, sizeof(v), h);
}

static int64_t pending(struct rfs_meta *m)
{
	int64_t n = -1;
	rfs_meta_lock(m);
	CHECK_OK(rfs_meta_pending_count(m, &n));
	rfs_meta_unlock(m);
	return n;
}

/* Dumps a table of the database file through a separate read-only connection, as text. */
static void dump_table(const char *path, const char *table, const char *where, struct rfs_buf *out)
{
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		CHECK(!"cannot open the database read-only");
		sqlite3_close(db);
		return;
	}
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT * FROM %s %s ORDER BY 1, 2", table, where ? where : "");
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
		fprintf(stderr, "  %s: %s\n", sql, sqlite3_errmsg(db));
		CHECK(!"cannot prepare the dump");
		sqlite3_close(db);
		return;
	}
	rfs_buf_append(out, table, strlen(table));
	rfs_buf_append(out, ":\n", 2);
	while (sqlite3_step(s) == SQLITE_ROW) {
		for (int c = 0; c < sqlite3_column_count(s); c++) {
			char cell[600];
			if (sqlite3_column_type(s, c) == SQLITE_BLOB) {
				int n = sqlite3_column_bytes(s, c);
				char hex[2 * 256 + 1];
				rfs_hex(sqlite3_column_blob(s, c), (size_t)(n < 256 ? n : 256), hex);
				snprintf(cell, sizeof(cell), "x'%s' ", hex);
			} else if (sqlite3_column_type(s, c) == SQLITE_NULL) {
				snprintf(cell, sizeof(cell), "NULL ");
			} else {
				snprintf(cell, sizeof(cell), "%s ", (const char *)sqlite3_column_text(s, c));
			}
			rfs_buf_append(out, cell, strlen(cell));
		}
		rfs_buf_append(out, "\n", 1);
	}
	sqlite3_finalize(s);
	sqlite3_close(db);
}

/* All shared tables of a database as one string (caller frees). */
static char *dump_shared(const char *path)
{
	static const char *const tables[] = {"inodes", "dentries", "symlinks", "bmap",
					     "blocks", "xattrs",   "ranges",   "trash"};
	struct rfs_buf b = {0};
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		dump_table(path, tables[i], NULL, &b);
	rfs_buf_append(&b, "", 1);
	return (char *)b.data;
}

static int64_t count_rows(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	int64_t n = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
		sqlite3_stmt *s = NULL;
		if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
			n = sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
	}
	sqlite3_close(db);
	return n;
}

/* ---- cases ---- */

static void meta_open_fresh(void)
{
	REQUIRE(fresh_dir() == 0);
	struct db a;
	if (db_open(&a, "a.db") < 0)
		goto out;
	struct rfs_attr root;
	rfs_meta_lock(a.m);
	if (CHECK_OK(rfs_meta_get_attr(a.m, RFS_ROOT_INO, &root))) {
		CHECK(S_ISDIR(root.mode));
		CHECK_EQ(root.nlink, 2);
		CHECK_EQ(root.ino, RFS_ROOT_INO);
	}
	CHECK_EQ(rfs_meta_dir_is_empty(a.m, RFS_ROOT_INO), 1);
	uint64_t parent = 0, n = 0;
	CHECK_OK(rfs_meta_parent_of(a.m, RFS_ROOT_INO, &parent));
	CHECK_EQ(parent, RFS_ROOT_INO);
	CHECK_OK(rfs_meta_count_inodes(a.m, &n));
	CHECK_EQ(n, 1);
	struct rfs_attr x;
	CHECK_ERR(rfs_meta_get_attr(a.m, 2, &x), ENOENT);
	rfs_meta_unlock(a.m);
	CHECK_EQ(pending(a.m), 0);
	db_close(&a);

	/* reopening keeps the root as it was */
	if (db_open(&a, "a.db") < 0)
		goto out;
	struct rfs_attr again;
	rfs_meta_lock(a.m);
	if (CHECK_OK(rfs_meta_get_attr(a.m, RFS_ROOT_INO, &again)))
		CHECK(attr_equal(&root, &again));
	rfs_meta_unlock(a.m);
	db_close(&a);
out:
	check_rmtree(tmp_dir);
}

static void meta_open_refuses_unknown_schema(void)
{
	REQUIRE(fresh_dir() == 0);
	struct db a;
	if (db_open(&a, "a.db") < 0)
		goto out;
	CHECK_OK(rfs_meta_begin_unrecorded(a.m));
	CHECK_OK(rfs_meta_local_set_int(a.m, "schema", 99));
	CHECK_OK(rfs_meta_commit(a.m));
	db_close(&a);
	char err[512] = "";
	struct rfs_meta *m = NULL;
	CHECK_ERR(rfs_meta_open(a.path, &m, err, sizeof(err)), EPROTO);
	CHECK(m == NULL);
	CHECK_CONTAINS(err, "schema 99");
	CHECK_CONTAINS(err, "a.db");
out:
	check_rmtree(tmp_dir);
}

static void meta_attr_dentry_lookup(void)
{
	REQUIRE(fresh_dir() == 0);
	struct db a;
	if (db_open(&a, "a.db") < 0)
		goto out;
	CHECK_OK(rfs_meta_begin(a.m));
	uint64_t dir = mknode(a.m, RFS_ROOT_INO, "dir", S_IFDIR | 0755);
	uint64_t file = mknode(a.m, dir, "file.txt", S_IFREG | 0644);
	struct rfs_attr fa = mk_attr(file, S_IFREG | 0600, 123456789, 42);
	fa.rdev = 7;
	CHECK_OK(rfs_meta_put_attr(a.m, &fa)); /* update in place */
	CHECK_OK(rfs_meta_commit(a.m));

	rfs_meta_lock(a.m);
	uint64_t ino = 0;
	CHECK_OK(rfs_meta_lookup(a.m, RFS_ROOT_INO, "dir", &ino));
	CHECK_EQ(ino, dir);
	CHECK_OK(rfs_meta_lookup(a.m, dir, "file.txt", &ino));
	CHECK_EQ(ino, file);
	CHECK_ERR(rfs_meta_lookup(a.m, dir, "File.txt", &ino), ENOENT);
	CHECK_ERR(rfs_meta_lookup(a.m, RFS_ROOT_INO, "file.txt", &ino), ENOENT);
	struct rfs_attr got;
	if (CHECK_OK(rfs_meta_get_attr(a.m, file, &got)))
		CHECK(attr_equal(&got, &fa));
	uint64_t parent = 0;
	CHECK_OK(rfs_meta_parent_of(a.m, dir, &parent));
	CHECK_EQ(parent, RFS_ROOT_INO);
	CHECK_ERR(rfs_meta_parent_of(a.m, 999999, &parent), ENOENT);
	uint32_t subdirs = 99;
	CHECK_OK(rfs_meta_count_subdirs(a.m, RFS_ROOT_INO, &subdirs));
	CHECK_EQ(subdirs, 1);
	CHECK_OK(rfs_meta_count_subdirs(a.m, dir, &subdirs));
	CHECK_EQ(subdirs, 0);
	uint64_t total = 0, n = 0;
	CHECK_OK(rfs_meta_total_size(a.m, &total));
	CHECK_EQ(total, 123456789);
	CHECK_OK(rfs_meta_count_inodes(a.m, &n));
	CHECK_EQ(n, 3);
	rfs_meta_unlock(a.m);

	/* a name that exists already is refused; the transaction is then rolled back */
	CHECK_OK(rfs_meta_begin(a.m));
	CHECK_ERR(rfs_meta_add_dentry(a.m, dir, "file.txt", file), EEXIST);
	rfs_meta_rollback(a.m);

	/* unlink: the entry goes, then the inode with everything hanging off it */
	CHECK_OK(rfs_meta_begin(a.m));
	uint8_t h[RFS_HASH_LEN];
	hash_of(1, h);
	CHECK_OK(rfs_meta_bmap_set(a.m, file, 0, h));
	CHECK_OK(rfs_meta_xattr_set(a.m, file, "user.k", "v", 1, 0));
	CHECK_OK(rfs_meta_set_symlink(a.m, file, "odd but allowed"));
	CHECK_OK(rfs_meta_del_dentry(a.m, dir, "file.txt"));
	CHECK_ERR(rfs_meta_del_dentry(a.m, dir, "file.txt"), ENOENT);
	CHECK_OK(rfs_meta_delete_inode(a.m, file));
	CHECK_OK(rfs_meta_commit(a.m));
	rfs_meta_lock(a.m);
	CHECK_ERR(rfs_meta_lookup(a.m, dir, "file.txt", &ino), ENOENT);
	CHECK_ERR(rfs_meta_get_attr(a.m, file, &got), ENOENT);
	CHECK_ERR(rfs_meta_bmap_get(a.m, file, 0, h), ENOENT);
	struct rfs_buf v = {0};
	CHECK_ERR(rfs_meta_xattr_get(a.m, file, "user.k", &v), ENODATA);
	rfs_buf_free(&v);
	char target[64];
	CHECK_ERR(rfs_meta_get_symlink(a.m, file, target, sizeof(target)), ENOENT);
	CHECK_EQ(rfs_meta_dir_is_empty(a.m, dir), 1);
	rfs_meta_unlock(a.m);
	db_close(&a);
out:
	check_rmtree(tmp_dir);
}

struct dirents {
	char names[64][32];
	uint64_t inos[64], cookies[64];
	uint32_t modes[64];
	int n, stop_at;
};

static int dirent_cb(void *arg, const char *name, uint64_t ino, uint32_t mode, uint64_t cookie)
{
	struct dirents *d = arg;
	if (d->n < 64) {
		snprintf(d->names[d->n], sizeof(d->names[0]), "%s", name);
		d->inos[d->n] = ino;
		d->modes[d->n] = mode;
		d->cookies[d->n] = cookie;
	}
	d->n++;
	return d->stop_at && d->n >= d->stop_at;
}

static void meta_readdir_cookie_order(void)
{
	REQUIRE(fresh_dir() == 0);
	struct db a;
	if (db_open(&a, "a.db") < 0)
		goto out;
	/* names in reverse order, so cookie order differs from name (primary key) order */
	static const char *const names[] = {"j", "i", "h", "g", "f", "e", "d", "c", "b", "a"};
	uint64_t inos[10];
	CHECK_OK(rfs_meta_begin(a.m));
	uint64_t dir = mknode(a.m, RFS_ROOT_INO, "d", S_IFDIR | 0755);
	for (int i = 0; i < 10; i++)
		inos[i] = mknode(a.m, dir, names[i], (i % 3 ? S_IFREG | 0644 : S_IFDIR | 0700));
	/* an entry whose inode row is missing still lists, with mode 0 */
	CHECK_OK(rfs_meta_add_dentry(a.m, dir, "ghost", 888888));
	CHECK_OK(rfs_meta_commit(a.m));

	rfs_meta_lock(a.m);
	struct dirents all = {0};
	CHECK_OK(rfs_meta_readdir(a.m, dir, 0, dirent_cb, &all));
	REQUIRE_EQ(all.n, 11);
	for (int i = 0; i < 10; i++) {
		CHECK_STR(all.names[i], names[i]);
		CHECK_EQ(all.inos[i], inos[i]);
		CHECK_EQ(all.modes[i], (i % 3 ? S_IFREG | 0644 : S_IFDIR | 0700));
		if (i)
			CHECK(all.cookies[i] > all.cookies[i - 1]);
	}
	CHECK_STR(all.names[10], "ghost");
	CHECK_EQ(all.modes[10], 0);

	/* stop after 4, continue from the 4th cookie: the rest, nothing twice */
	struct dirents part = {.stop_at = 4};
	CHECK_OK(rfs_meta_readdir(a.m, dir, 0, dirent_cb, &part));
	CHECK_EQ(part.n, 4);
	struct dirents rest = {0};
	CHECK_OK(rfs_meta_readdir(a.m, dir, part.cookies[3], dirent_cb, &rest));
	CHECK_EQ(rest.n, 7);
	if (rest.n == 7)
		for (int i = 0; i < 7; i++)
			CHECK_STR(rest.names[i], all.names[4 + i]);
	struct dirents none = {0};
	CHECK_OK(rfs_meta_readdir(a.m, dir, all.cookies[10], dirent_cb, &none));
	CHECK_EQ(none.n, 0);
	struct dirents empty = {0};
	CHECK_OK(rfs_meta_readdir(a.m, inos[0], 0, dirent_cb, &empty)); /* an empty directory */
	CHECK_EQ(empty.n, 0);
	uint32_t subdirs = 0;
	CHECK_OK(rfs_meta_count_subdirs(a.m, dir, &subdirs));
	CHECK_EQ(subdirs, 4);
	rfs_meta_unlock(a.m);

	/* a removed entry disappears from the listing; the others keep their cookies */
	CHECK_OK(rfs_meta_begin(a.m));
	CHECK_OK(rfs_meta_del_dentry(a.m, dir, "f"));
	CHECK_OK(rfs_meta_commit(a.m));
	rfs_meta_lock(a.m);
	struct dirents after = {0};
	CHECK_OK(rfs_meta_readdir(a.m, dir, part.cookies[3], dirent_cb, &after));
	CHECK_EQ(after.n, 6);
	if (after.n == 6) {
		CHECK_STR(after.names[0], "e");
		CHECK_EQ(after.cookies[0], all.cookies[5]);
	}
	rfs_meta_unlock(a.m);
	db_close(&a);
out:
	check_rmtree(tmp_dir);
}

static void meta_dir_is_empty(void)
{
	REQUIRE(fresh_dir() == 0);
	struct db a;
	if (db_open(&a, "a.db") < 0)
		goto out;
	CHECK_OK(rfs_meta_begin(a.m));
	uint64_t dir = mknode(a.m, RFS_ROOT_INO, "d", S_IFDIR | 0755);
	CHECK_EQ(rfs_meta_dir_is_empty(a.m, dir), 1);
	CHECK_EQ(rfs_meta_dir_is_empty(a.m, RFS_ROOT_INO), 0);
	mknode(a.m, dir, "x", S_IFREG | 0644);
	CHECK_EQ(rfs_meta_dir_is_empty(a.m, dir), 0);
	CHECK_OK(rfs_meta_commit(a.m));
	CHECK_OK(rfs_meta_begin(a.m));
	CHECK_OK(rfs_meta_del_dentry(a.m, dir, "x"));
	CHECK_EQ(rfs_meta_dir_is_empty(a.m, dir), 1);
	CHECK_OK(rfs_meta_commit(a.m));
	rfs_meta_lock(a.m);
	CHECK_EQ(rfs_meta_dir_is_empty(a.m, dir), 1);
	CHECK_EQ(rfs_meta_dir_is_empty(a.m, 424242), 1); /* no such directory: no entries */
	rfs_meta_unlock(a.m);
	db_close(&a);
out:
	check_rmtree(tmp_dir);
}

static void meta_symlink(void)
{
	REQUIRE(fresh_dir() == 0);
	struct db a;
	if (db_open(&a, "a.db") < 0)
		goto out;
	CHECK_OK(rfs_meta_begin(a.m));
	uint64_t ln = mknode(a.m, RFS_ROOT_INO, "ln", S_IFLNK | 0777);
	CHECK_OK(rfs_meta_set_symlink(a.m, ln, "../some/where"));
	CHECK_OK(rfs_meta_commit(a.m));
	rfs_meta_lock(a.m);
	char buf[64];
	if (CHECK_OK(rfs_meta_get_symlink(a.m, ln, buf, sizeof(buf))))
		CHECK_STR(buf, "../some/where");
	CHECK_ERR(rfs_meta_get_symlink(a.m, ln, buf, 13), ENAMETOOLONG); /* no room for the NUL */
	CHECK_OK(rfs_meta_get_symlink(a.m, ln, buf, 14));
	CHECK_ERR(rfs_meta_get_symlink(a.m, ln + 1, buf, sizeof(buf)), ENOENT);
	rfs_meta_unlock(a.m);
	CHECK_OK(rfs_meta_begin(a.m));
	CHECK_OK(rfs_meta_set_symlink(a.m, ln, "/abs"));
	CHECK_OK(rfs_meta_commit(a.m));
	rfs_meta_lock(a.m);
	if (CHECK_OK(rfs_meta_get_symlink(a.m, ln, buf, sizeof(buf))))
		CHECK_STR(buf, "/abs");
	rfs_meta_unlock(a.m);
	db_close(&a);
out:
	check_rmtree(tmp_dir);
}

struct bmap_seen {
	uint64_t idx[32];
	uint8_t hash[32][RFS_HASH_LEN];
	int n, stop_at;
};

static int bmap_cb(void *arg, uint64_t idx, const uint8_t hash[RFS_HASH_LEN])
{
	struct bmap_seen *b = arg;
	if (b->n < 32) {
		b->idx[b->n] = idx;
		memcpy(b->hash[b->n], hash, RFS_HASH_LEN);
	}
	b->n++;
	return b->stop_at && b->n >= b->stop_at;
}

static void meta_bmap(void)
{
	REQUIRE(fresh_dir() == 0);
	struct db a;
	if (db_open(&a, "a.db") < 0)
		goto out;
	CHECK_OK(rfs_meta_begin(a.m));
	uint64_t f = mknode(a.m, RFS_ROOT_INO, "f", S_IFREG | 0644);
	uint8_t h[RFS_HASH_LEN];
	for (uint64_t i = 9; i < 10; i--) { /* descending inserts */
		hash_of(100 + i, h);
		CHECK_OK(rfs_meta_bmap_set(a.m, f, i, h));
	}
	hash_of(7777, h);
	CHECK_OK(rfs_meta_bmap_set(a.m, f, 3, h));          /* replace */
	CHECK_OK(rfs_meta_bmap_set(a.m, f, 3, h));          /* same value again */
	CHECK_OK(rfs_meta_bmap_set(a.m, f, 1ULL << 40, h)); /* a sparse, far index */
	CHECK_OK(rfs_meta_commit(a.m));

	rfs_meta_lock(a.m);
	uint8_t got[RFS_HASH_LEN], want[RFS_HASH_LEN];
	for (uint64_t i = 0; i < 10; i++) {
		hash_of(i == 3 ? 7777 : 100 + i, want);
		if (CHECK_OK(rfs_meta_bmap_get(a.m, f, i, got)))
			CHECK_MEM(got, want, RFS_HASH_LEN);
	}
	CHECK_ERR(rfs_meta_bmap_get(a.m, f, 10, got), ENOENT);
	CHECK_ERR(rfs_meta_bmap_get(a.m, f + 1, 0, got), ENOENT);
	struct bmap_seen all = {0};
	CHECK_OK(rfs_meta_bmap_each(a.m, f, bmap_cb, &all));
	CHECK_EQ(all.n, 11);
	for (int i = 0; i < 10 && i < all.n; i++)
		CHECK_EQ(all.idx[i], i);
	CHECK_EQ(all.idx[10], 1ULL << 40);
	struct bmap_seen two = {.stop_at = 2};
	CHECK_OK(rfs_meta_bmap_each(a.m, f, bmap_cb, &two));
	CHECK_EQ(two.n, 2);
	rfs_meta_unlock(a.m);

	CHECK_OK(rfs_meta_begin(a.m));
	CHECK_OK(rfs_meta_bmap_truncate(a.m, f, 5));
	CHECK_OK(rfs_meta_bmap_del(a.m, f, 2));
	CHECK_OK(rfs_meta_bmap_del(a.m, f, 2)); /* absent: not an error */
	CHECK_OK(rfs_meta_commit(a.m));
	rfs_meta_lock(a.m);
	struct bmap_seen left = {0};
	CHECK_OK(rfs_meta_bmap_each(a.m, f, bmap_cb, &left));
	CHECK_EQ(left.n, 4);
	static const uint64_t want_idx[] = {0, 1, 3, 4};
	for (int i = 0; i < 4 && i < left.n; i++) {
		CHECK_EQ(left.idx[i], want_idx[i]);
		hash_of(want_idx[i] == 3 ? 7777 : 100 + want_idx[i], want);
		CHECK_MEM(left.hash[i], want, RFS_HASH_LEN);
	}
	CHECK_ERR(rfs_meta_bmap_get(a.m, f, 5, got), ENOENT);
	rfs_meta_unlock(a.m);

	CHECK_OK(rfs_meta_begin(a.m));
	CHECK_OK(rfs_meta_bmap_truncate(a.m, f, 0));
	CHECK_OK(rfs_meta_commit(a.m));
	rfs_meta_lock(a.m);
	struct bmap_seen gone = {0};
	CHECK_OK(rfs_meta_bmap_each(a.m, f, bmap_cb, &gone));
	CHECK_EQ(gone.n, 0);
	rfs_meta_unlock(a.m);
	db_close(&a);
out:
	check_rmtree(tmp_dir);
}

static void meta_blocks(void)
{
	REQUIRE(fresh_dir() == 0);
	struct db a;
	if (db_open(&a, "a.db") < 0)
		goto out;
	uint8_t h1[RFS_HASH_LEN], h2[RFS_HASH_LEN];
	hash_of(1, h1);
	hash_of(2, h2);
	struct rfs_block_loc l1 = {
	    .pack = "0123456789abcdef0123456789abcdef", .off = 1ULL << 33, .slen = 100, .rlen = 4194304, .codec = 1};
	struct rfs_block_loc l2 = {.pack = "ffffffffffffffffffffffffffffffff", .off = 5, .slen = 6, .rlen = 6};
	CHECK_OK(rfs_meta_begin(a.m));
	CHECK_OK(rfs_meta_block_put(a.m, h1, &l1));
	CHECK_OK(rfs_meta_block_put(a.m, h1, &l2)); /* a block already stored keeps its first location */
	CHECK_OK(rfs_meta_commit(a.m));
	rfs_meta_lock(a.m);
	struct rfs_block_loc got;
	memset(&got, 0xaa, sizeof(got));
	if (CHECK_OK(rfs_meta_block_get(a.m, h1, &got))) {
		CHECK_STR(got.pack, l1.pack);
		CHECK_EQ(got.off, l1.off);
		CHECK_EQ(got.slen, l1.slen);
		CHECK_EQ(got.rlen, l1.rlen);
		CHECK_EQ(got.codec, l1.codec);
		CHECK_EQ(got.has_xsum, 0); /* a row without one (fsck repairs, version-1 rows) */
	}
	CHECK_ERR(rfs_meta_block_get(a.m, h2, &got), ENOENT);
	rfs_meta_unlock(a.m);
	db_close(&a);
out:
	check_rmtree(tmp_dir);
}

static int xattr_value_is(struct rfs_meta *m, uint64_t ino, const char *name, const void *v, size_t len)
{
	struct rfs_buf b = {0};
	int ok = CHECK_OK(rfs_meta_xattr_get(m, ino, name, &b)) && CHECK_EQ(b.len, len) &&
		 (len == 0 || !memcmp(b.data, v, len));
	rfs_buf_free(&b);
	return ok;
}

static void meta_xattr(void)
{
	REQUIRE(fresh_dir() == 0);
	struct db a;
	if (db_open(&a, "a.db") < 0)
		goto out;
	CHECK_OK(rfs_meta_begin(a.m));
	uint64_t f = mknode(a.m, RFS_ROOT_INO, "f", S_IFREG | 0644);
	CHECK_OK(rfs_meta_xattr_set(a.m, f, "user.b", "one", 3, 0));
	CHECK_ERR(rfs_meta_xattr_set(a.m, f, "user.b", "two", 3, XATTR_CREATE), EEXIST);
	CHECK(xattr_value_is(a.m, f, "user.b", "one", 3)); /* unchanged by the refused create */
	CHECK_ERR(rfs_meta_xattr_set(a.m, f, "user.a", "x", 1, XATTR_REPLACE), ENODATA);
	CHECK_OK(rfs_meta_xattr_set(a.m, f, "user.a", "\0bin\0", 5, XATTR_CREATE));
	CHECK_OK(rfs_meta_xattr_set(a.m, f, "user.b", "three", 5, XATTR_REPLACE));
	CHECK_OK(rfs_meta_xattr_set(a.m, f, "user.c", NULL, 0, 0)); /* empty value */
	CHECK_OK(rfs_meta_xattr_set(a.m, f, "user.c", "", 0, 0));   /* and again */
	CHECK_OK(rfs_meta_commit(a.m));

	rfs_meta_lock(a.m);
	CHECK(xattr_value_is(a.m, f, "user.a", "\0bin\0", 5));
	CHECK(xattr_value_is(a.m, f, "user.b", "three", 5));
	CHECK(xattr_value_is(a.m, f, "user.c", "", 0));
	struct rfs_buf b = {0};
	CHECK_ERR(rfs_meta_xattr_get(a.m, f, "user.none", &b), ENODATA);
	CHECK_ERR(rfs_meta_xattr_get(a.m, RFS_ROOT_INO, "user.a", &b), ENODATA);
	CHECK_EQ(b.len, 0);
	CHECK_OK(rfs_meta_xattr_list(a.m, f, &b));
	CHECK_EQ(b.len, sizeof("user.a\0user.b\0user.c"));
	if (b.len == sizeof("user.a\0user.b\0user.c"))
		CHECK_MEM(b.data, "user.a\0user.b\0user.c", b.len);
	rfs_buf_free(&b);
	CHECK_OK(rfs_meta_xattr_list(a.m, RFS_ROOT_INO, &b));
	CHECK_EQ(b.len, 0);
	rfs_buf_free(&b);
	rfs_meta_unlock(a.m);

	CHECK_OK(rfs_meta_begin(a.m));
	CHECK_OK(rfs_meta_xattr_remove(a.m, f, "user.b"));
	CHECK_ERR(rfs_meta_xattr_remove(a.m, f, "user.b"), ENODATA);
	CHECK_ERR(rfs_meta_xattr_set(a.m, f, "user.b", "x", 1, XATTR_REPLACE), ENODATA);
	CHECK_OK(rfs_meta_commit(a.m));
	rfs_meta_lock(a.m);
	CHECK_ERR(rfs_meta_xattr_get(a.m, f, "user.b", &b), ENODATA);
	CHECK_OK(rfs_meta_xattr_list(a.m, f, &b));
	CHECK_EQ(b.len, sizeof("user.a\0user.c"));
	rfs_buf_free(&b);
	rfs_meta_unlock(a.m);
	db_close(&a);
out:
	check_rmtree(tmp_dir);
}

static void meta_alloc_id_ranges(void)
{
	REQUIRE(fresh_dir() == 0);
	struct db a;
	if (db_open(&a, "a.db") < 0)
		goto out;
	enum { N = 2000 };
	uint64_t *ids = malloc(N * sizeof(*ids));
	CHECK_OK(rfs_meta_begin(a.m));
	CHECK_OK(rfs_meta_local_set_text(a.m, "host_id", "host-a"));
	for (int i = 0; i < N; i++)
		CHECK_OK(rfs_meta_alloc_id(a.m, &ids[i]));
	int64_t range_end = 0;
	CHECK_OK(rfs_meta_local_get_int(a.m, "range_end", &range_end));
	CHECK_OK(rfs_meta_commit(a.m));
	uint64_t start = (uint64_t)range_end - RFS_ID_RANGE;
	/* a random multiple of the range size below 2^62, never the root's range */
	CHECK(start >= RFS_ID_RANGE);
	CHECK(start <= (1ULL << 62));
	CHECK_EQ(start % RFS_ID_RANGE, 0);
	for (int i = 0; i < N; i++) {
		if (!CHECK(ids[i] >= start && ids[i] < (uint64_t)range_end) ||
		    (i && !CHECK(ids[i] > ids[i - 1]))) /* strictly increasing: unique */
			break;
	}
	/* the claimed range is in the shared table, under our host id */
	char sql[200];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM ranges WHERE start=%llu AND host='host-a'",
		 (unsigned long long)start);
	CHECK_EQ(count_rows(a.path, sql), 1);
	CHECK_EQ(count_rows(a.path, "SELECT count(*) FROM ranges"), 1);

	/* the stored position is a reservation ahead of the last id, not written per id */
	CHECK_EQ(count_rows(a.path, "SELECT count(*) FROM local WHERE key='next_id'"), 1);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM local WHERE key='next_id' AND value>%llu AND value<=%llu",
		 (unsigned long long)ids[N - 1], (unsigned long long)(ids[N - 1] + RFS_ID_RESERVE));
	CHECK_EQ(count_rows(a.path, sql), 1);

	/* the allocator survives a reopen: no id is handed out twice (a gap of at most the
	 * reservation is fine) */
	db_close(&a);
	if (db_open(&a, "a.db") < 0)
		goto done;
	uint64_t next = 0;
	CHECK_OK(rfs_meta_begin(a.m));
	CHECK_OK(rfs_meta_alloc_id(a.m, &next));
	CHECK(next > ids[N - 1] && next <= ids[N - 1] + RFS_ID_RESERVE);
	/* at the end of the range, the next id comes from a freshly claimed range */
	CHECK_OK(rfs_meta_local_set_int(a.m, "next_id", range_end - 1));
	CHECK_OK(rfs_meta_commit(a.m));
	db_close(&a);
	if (db_open(&a, "a.db") < 0)
		goto done;
	uint64_t last = 0, first = 0;
	CHECK_OK(rfs_meta_begin(a.m));
	CHECK_OK(rfs_meta_alloc_id(a.m, &last));
	CHECK_OK(rfs_meta_alloc_id(a.m, &first));
	CHECK_OK(rfs_meta_commit(a.m));
	CHECK_EQ(last, range_end - 1);
	/* the next id is the first of another claimed range */
	CHECK_EQ(first % RFS_ID_RANGE, 0);
	CHECK(first < start || first >= (uint64_t)range_end);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM ranges WHERE start=%llu AND host='host-a'",
		 (unsigned long long)first);
	CHECK_EQ(count_rows(a.path, sql), 1);
	CHECK_EQ(count_rows(a.path, "SELECT count(*) FROM ranges"), 2);
	db_close(&a);
done:
	free(ids);
out:
	check_rmtree(tmp_dir);
}

static void meta_rollback_discards(void)
{
	REQUIRE(fresh_dir() == 0);
	struct db a, b;
	b.m = NULL;
	if (db_open(&a, "a.db") < 0)
		goto out;
	CHECK_OK(rfs_meta_begin(a.m));
	uint64_t kept = mknode(a.m, RFS_ROOT_INO, "kept", S_IFREG | 0644);
	CHECK_OK(rfs_meta_commit(a.m));
	CHECK_EQ(pending(a.m), 1);

	/* a transaction that is rolled back: nothing of it stays, in the tables or in pending */
	CHECK_OK(rfs_meta_begin(a.m));
	uint64_t gone = mknode(a.m, RFS_ROOT_INO, "gone", S_IFDIR | 0755);
	CHECK_OK(rfs_meta_xattr_set(a.m, kept, "user.x", "1", 1, 0));
	uint8_t h[RFS_HASH_LEN];
	hash_of(5, h);
	CHECK_OK(rfs_meta_bmap_set(a.m, kept, 0, h));
	rfs_meta_rollback(a.m);
	CHECK_EQ(pending(a.m), 1);
	rfs_meta_lock(a.m);
	struct rfs_attr at;
	uint64_t ino;
	CHECK_ERR(rfs_meta_get_attr(a.m, gone, &at), ENOENT);
	CHECK_ERR(rfs_meta_lookup(a.m, RFS_ROOT_INO, "gone", &ino), ENOENT);
	struct rfs_buf v = {0};
	CHECK_ERR(rfs_meta_xattr_get(a.m, kept, "user.x", &v), ENODATA);
	rfs_buf_free(&v);
	CHECK_ERR(rfs_meta_bmap_get(a.m, kept, 0, h), ENOENT);
	rfs_meta_unlock(a.m);

	/* the next transaction records only its own changes */
	CHECK_OK(rfs_meta_begin(a.m));
	uint64_t later = mknode(a.m, RFS_ROOT_INO, "later", S_IFREG | 0644);
	CHECK_OK(rfs_meta_commit(a.m));
	CHECK_EQ(pending(a.m), 2);
	CHECK(later != kept);

	/* replaying what is pending elsewhere shows no trace of the rolled-back transaction */
	struct rfs_buf cs = {0};
	int64_t upto = 0, count = 0;
	rfs_meta_lock(a.m);
	CHECK_OK(rfs_meta_pending_collect(a.m, &cs, &upto, &count));
	rfs_meta_unlock(a.m);
	CHECK_EQ(count, 2);
	if (db_open(&b, "b.db") == 0) {
		CHECK_OK(rfs_meta_begin_unrecorded(b.m));
		CHECK_OK(rfs_meta_apply_changeset(b.m, cs.data, cs.len));
		CHECK_OK(rfs_meta_commit(b.m));
		rfs_meta_lock(b.m);
		CHECK_OK(rfs_meta_lookup(b.m, RFS_ROOT_INO, "kept", &ino));
		CHECK_OK(rfs_meta_lookup(b.m, RFS_ROOT_INO, "later", &ino));
		CHECK_ERR(rfs_meta_lookup(b.m, RFS_ROOT_INO, "gone", &ino), ENOENT);
		CHECK_ERR(rfs_meta_xattr_get(b.m, kept, "user.x", &v), ENODATA);
		rfs_buf_free(&v);
		rfs_meta_unlock(b.m);
		CHECK_EQ(pending(b.m), 0);
	}
	rfs_buf_free(&cs);
	db_close(&b);
	db_close(&a);
out:
	check_rmtree(tmp_dir);
}

/* A range claimed inside a rolled-back transaction is not kept, and is claimed again. */
static void meta_rollback_range_claim(void)
{
	REQUIRE(fresh_dir() == 0);
	struct db a;
	if (db_open(&a, "a.db") < 0)
		goto out;
	uint64_t id1 = 0, id2 = 0;
	CHECK_OK(rfs_meta_begin(a.m));
	CHECK_OK(rfs_meta_alloc_id(a.m, &id1));
	rfs_meta_rollback(a.m);
	CHECK_EQ(count_rows(a.path, "SELECT count(*) FROM ranges"), 0);
	CHECK_OK(rfs_meta_begin(a.m));
	CHECK_OK(rfs_meta_alloc_id(a.m, &id2));
	CHECK_OK(rfs_meta_commit(a.m));
	CHECK_EQ(count_rows(a.path, "SELECT count(*) FROM ranges"), 1);
	int64_t range_end = 0;
	rfs_meta_lock(a.m);
	CHECK_OK(rfs_meta_local_get_int(a.m, "range_end", &range_end));
	rfs_meta_unlock(a.m);
	CHECK(id2 >= (uint64_t)range_end - RFS_ID_RANGE && id2 < (uint64_t)range_end);
	db_close(&a);
out:
	check_rmtree(tmp_dir);
}

static void meta_pending_rows(void)
{
	REQUIRE(fresh_dir() == 0);
	struct db a;
	if (db_open(&a, "a.db") < 0)
		goto out;
	/* every committed transaction that changes shared tables leaves exactly one row */
	for (int i = 0; i < 5; i++) {
		char name[16];
		snprintf(name, sizeof(name), "f%d", i);
		CHECK_OK(rfs_meta_begin(a.m));
		mknode(a.m, RFS_ROOT_INO, name, S_IFREG | 0644);
		CHECK_OK(rfs_meta_commit(a.m));
		CHECK_EQ(pending(a.m), i + 1);
	}
	/* local-only changes and unrecorded transactions are not replicated */
	CHECK_OK(rfs_meta_begin(a.m));
	CHECK_OK(rfs_meta_local_set_int(a.m, "something", 5));
	CHECK_OK(rfs_meta_commit(a.m));
	CHECK_OK(rfs_meta_begin_unrecorded(a.m));
	struct rfs_attr at = mk_attr(RFS_ROOT_INO, S_IFDIR | 0755, 0, 77);
	CHECK_OK(rfs_meta_put_attr(a.m, &at));
	CHECK_OK(rfs_meta_commit(a.m));
	CHECK_EQ(pending(a.m), 5);

	/* collect: all, or up to an id */
	struct rfs_buf cs = {0};
	int64_t upto = 0, count = 0;
	rfs_meta_lock(a.m);
	CHECK_OK(rfs_meta_pending_collect(a.m, &cs, &upto, &count));
	CHECK_EQ(count, 5);
	CHECK_EQ(upto, 5);
	CHECK(cs.len > 0);
	rfs_buf_free(&cs);
	upto = 2;
	CHECK_OK(rfs_meta_pending_collect(a.m, &cs, &upto, &count));
	CHECK_EQ(count, 2);
	CHECK_EQ(upto, 2);
	rfs_buf_free(&cs);
	rfs_meta_unlock(a.m);

	/* delete up to an id: only later rows stay */
	CHECK_OK(rfs_meta_begin_unrecorded(a.m));
	CHECK_OK(rfs_meta_pending_delete_upto(a.m, 2));
	CHECK_OK(rfs_meta_commit(a.m));
	CHECK_EQ(pending(a.m), 3);
	rfs_meta_lock(a.m);
	upto = 0;
	CHECK_OK(rfs_meta_pending_collect(a.m, &cs, &upto, &count));
	CHECK_EQ(count, 3);
	CHECK_EQ(upto, 5);
	rfs_buf_free(&cs);
	CHECK_OK(rfs_meta_pending_delete_upto(a.m, upto));
	CHECK_OK(rfs_meta_pending_count(a.m, &count));
	CHECK_EQ(count, 0);
	/* nothing pending: an empty changeset */
	upto = 0;
	count = 99;
	CHECK_OK(rfs_meta_pending_collect(a.m, &cs, &upto, &count));
	CHECK_EQ(count, 0);
	CHECK_EQ(cs.len, 0);
	rfs_buf_free(&cs);
	rfs_meta_unlock(a.m);

	/* ids keep growing after a delete (AUTOINCREMENT): a new row is id 6 */
	CHECK_OK(rfs_meta_begin(a.m));
	mknode(a.m, RFS_ROOT_INO, "g", S_IFREG | 0644);
	CHECK_OK(rfs_meta_commit(a.m));
	rfs_meta_lock(a.m);
	upto = 0;
	CHECK_OK(rfs_meta_pending_collect(a.m, &cs, &upto, &count));
	CHECK_EQ(count, 1);
	CHECK_EQ(upto, 6);
	rfs_buf_free(&cs);
	rfs_meta_unlock(a.m);
	db_close(&a);
out:
	check_rmtree(tmp_dir);
}

/* A varied history on A, replayed as one combined changeset on a fresh B. */
static void build_history(struct rfs_meta *m, uint64_t *dir_out, uint64_t *file_out)
{
	uint8_t h[RFS_HASH_LEN];
	CHECK_OK(rfs_meta_begin(m));
	CHECK_OK(rfs_meta_local_set_text(m, "host_id", "host-a"));
	uint64_t dir = mknode(m, RFS_ROOT_INO, "docs", S_IFDIR | 0755);
	uint64_t file = mknode(m, dir, "report.txt", S_IFREG | 0644);
	uint64_t tmp = mknode(m, dir, "tmp", S_IFREG | 0600);
	uint64_t ln = mknode(m, RFS_ROOT_INO, "link", S_IFLNK | 0777);
	CHECK_OK(rfs_meta_set_symlink(m, ln, "docs/report.txt"));
	CHECK_OK(rfs_meta_commit(m));

	CHECK_OK(rfs_meta_begin(m));
	for (uint64_t i = 0; i < 4; i++) {
		hash_of(i, h);
		struct rfs_block_loc loc = {
		    .pack = "00112233445566778899aabbccddeeff", .off = i * 100, .slen = 100, .rlen = 4096, .codec = 1};
		CHECK_OK(rfs_meta_block_put(m, h, &loc));
		CHECK_OK(rfs_meta_bmap_set(m, file, i, h));
	}
	struct rfs_attr fa = mk_attr(file, S_IFREG | 0644, 4 * 4096, 5000);
	CHECK_OK(rfs_meta_put_attr(m, &fa));
	CHECK_OK(rfs_meta_xattr_set(m, file, "user.tag", "blue", 4, XATTR_CREATE));
	CHECK_OK(rfs_meta_xattr_set(m, file, "user.gone", "x", 1, 0));
	CHECK_OK(rfs_meta_xattr_set(m, tmp, "user.t", "t", 1, 0));
	CHECK_OK(rfs_meta_commit(m));

	/* rename tmp -> final, drop an xattr, shrink the file, touch the root */
	CHECK_OK(rfs_meta_begin(m));
	CHECK_OK(rfs_meta_del_dentry(m, dir, "tmp"));
	CHECK_OK(rfs_meta_add_dentry(m, dir, "final", tmp));
	CHECK_OK(rfs_meta_xattr_remove(m, file, "user.gone"));
	CHECK_OK(rfs_meta_xattr_set(m, file, "user.tag", "green", 5, XATTR_REPLACE));
	CHECK_OK(rfs_meta_bmap_truncate(m, file, 2));
	fa.size = 2 * 4096;
	fa.mtime = 6000;
	CHECK_OK(rfs_meta_put_attr(m, &fa));
	struct rfs_attr root = mk_attr(RFS_ROOT_INO, S_IFDIR | 0755, 0, 9000);
	root.uid = 0;
	root.gid = 0;
	root.nlink = 3;
	CHECK_OK(rfs_meta_put_attr(m, &root));
	CHECK_OK(rfs_meta_commit(m));

	/* create and delete within the history: must not show up anywhere */
	CHECK_OK(rfs_meta_begin(m));
	uint64_t eph = mknode(m, dir, "ephemeral", S_IFREG | 0644);
	CHECK_OK(rfs_meta_commit(m));
	CHECK_OK(rfs_meta_begin(m));
	CHECK_OK(rfs_meta_del_dentry(m, dir, "ephemeral"));
	CHECK_OK(rfs_meta_delete_inode(m, eph));
	CHECK_OK(rfs_meta_commit(m));
	*dir_out = dir;
	*file_out = file;
}

static void compare_replicas(struct db *a, struct db *b, uint64_t dir, uint64_t file)
{
	/* through the API */
	static const struct {
		uint64_t parent;
		const char *name;
	} names[] = {{RFS_ROOT_INO, "docs"}, {RFS_ROOT_INO, "link"}, {0, "report.txt"}, {0, "final"}, {0, "tmp"},
		     {0, "ephemeral"}};
	rfs_meta_lock(a->m);
	rfs_meta_lock(b->m);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		uint64_t p = names[i].parent ? names[i].parent : dir, ia = 0, ib = 0;
		int ra = rfs_meta_lookup(a->m, p, names[i].name, &ia);
		int rb = rfs_meta_lookup(b->m, p, names[i].name, &ib);
		if (!CHECK_EQ(ra, rb) || !CHECK_EQ(ia, ib)) {
			fprintf(stderr, "  name %s\n", names[i].name);
			continue;
		}
		if (ra < 0)
			continue;
		struct rfs_attr aa, ab;
		if (CHECK_OK(rfs_meta_get_attr(a->m, ia, &aa)) && CHECK_OK(rfs_meta_get_attr(b->m, ib, &ab)))
			CHECK(attr_equal(&aa, &ab));
		struct rfs_buf la = {0}, lb = {0};
		CHECK_OK(rfs_meta_xattr_list(a->m, ia, &la));
		CHECK_OK(rfs_meta_xattr_list(b->m, ib, &lb));
		if (CHECK_EQ(la.len, lb.len) && la.len)
			CHECK_MEM(la.data, lb.data, la.len);
		rfs_buf_free(&la);
		rfs_buf_free(&lb);
	}
	struct rfs_attr ra, rb;
	if (CHECK_OK(rfs_meta_get_attr(a->m, RFS_ROOT_INO, &ra)) &&
	    CHECK_OK(rfs_meta_get_attr(b->m, RFS_ROOT_INO, &rb)))
		CHECK(attr_equal(&ra, &rb));
	CHECK(xattr_value_is(b->m, file, "user.tag", "green", 5));
	struct rfs_buf v = {0};
	CHECK_ERR(rfs_meta_xattr_get(b->m, file, "user.gone", &v), ENODATA);
	rfs_buf_free(&v);
	char target[64];
	uint64_t ln = 0;
	if (CHECK_OK(rfs_meta_lookup(b->m, RFS_ROOT_INO, "link", &ln)) &&
	    CHECK_OK(rfs_meta_get_symlink(b->m, ln, target, sizeof(target))))
		CHECK_STR(target, "docs/report.txt");
	struct bmap_seen bm = {0};
	CHECK_OK(rfs_meta_bmap_each(b->m, file, bmap_cb, &bm));
	CHECK_EQ(bm.n, 2);
	struct dirents da = {0}, dbb = {0};
	CHECK_OK(rfs_meta_readdir(a->m, dir, 0, dirent_cb, &da));
	CHECK_OK(rfs_meta_readdir(b->m, dir, 0, dirent_cb, &dbb));
	if (CHECK_EQ(da.n, dbb.n))
		for (int i = 0; i < da.n; i++) {
			CHECK_STR(da.names[i], dbb.names[i]);
			CHECK_EQ(da.cookies[i], dbb.cookies[i]); /* cookies replicate: stable offsets */
		}
	rfs_meta_unlock(b->m);
	rfs_meta_unlock(a->m);

	/* and row for row */
	char *sa = dump_shared(a->path), *sb = dump_shared(b->path);
	if (!CHECK_STR(sa, sb))
		fprintf(stderr, "  A:\n%s\n  B:\n%s\n", sa, sb);
	free(sa);
	free(sb);
}

static void meta_changeset_replicates(void)
{
	REQUIRE(fresh_dir() == 0);
	struct db a, b;
	b.m = NULL;
	if (db_open(&a, "a.db") < 0)
		goto out;
	uint64_t dir = 0, file = 0;
	build_history(a.m, &dir, &file);
	CHECK_EQ(pending(a.m), 5);

	struct rfs_buf cs = {0};
	int64_t upto = 0, count = 0;
	rfs_meta_lock(a.m);
	CHECK_OK(rfs_meta_pending_collect(a.m, &cs, &upto, &count));
	rfs_meta_unlock(a.m);
	CHECK_EQ(count, 5);
	CHECK_EQ(upto, 5);
	if (db_open(&b, "b.db") < 0)
		goto close_a;
	CHECK_OK(rfs_meta_begin_unrecorded(b.m));
	CHECK_OK(rfs_meta_apply_changeset(b.m, cs.data, cs.len));
	CHECK_OK(rfs_meta_commit(b.m));
	CHECK_EQ(pending(b.m), 0); /* applying is not recorded */
	compare_replicas(&a, &b, dir, file);

	/* applying the same changeset again changes nothing (a replayed log record) */
	CHECK_OK(rfs_meta_begin_unrecorded(b.m));
	CHECK_OK(rfs_meta_apply_changeset(b.m, cs.data, cs.len));
	CHECK_OK(rfs_meta_commit(b.m));
	compare_replicas(&a, &b, dir, file);

	/* B's own ids come from a range of its own, not A's (the ranges table replicated) */
	uint64_t bid = 0;
	int64_t a_end = 0;
	CHECK_OK(rfs_meta_begin(b.m));
	CHECK_OK(rfs_meta_alloc_id(b.m, &bid));
	CHECK_OK(rfs_meta_commit(b.m));
	rfs_meta_lock(a.m);
	CHECK_OK(rfs_meta_local_get_int(a.m, "range_end", &a_end));
	rfs_meta_unlock(a.m);
	CHECK(bid < (uint64_t)a_end - RFS_ID_RANGE || bid >= (uint64_t)a_end);
	CHECK_EQ(count_rows(b.path, "SELECT count(*) FROM ranges"), 2);

	/* garbage is refused (and a changeset cut anywhere returns: see
	 * meta_apply_truncated_changeset) */
	CHECK_OK(rfs_meta_begin_unrecorded(b.m));
	CHECK(rfs_meta_apply_changeset(b.m, "not a changeset", 15) < 0);
	rfs_meta_rollback(b.m);
	db_close(&b);
close_a:
	rfs_buf_free(&cs);
	db_close(&a);
out:
	check_rmtree(tmp_dir);
}

/* Collects pending changes of m into cs (all of them). */
static void collect_all(struct rfs_meta *m, struct rfs_buf *cs, int64_t *upto)
{
	int64_t count = 0;
	*upto = 0;
	rfs_meta_lock(m);
	CHECK_OK(rfs_meta_pending_collect(m, cs, upto, &count));
	rfs_meta_unlock(m);
}

static int apply_plain(struct rfs_meta *m, const struct rfs_buf *cs)
{
	if (!CHECK_OK(rfs_meta_begin_unrecorded(m)))
		return -1;
	int ok = CHECK_OK(rfs_meta_apply_changeset(m, cs->data, cs->len));
	CHECK_OK(rfs_meta_commit(m));
	return ok ? 0 : -1;
}

/* Executes sql on a raw SQLite database at path (no roamfs code). */
static int raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open(path, &db) == SQLITE_OK && sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
	if (rc < 0)
		fprintf(stderr, "  sqlite: %s\n", db ? sqlite3_errmsg(db) : "open failed");
	sqlite3_close(db);
	return rc;
}

/* The changeset of running sql (on `blocks` only) against a schema-1 blocks table holding row h1:
 * what a version-1 roamfs recorded. *cs is sqlite3_malloc'd. */
static int v1_changeset(const char *sql, int *n, void **cs)
{
	sqlite3 *db = NULL;
	sqlite3_session *ses = NULL;
	int rc = -1;
	if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
	    sqlite3_exec(db,
			 "CREATE TABLE blocks(hash BLOB PRIMARY KEY, pack TEXT NOT NULL, off INT NOT NULL,"
			 " slen INT NOT NULL, rlen INT NOT NULL, codec INT NOT NULL) WITHOUT ROWID;"
			 "INSERT INTO blocks VALUES(x'01', 'p1', 0, 10, 10, 0);",
			 NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3session_create(db, "main", &ses) != SQLITE_OK || sqlite3session_attach(ses, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK || sqlite3session_changeset(ses, n, cs) != SQLITE_OK)
		goto out;
	rc = 0;
out:
	if (ses)
		sqlite3session_delete(ses);
	sqlite3_close(db);
	return rc;
}

/* A schema-1 database (blocks without xsum) is migrated at open: the column is added (NULL
 * for the rows there), pending changesets recorded against the old table are widened so they
 * still combine with new ones, and changesets of a version-1 host still apply. */
static void meta_migrates_schema_1(void)
{
	REQUIRE(fresh_dir() == 0);
	char path[4300];
	snprintf(path, sizeof(path), "%s/v1.db", tmp_dir);
	int n1 = 0, n2 = 0;
	void *pend = NULL, *remote = NULL;
	REQUIRE(v1_changeset("INSERT INTO blocks VALUES(x'02', 'p2', 5, 6, 6, 1);"
			     "UPDATE blocks SET off=7 WHERE hash=x'01';",
			     &n1, &pend) == 0);
	REQUIRE(v1_changeset("INSERT INTO blocks VALUES(x'03', 'p3', 9, 9, 9, 0); DELETE FROM blocks WHERE hash=x'01';",
			     &n2, &remote) == 0);
	/* the schema-1 tables a version-1 roamfs left: the rows after its pending changeset */
	char *hex = malloc((size_t)n1 * 2 + 1);
	REQUIRE(hex);
	rfs_hex(pend, (size_t)n1, hex);
	char *sql =
	    sqlite3_mprintf("CREATE TABLE blocks(hash BLOB PRIMARY KEY, pack TEXT NOT NULL, off INT NOT NULL,"
			    " slen INT NOT NULL, rlen INT NOT NULL, codec INT NOT NULL) WITHOUT ROWID;"
			    "INSERT INTO blocks VALUES(x'01', 'p1', 7, 10, 10, 0), (x'02', 'p2', 5, 6, 6, 1);"
			    "CREATE TABLE pending(id INTEGER PRIMARY KEY AUTOINCREMENT, cs BLOB NOT NULL);"
			    "CREATE TABLE local(key TEXT PRIMARY KEY, value); INSERT INTO local VALUES('schema', 1);"
			    "INSERT INTO pending(cs) VALUES(x'%s');",
			    hex);
	free(hex);
	REQUIRE(raw_exec(path, sql) == 0);
	sqlite3_free(sql);

	char err[512] = "";
	struct rfs_meta *m = NULL;
	if (!CHECK_OK(rfs_meta_open(path, &m, err, sizeof(err)))) {
		fprintf(stderr, "  %s\n", err);
		goto out;
	}
	int64_t ver = 0;
	rfs_meta_lock(m);
	CHECK_OK(rfs_meta_local_get_int(m, "schema", &ver));
	CHECK_EQ(ver, 2);
	rfs_meta_unlock(m);
	/* a new row with an xsum, recorded next to the widened pending change */
	uint8_t h[RFS_HASH_LEN] = {0x42};
	struct rfs_block_loc loc;
	struct rfs_block_loc nl = {.pack = "p4", .off = 1, .slen = 2, .rlen = 2, .has_xsum = 1, .xsum = 1ULL << 63 | 5};
	CHECK_OK(rfs_meta_begin(m));
	CHECK_OK(rfs_meta_block_put(m, h, &nl));
	CHECK_OK(rfs_meta_commit(m));
	rfs_meta_lock(m);
	if (CHECK_OK(rfs_meta_block_get(m, h, &loc))) {
		CHECK_EQ(loc.has_xsum, 1);
		CHECK_EQ(loc.xsum, nl.xsum);
	}
	rfs_meta_unlock(m);
	/* the old pending change and the new one combine (they would not without widening) */
	struct rfs_buf cs = {0};
	int64_t upto = 0;
	collect_all(m, &cs, &upto);
	CHECK_EQ(upto, 2);
	/* a version-1 host's record applies to the widened table */
	if (CHECK_OK(rfs_meta_begin_unrecorded(m))) {
		CHECK_OK(rfs_meta_apply_changeset(m, remote, (size_t)n2));
		CHECK_OK(rfs_meta_commit(m));
	}
	rfs_meta_close(m);
	m = NULL;
	/* what the rows are now, read with SQLite itself: x'01' deleted by the remote record, x'02'
	 * from the pending change (xsum NULL), x'03' from the remote one, the new row with its xsum */
	{
		sqlite3 *db = NULL;
		sqlite3_stmt *st = NULL;
		char got[512] = "";
		size_t used = 0;
		if (sqlite3_open(path, &db) == SQLITE_OK &&
		    sqlite3_prepare_v2(db,
				       "SELECT hex(hash), pack, off, coalesce(xsum, 'null') FROM blocks ORDER BY hash",
				       -1, &st, NULL) == SQLITE_OK)
			while (sqlite3_step(st) == SQLITE_ROW && used < sizeof(got) - 80)
				used += (size_t)snprintf(got + used, sizeof(got) - used, "%s %s %lld %s;",
							 sqlite3_column_text(st, 0), sqlite3_column_text(st, 1),
							 (long long)sqlite3_column_int64(st, 2),
							 sqlite3_column_text(st, 3));
		sqlite3_finalize(st);
		sqlite3_close(db);
		CHECK_STR(got,
			  "02 p2 5 null;03 p3 9 null;42000000000000000000000000000000000000000000000000000000000000"
			  "00 p4 1 -9223372036854775803;");
	}
	/* the combined pending changeset, replayed on a fresh schema-2 replica, gives the same rows
	 * (x'01' is not there: its UPDATE finds nothing and is skipped as a conflict) */
	{
		struct db b;
		if (db_open(&b, "b.db") == 0) {
			CHECK_OK(apply_plain(b.m, &cs));
			rfs_meta_lock(b.m);
			if (CHECK_OK(rfs_meta_block_get(b.m, h, &loc)))
				CHECK_EQ(loc.xsum, nl.xsum);
			rfs_meta_unlock(b.m);
			db_close(&b);
		}
	}
	rfs_buf_free(&cs);
out:
	rfs_meta_close(m);
	sqlite3_free(pend);
	sqlite3_free(remote);
	check_rmtree(tmp_dir);
}

/* The changeset recorder against a random history: ~400 transactions of random operations on
 * every shared table (new files and dirs, attribute rewrites, renames via delete+add, xattrs
 * set/replace/remove, block maps set/overwritten/truncated, block rows with and without xsum,
 * symlinks, trash, deletions), one in ten rolled back. The pending changesets, combined as
 * for a log record and applied to an empty replica, must give exactly the same tables. */
static void meta_recorder_random_history(void)
{
	REQUIRE(fresh_dir() == 0);
	struct db a, b;
	if (db_open(&a, "a.db") < 0)
		goto out;
	uint64_t inos[512], dirs[64];
	size_t ninos = 0, ndirs = 1;
	dirs[0] = RFS_ROOT_INO;
	unsigned seed = 12345;
	for (int txn = 0; txn < 400; txn++) {
		if (!CHECK_OK(rfs_meta_begin(a.m)))
			break;
		int nops = 1 + (int)(rand_r(&seed) % 4);
		for (int op = 0; op < nops; op++) {
			int k = (int)(rand_r(&seed) % 10);
			uint64_t ino = ninos ? inos[rand_r(&seed) % ninos] : 0;
			char name[32];
			snprintf(name, sizeof(name), "n%u", rand_r(&seed) % 1000);
			uint8_t h[RFS_HASH_LEN];
			memset(h, 0, sizeof(h));
			h[0] = (uint8_t)(rand_r(&seed) % 40);
			if (k <= 1 || !ino) { /* create a file or a directory */
				int dir = rand_r(&seed) % 4 == 0 && ndirs < 64;
				uint64_t parent = dirs[rand_r(&seed) % ndirs], n;
				if (rfs_meta_lookup(a.m, parent, name, &n) == 0 || ninos >= 512)
					continue;
				n = mknode(a.m, parent, name, dir ? S_IFDIR | 0755 : S_IFREG | 0644);
				if (n) {
					inos[ninos++] = n;
					if (dir)
						dirs[ndirs++] = n;
				}
			} else if (k == 2) { /* attributes rewritten (some unchanged) */
				struct rfs_attr at;
				if (rfs_meta_get_attr(a.m, ino, &at) == 0) {
					at.size = rand_r(&seed) % 3 ? at.size : (uint64_t)rand_r(&seed);
					at.mtime = rand_r(&seed);
					CHECK_OK(rfs_meta_put_attr(a.m, &at));
				}
			} else if (k == 3) { /* xattr set or replaced */
				char v[16];
				snprintf(v, sizeof(v), "v%u", rand_r(&seed) % 5);
				CHECK_OK(
				    rfs_meta_xattr_set(a.m, ino, name[1] < '5' ? "user.a" : "user.b", v, strlen(v), 0));
			} else if (k == 4) {
				int r = rfs_meta_xattr_remove(a.m, ino, "user.a");
				CHECK(r == 0 || r == -ENODATA);
			} else if (k == 5) { /* block map entries set and overwritten, maybe truncated */
				CHECK_OK(rfs_meta_bmap_set(a.m, ino, rand_r(&seed) % 4, h));
				if (rand_r(&seed) % 5 == 0)
					CHECK_OK(rfs_meta_bmap_truncate(a.m, ino, rand_r(&seed) % 4));
			} else if (k == 6) { /* a block row, with or without xsum */
				struct rfs_block_loc l = {.off = rand_r(&seed), .slen = 9, .rlen = 9, .codec = 0};
				snprintf(l.pack, sizeof(l.pack), "%032x", rand_r(&seed));
				l.has_xsum = rand_r(&seed) % 2;
				l.xsum = ((uint64_t)rand_r(&seed) << 33) ^ (uint64_t)rand_r(&seed) ^ (1ULL << 63);
				CHECK_OK(rfs_meta_block_put(a.m, h, &l));
			} else if (k == 7) { /* a rename: the name moves to another directory */
				uint64_t parent = dirs[rand_r(&seed) % ndirs], n, to = dirs[rand_r(&seed) % ndirs];
				if (rfs_meta_lookup(a.m, parent, name, &n) == 0 &&
				    rfs_meta_lookup(a.m, to, "moved", &n) != 0) {
					CHECK_OK(rfs_meta_del_dentry(a.m, parent, name));
					CHECK_OK(rfs_meta_add_dentry(a.m, to, "moved", n));
				}
			} else if (k == 8) { /* symlink target set, trash entry */
				CHECK_OK(rfs_meta_set_symlink(a.m, ino, name));
				if (rand_r(&seed) % 3 == 0 && !rfs_meta_trash_has(a.m, ino))
					CHECK_OK(rfs_meta_trash_add(a.m, ino, name, RFS_ROOT_INO, rand_r(&seed)));
			} else { /* a file's rows deleted */
				CHECK_OK(rfs_meta_bmap_truncate(a.m, ino, 0));
				int r = rfs_meta_trash_remove(a.m, ino);
				CHECK(r == 0 || r == -ENOENT);
			}
		}
		if (rand_r(&seed) % 10 == 0) {
			rfs_meta_rollback(a.m);
			ninos = 0; /* ids handed out may be gone: re-learn from the database */
			ndirs = 1;
			rfs_meta_lock(a.m);
			for (uint64_t i = 2; i < 100000 && ninos < 512; i++) {
				struct rfs_attr at;
				if (rfs_meta_get_attr(a.m, i, &at) == 0) {
					inos[ninos++] = i;
					if (S_ISDIR(at.mode) && ndirs < 64)
						dirs[ndirs++] = i;
				}
			}
			rfs_meta_unlock(a.m);
		} else {
			CHECK_OK(rfs_meta_commit(a.m));
		}
	}
	struct rfs_buf cs = {0};
	int64_t upto = 0;
	collect_all(a.m, &cs, &upto);
	CHECK(cs.len > 1000);
	db_close(&a);
	if (db_open(&b, "b.db") == 0) {
		CHECK_OK(apply_plain(b.m, &cs));
		db_close(&b);
	}
	rfs_buf_free(&cs);
	char *da = dump_shared(a.path), *dbb = dump_shared(b.path);
	if (CHECK(da && dbb)) {
		/* the root directory's row is made by each replica at open (its own times), not
		 * replicated: leave it out */
		char *ra = strstr(da, "\n1 "), *rb = strstr(dbb, "\n1 ");
		if (CHECK(ra && rb)) {
			ra = strchr(ra + 1, '\n');
			rb = strchr(rb + 1, '\n');
			CHECK(strlen(ra) > 5000);
			CHECK_STR(rb, ra);
		}
	}
	free(da);
	free(dbb);
out:
	check_rmtree(tmp_dir);
}

static int interrupt_after(void *arg)
{
	return ++*(int *)arg > 3;
}

/* A statement that fails after changing some rows is undone by SQLite; the recorder had
 * recorded those rows, so the operation must not commit, and nothing of it may reach
 * `pending` (other hosts would apply changes this host does not have). Also when the caller
 * ignores the failure and commits. */
static void meta_failed_statement_is_not_published(void)
{
	REQUIRE(fresh_dir() == 0);
	struct db a;
	if (db_open(&a, "a.db") < 0)
		goto out;
	struct rfs_attr at = mk_attr(100, S_IFREG | 0644, 200 * 4096, 5);
	uint8_t h[RFS_HASH_LEN] = {1};
	CHECK_OK(rfs_meta_begin(a.m));
	CHECK_OK(rfs_meta_put_attr(a.m, &at));
	for (int i = 0; i < 200; i++)
		CHECK_OK(rfs_meta_bmap_set(a.m, 100, (uint64_t)i, h));
	CHECK_OK(rfs_meta_commit(a.m));
	struct rfs_buf cs = {0};
	int64_t upto = 0, n = -1;
	collect_all(a.m, &cs, &upto);
	rfs_buf_free(&cs);
	rfs_meta_lock(a.m);
	CHECK_OK(rfs_meta_pending_delete_upto(a.m, upto));
	rfs_meta_unlock(a.m);

	CHECK_OK(rfs_meta_begin(a.m));
	at.mtime = 99;
	CHECK_OK(rfs_meta_put_attr(a.m, &at));
	int calls = 0;
	rfs_meta_test_progress(a.m, 20, interrupt_after, &calls);
	int r = rfs_meta_bmap_truncate(a.m, 100, 0); /* deletes some rows, then is interrupted */
	rfs_meta_test_progress(a.m, 0, NULL, NULL);
	CHECK(r < 0);
	CHECK(rfs_meta_commit(a.m) < 0); /* the caller ignored the failure: commit refuses */
	rfs_meta_lock(a.m);
	CHECK_OK(rfs_meta_pending_count(a.m, &n));
	CHECK_EQ(n, 0);
	struct rfs_attr got;
	if (CHECK_OK(rfs_meta_get_attr(a.m, 100, &got)))
		CHECK_EQ(got.mtime, 6); /* the put_attr was undone too (mk_attr: t + 1) */
	uint8_t hh[RFS_HASH_LEN];
	CHECK_OK(rfs_meta_bmap_get(a.m, 100, 0, hh));
	CHECK_OK(rfs_meta_bmap_get(a.m, 100, 199, hh));
	rfs_meta_unlock(a.m);
	/* and the next operation records normally */
	CHECK_OK(rfs_meta_begin(a.m));
	CHECK_OK(rfs_meta_bmap_del(a.m, 100, 7));
	CHECK_OK(rfs_meta_commit(a.m));
	rfs_meta_lock(a.m);
	CHECK_OK(rfs_meta_pending_count(a.m, &n));
	rfs_meta_unlock(a.m);
	CHECK_EQ(n, 1);
	db_close(&a);
out:
	check_rmtree(tmp_dir);
}

static int interrupt_once(void *arg)
{
	return (*(int *)arg)++ == 0;
}

/* A COMMIT that fails loses the id reservation it wrote: the ids that follow must come after
 * the stored reservation, or a restart would hand them out again. */
static void meta_failed_commit_keeps_ids_unique(void)
{
	REQUIRE(fresh_dir() == 0);
	struct db a;
	if (db_open(&a, "a.db") < 0)
		goto out;
	uint64_t first = 0, id = 0, kept = 0;
	CHECK_OK(rfs_meta_begin(a.m));
	CHECK_OK(rfs_meta_local_set_text(a.m, "host_id", "host-a"));
	CHECK_OK(rfs_meta_alloc_id(a.m, &first));
	CHECK_OK(rfs_meta_commit(a.m));
	CHECK_OK(rfs_meta_begin(a.m));
	for (int i = 0; i < RFS_ID_RESERVE; i++) /* the last one writes a new reservation */
		CHECK_OK(rfs_meta_alloc_id(a.m, &id));
	CHECK_EQ(id, first + RFS_ID_RESERVE);
	int calls = 0;
	rfs_meta_test_progress(a.m, 1, interrupt_once, &calls); /* the COMMIT, not the ROLLBACK after it */
	CHECK(rfs_meta_commit(a.m) < 0);
	rfs_meta_test_progress(a.m, 0, NULL, NULL);
	/* an id handed out and committed after the failure */
	CHECK_OK(rfs_meta_begin(a.m));
	CHECK_OK(rfs_meta_alloc_id(a.m, &kept));
	CHECK_OK(rfs_meta_commit(a.m));
	CHECK(kept > first);
	db_close(&a);
	if (db_open(&a, "a.db") < 0)
		goto out;
	CHECK_OK(rfs_meta_begin(a.m));
	for (int i = 0; i < 2 * RFS_ID_RESERVE; i++) {
		CHECK_OK(rfs_meta_alloc_id(a.m, &id));
		if (!CHECK(id != kept && id > first))
			break;
	}
	CHECK_OK(rfs_meta_commit(a.m));
	db_close(&a);
out:
	check_rmtree(tmp_dir);
}

struct conflict_list {
	int n;
	char what[512];
};

static int conflict_cb(void *arg, int64_t time_ns, const char *what)
{
	struct conflict_list *c = arg;
	if (time_ns > 0 && c->n++ == 0)
		snprintf(c->what, sizeof(c->what), "%s", what);
	return 0;
}

static int find_copy(void *arg, const char *name, uint64_t ino, uint32_t mode, uint64_t cookie)
{
	(void)mode;
	(void)cookie;
	if (!strncmp(name, "x.conflict-host-b-", 18))
		*(uint64_t *)arg = ino;
	return 0;
}

/* A remote record arriving while local changes are pending: local changes are rebased on
 * top (same name -> conflict copy, remote delete wins, other local changes kept), pending
 * is replaced by the rebased changeset, and replaying that on the remote side converges. */
static void meta_apply_remote_rebase(void)
{
	REQUIRE(fresh_dir() == 0);
	struct db a, b;
	b.m = NULL;
	struct rfs_buf base = {0}, ra = {0}, rb = {0};
	int64_t upto;
	if (db_open(&a, "a.db") < 0)
		goto out;
	if (db_open(&b, "b.db") < 0)
		goto close;
	CHECK_OK(rfs_meta_begin_unrecorded(b.m));
	CHECK_OK(rfs_meta_local_set_text(b.m, "host_id", "host-b"));
	CHECK_OK(rfs_meta_commit(b.m));

	/* common base: a file f, published by A and applied on B */
	CHECK_OK(rfs_meta_begin(a.m));
	uint64_t f = mknode(a.m, RFS_ROOT_INO, "f", S_IFREG | 0644);
	CHECK_OK(rfs_meta_commit(a.m));
	collect_all(a.m, &base, &upto);
	CHECK_OK(rfs_meta_pending_delete_upto(a.m, upto));
	apply_plain(b.m, &base);

	/* A (remote): deletes f, creates x. Published. */
	CHECK_OK(rfs_meta_begin(a.m));
	CHECK_OK(rfs_meta_del_dentry(a.m, RFS_ROOT_INO, "f"));
	CHECK_OK(rfs_meta_delete_inode(a.m, f));
	uint64_t xa = mknode(a.m, RFS_ROOT_INO, "x", S_IFREG | 0644);
	CHECK_OK(rfs_meta_commit(a.m));
	collect_all(a.m, &ra, &upto);
	CHECK_OK(rfs_meta_pending_delete_upto(a.m, upto));

	/* B (local, unpublished): resizes f, creates x too, and y */
	CHECK_OK(rfs_meta_begin(b.m));
	struct rfs_attr fa = mk_attr(f, S_IFREG | 0644, 5, 1);
	CHECK_OK(rfs_meta_put_attr(b.m, &fa));
	uint64_t xb = mknode(b.m, RFS_ROOT_INO, "x", S_IFREG | 0600);
	uint64_t yb = mknode(b.m, RFS_ROOT_INO, "y", S_IFREG | 0600);
	CHECK_OK(rfs_meta_commit(b.m));
	CHECK_EQ(pending(b.m), 1);

	CHECK_OK(rfs_meta_begin_unrecorded(b.m));
	CHECK_EQ(rfs_meta_apply_remote(b.m, ra.data, ra.len, "host-b"), 1); /* one name conflict */
	CHECK_OK(rfs_meta_commit(b.m));

	rfs_meta_lock(b.m);
	uint64_t ino = 0, copy = 0;
	struct rfs_attr at;
	CHECK_ERR(rfs_meta_get_attr(b.m, f, &at), ENOENT); /* the remote delete wins */
	CHECK_ERR(rfs_meta_lookup(b.m, RFS_ROOT_INO, "f", &ino), ENOENT);
	CHECK_OK(rfs_meta_lookup(b.m, RFS_ROOT_INO, "x", &ino));
	CHECK_EQ(ino, xa); /* the remote entry keeps the name */
	CHECK_OK(rfs_meta_readdir(b.m, RFS_ROOT_INO, 0, find_copy, &copy));
	CHECK_EQ(copy, xb);
	CHECK_OK(rfs_meta_lookup(b.m, RFS_ROOT_INO, "y", &ino));
	CHECK_EQ(ino, yb);
	int64_t n = 0;
	CHECK_OK(rfs_meta_pending_count(b.m, &n));
	CHECK_EQ(n, 1); /* replaced by the rebased changeset */
	struct conflict_list cl = {0};
	CHECK_OK(rfs_meta_conflicts(b.m, 10, conflict_cb, &cl));
	CHECK_EQ(cl.n, 1);
	CHECK_CONTAINS(cl.what, "'x'");
	rfs_meta_unlock(b.m);

	/* B publishes the rebased changes; A applies them: the replicas agree */
	collect_all(b.m, &rb, &upto);
	CHECK_OK(rfs_meta_begin_unrecorded(a.m));
	CHECK_EQ(rfs_meta_apply_remote(a.m, rb.data, rb.len, "host-a"), 0);
	CHECK_OK(rfs_meta_commit(a.m));
	CHECK_EQ(pending(a.m), 0);
	rfs_meta_lock(a.m);
	copy = 0;
	CHECK_OK(rfs_meta_readdir(a.m, RFS_ROOT_INO, 0, find_copy, &copy));
	CHECK_EQ(copy, xb);
	rfs_meta_unlock(a.m);
	char *sa = dump_shared(a.path), *sb = dump_shared(b.path);
	/* the root rows differ (each replica made its own at open); compare the rest */
	char *ra_ = strstr(sa, "dentries:"), *rb_ = strstr(sb, "dentries:");
	if (CHECK(ra_ && rb_) && !CHECK_STR(ra_, rb_))
		fprintf(stderr, "  A:\n%s\n  B:\n%s\n", sa, sb);
	free(sa);
	free(sb);
close:
	rfs_buf_free(&base);
	rfs_buf_free(&ra);
	rfs_buf_free(&rb);
	db_close(&b);
	db_close(&a);
out:
	check_rmtree(tmp_dir);
}

struct touches {
	int entries, inodes;
	uint64_t ino_seen[16];
	char names[4][32];
};

static void touch_cb(void *arg, uint64_t ino, uint64_t parent, const char *name)
{
	struct touches *t = arg;
	if (name) {
		if (t->entries < 4)
			snprintf(t->names[t->entries], sizeof(t->names[0]), "%llu/%s", (unsigned long long)parent,
				 name);
		t->entries++;
	} else {
		if (t->inodes < 16)
			t->ino_seen[t->inodes] = ino;
		t->inodes++;
	}
}

static void meta_changeset_touched(void)
{
	REQUIRE(fresh_dir() == 0);
	struct db a;
	if (db_open(&a, "a.db") < 0)
		goto out;
	CHECK_OK(rfs_meta_begin(a.m));
	uint64_t f = mknode(a.m, RFS_ROOT_INO, "f", S_IFREG | 0644);
	CHECK_OK(rfs_meta_commit(a.m));
	CHECK_OK(rfs_meta_begin(a.m));
	CHECK_OK(rfs_meta_xattr_set(a.m, f, "user.a", "1", 1, 0));
	uint8_t h[RFS_HASH_LEN];
	hash_of(3, h);
	CHECK_OK(rfs_meta_bmap_set(a.m, f, 0, h));
	CHECK_OK(rfs_meta_commit(a.m));
	struct rfs_buf cs = {0};
	int64_t upto;
	collect_all(a.m, &cs, &upto);
	struct touches t = {0};
	CHECK_OK(rfs_meta_changeset_touched(cs.data, cs.len, touch_cb, &t));
	CHECK_EQ(t.entries, 1);
	CHECK_STR(t.names[0], "1/f");
	CHECK(t.inodes >= 1);
	for (int i = 0; i < t.inodes && i < 16; i++)
		CHECK_EQ(t.ino_seen[i], f); /* inode row, xattr, bmap and the entry's target: all f */
	rfs_buf_free(&cs);
	/* garbage touches nothing, does not crash and is refused by the structure check */
	uint8_t junk[64];
	memset(junk, 0x55, sizeof(junk));
	struct touches t2 = {0};
	CHECK(rfs_meta_changeset_touched(junk, sizeof(junk), touch_cb, &t2) < 0);
	CHECK_EQ(t2.entries + t2.inodes, 0);
	db_close(&a);
out:
	check_rmtree(tmp_dir);
}

/* SQLite 3.40.1 loops forever in sqlite3changeset_next()/sqlite3changeset_apply() on a
 * changeset cut inside a table header; roamfs checks a changeset's structure first
 * (rfs_meta_changeset_check). Every truncation length must return, in a child process with
 * a time limit: refused when the cut is inside a header or a record, applied only when it
 * falls between two changes (a well-formed, shorter changeset). */
static volatile sig_atomic_t trunc_len = -1;

static void trunc_alarm(int sig)
{
	(void)sig;
	char msg[96];
	int n = snprintf(msg, sizeof(msg), "  hung on a changeset cut to %d bytes\n", (int)trunc_len);
	if (write(2, msg, (size_t)n) < 0)
		_exit(3);
	_exit(2);
}

static void meta_apply_truncated_changeset(void)
{
	REQUIRE(fresh_dir() == 0);
	struct db a, b;
	struct rfs_buf cs = {0};
	int64_t upto;
	b.m = NULL;
	if (db_open(&a, "a.db") < 0)
		goto out;
	if (db_open(&b, "b.db") < 0)
		goto close;
	CHECK_OK(rfs_meta_begin(a.m));
	mknode(a.m, RFS_ROOT_INO, "f", S_IFREG | 0644);
	CHECK_OK(rfs_meta_commit(a.m));
	collect_all(a.m, &cs, &upto);
	for (int which = 0; which < 2; which++) {
		fflush(stderr);
		pid_t pid = fork();
		if (pid == 0) {
			signal(SIGALRM, trunc_alarm);
			int bad = 0;
			for (size_t l = 1; l < cs.len; l++) {
				trunc_len = (int)l;
				alarm(5);
				int rc;
				int well_formed = rfs_meta_changeset_check(cs.data, l) == 0;
				if (which == 0) {
					struct touches t = {0};
					rc = rfs_meta_changeset_touched(cs.data, l, touch_cb, &t);
				} else {
					rfs_meta_begin_unrecorded(b.m);
					rc = rfs_meta_apply_changeset(b.m, cs.data, l);
					rfs_meta_rollback(b.m);
				}
				alarm(0);
				if (which == 1 && (rc >= 0) != well_formed) {
					fprintf(stderr, "  a changeset cut to %zu of %zu bytes was %s\n", l, cs.len,
						rc >= 0 ? "applied although damaged" : "refused although well-formed");
					bad = 1;
				}
				if (which == 0 && !well_formed && rc >= 0) {
					fprintf(stderr, "  a damaged changeset cut to %zu bytes was read\n", l);
					bad = 1;
				}
			}
			_exit(bad);
		}
		int st = 0;
		CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
		if (!CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0))
			fprintf(stderr, "  in %s\n", which ? "rfs_meta_apply_changeset" : "rfs_meta_changeset_touched");
	}
close:
	rfs_buf_free(&cs);
	db_close(&b);
	db_close(&a);
out:
	check_rmtree(tmp_dir);
}

static int orphan_cb(void *arg, uint64_t ino)
{
	uint64_t *o = arg;
	*o = ino;
	return 0;
}

static void meta_orphans(void)
{
	REQUIRE(fresh_dir() == 0);
	struct db a;
	if (db_open(&a, "a.db") < 0)
		goto out;
	CHECK_OK(rfs_meta_begin(a.m));
	uint64_t f = mknode(a.m, RFS_ROOT_INO, "f", S_IFREG | 0644);
	struct rfs_attr at = mk_attr(f, S_IFREG | 0644, 0, 1);
	at.nlink = 0;
	CHECK_OK(rfs_meta_del_dentry(a.m, RFS_ROOT_INO, "f"));
	CHECK_OK(rfs_meta_put_attr(a.m, &at));
	CHECK_OK(rfs_meta_commit(a.m));
	uint64_t found = 0;
	rfs_meta_lock(a.m);
	CHECK_OK(rfs_meta_orphans(a.m, orphan_cb, &found));
	rfs_meta_unlock(a.m);
	CHECK_EQ(found, f);
	db_close(&a);
out:
	check_rmtree(tmp_dir);
}

int main(int argc, char **argv)
{
	check_init(argc, argv);
	RUN(meta_open_fresh);
	RUN(meta_open_refuses_unknown_schema);
	RUN(meta_migrates_schema_1);
	RUN(meta_attr_dentry_lookup);
	RUN(meta_readdir_cookie_order);
	RUN(meta_dir_is_empty);
	RUN(meta_symlink);
	RUN(meta_bmap);
	RUN(meta_blocks);
	RUN(meta_xattr);
	RUN(meta_alloc_id_ranges);
	RUN(meta_rollback_discards);
	RUN(meta_rollback_range_claim);
	RUN(meta_pending_rows);
	RUN(meta_changeset_replicates);
	RUN(meta_recorder_random_history);
	RUN(meta_failed_statement_is_not_published);
	RUN(meta_failed_commit_keeps_ids_unique);
	RUN(meta_apply_remote_rebase);
	RUN(meta_changeset_touched);
	RUN(meta_orphans);
	RUN(meta_apply_truncated_changeset);
	return check_done();
}
