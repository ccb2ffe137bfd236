/* Unit tests for sync/gc.c: fsck's findings and repairs, gc's liveness and grace rules.
 *
 * A "writer" plays the part of a host: it builds packs itself (so a test can give a pack any
 * creation time) and publishes metadata through its own replica and the real log, exactly as
 * a mount would. fsck and gc then run on the store as the CLI runs them. */
#include <inttypes.h>
#include <sys/stat.h>
#include <time.h>

#include "check.h"
#include "fs/pack.h"
#include "sync/gc.h"

struct ws {
	char dir[4096], store_dir[4200];
	struct rfs_store *store;
	struct rfs_meta *meta;
	struct rfs_sync *sync;
};

static uint64_t rng_state = 0x243f6a8885a308d3ULL;
static void fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		rng_state ^= rng_state >> 12;
		rng_state ^= rng_state << 25;
		rng_state ^= rng_state >> 27;
		p[i] = (uint8_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 56);
	}
}

static int ws_open(struct ws *w)
{
	memset(w, 0, sizeof(*w));
	if (check_tmpdir(w->dir, sizeof(w->dir)) < 0)
		return -1;
	snprintf(w->store_dir, sizeof(w->store_dir), "%s/store", w->dir);
	char err[1024] = "", path[4300];
	struct rfs_format f = {.version = RFS_FORMAT_VERSION,
			       .uuid = "0123456789abcdef0123456789abcdef",
			       .block_size = 1u << 20,
			       .compress = 1};
	if (!CHECK_OK(rfs_mkdir_p(w->store_dir, 0755)) ||
	    !CHECK_OK(rfs_store_open(w->store_dir, &w->store, err, sizeof(err))) ||
	    !CHECK_OK(rfs_format_write(w->store, &f, 0, err, sizeof(err))))
		return -1;
	snprintf(path, sizeof(path), "%s/writer.db", w->dir);
	if (!CHECK_OK(rfs_meta_open(path, &w->meta, err, sizeof(err))) ||
	    !CHECK_OK(rfs_sync_open(w->store, w->meta, "writer", 1000, &w->sync)))
		return -1;
	return 0;
}

static void ws_close(struct ws *w)
{
	rfs_sync_close(w->sync);
	rfs_meta_close(w->meta);
	if (w->store)
		rfs_store_close(w->store);
	check_rmtree(w->dir);
}

/* Uploads a pack holding one block, created age_s seconds ago (by its id). */
static uint64_t xsum_flip; /* XORed into the xsum put_pack records (a damaged row) */

static int put_pack(struct ws *w, const uint8_t *data, uint32_t len, int64_t age_s, struct rfs_block_loc *loc,
		    uint8_t hash[RFS_HASH_LEN])
{
	struct rfs_pack p;
	rfs_pack_init(&p, 1);
	snprintf(p.id + 16, sizeof(p.id) - 16, "%016llx", (unsigned long long)(rfs_now_ns() / 1000000 - age_s * 1000));
	struct rfs_pack_entry e;
	rfs_sha256(data, len, hash);
	int rc = rfs_pack_add(&p, hash, data, len, &e);
	if (rc == 0)
		rc = rfs_pack_finish(&p);
	char key[64];
	rfs_pack_key(p.id, key, sizeof(key));
	if (rc == 0)
		rc = rfs_store_put(w->store, key, p.buf.data, p.buf.len);
	snprintf(loc->pack, sizeof(loc->pack), "%s", p.id);
	loc->off = e.offset;
	loc->slen = e.stored_len;
	loc->rlen = e.raw_len;
	loc->codec = e.codec;
	loc->has_xsum = 1;
	loc->xsum = e.xsum ^ xsum_flip;
	rfs_pack_free(&p);
	return rc;
}

static int publish(struct ws *w)
{
	int rc = rfs_meta_commit(w->meta);
	if (rc == 0)
		rc = rfs_sync_commit_now(w->sync);
	return rc;
}

static uint64_t ws_mkdir(struct ws *w, uint64_t parent, const char *name)
{
	uint64_t ino = 0;
	int64_t now = rfs_now_ns();
	if (!CHECK_OK(rfs_meta_begin(w->meta)))
		return 0;
	struct rfs_attr a = {.mode = S_IFDIR | 0755, .nlink = 2, .atime = now, .mtime = now, .ctime = now};
	int rc = rfs_meta_alloc_id(w->meta, &ino);
	a.ino = ino;
	if (rc == 0)
		rc = rfs_meta_put_attr(w->meta, &a);
	if (rc == 0)
		rc = rfs_meta_add_dentry(w->meta, parent, name, ino);
	if (rc < 0) {
		rfs_meta_rollback(w->meta);
		CHECK_OK(rc);
		return 0;
	}
	return CHECK_OK(publish(w)) ? ino : 0;
}

/* A one-block file whose block lives in a pack of its own (or, with place 0, a file whose
 * block map names a hash without recording where it lives: a host that deduplicated). */
static uint64_t ws_file(struct ws *w, uint64_t parent, const char *name, const uint8_t *data, uint32_t len,
			int64_t pack_age_s, int place, struct rfs_block_loc *loc_out)
{
	uint8_t hash[RFS_HASH_LEN];
	struct rfs_block_loc loc;
	if (place) {
		if (!CHECK_OK(put_pack(w, data, len, pack_age_s, &loc, hash)))
			return 0;
	} else {
		rfs_sha256(data, len, hash);
	}
	if (loc_out)
		*loc_out = loc;
	uint64_t ino = 0;
	int64_t now = rfs_now_ns();
	if (!CHECK_OK(rfs_sync_pull(w->sync)) || !CHECK_OK(rfs_meta_begin(w->meta)))
		return 0;
	struct rfs_attr a = {.mode = S_IFREG | 0644, .nlink = 1, .size = len, .atime = now, .mtime = now, .ctime = now};
	int rc = rfs_meta_alloc_id(w->meta, &ino);
	a.ino = ino;
	if (rc == 0)
		rc = rfs_meta_put_attr(w->meta, &a);
	if (rc == 0)
		rc = rfs_meta_add_dentry(w->meta, parent, name, ino);
	if (rc == 0)
		rc = rfs_meta_bmap_set(w->meta, ino, 0, hash);
	if (rc == 0 && place)
		rc = rfs_meta_block_put(w->meta, hash, &loc);
	if (rc < 0) {
		rfs_meta_rollback(w->meta);
		CHECK_OK(rc);
		return 0;
	}
	return CHECK_OK(publish(w)) ? ino : 0;
}

static int ws_unlink(struct ws *w, uint64_t parent, const char *name)
{
	int rc = rfs_sync_pull(w->sync);
	if (rc < 0)
		return rc;
	uint64_t ino;
	if ((rc = rfs_meta_begin(w->meta)) < 0)
		return rc;
	rc = rfs_meta_lookup(w->meta, parent, name, &ino);
	if (rc == 0)
		rc = rfs_meta_del_dentry(w->meta, parent, name);
	if (rc == 0)
		rc = rfs_meta_delete_inode(w->meta, ino);
	if (rc < 0) {
		rfs_meta_rollback(w->meta);
		return rc;
	}
	return publish(w);
}

static int pack_exists(struct ws *w, const char *id)
{
	char key[64];
	rfs_pack_key(id, key, sizeof(key));
	return rfs_store_head(w->store, key, NULL) == 0;
}

static void pack_path(struct ws *w, const char *id, char *buf, size_t len)
{
	snprintf(buf, len, "%s/data/%.2s/%s", w->store_dir, id, id);
}

/* Everything fsck and gc report, one "kind: msg" line each. */
struct notes {
	char text[65536];
	int lost_files, problems;
};

static void collect(void *arg, const struct rfs_note *n)
{
	static const char *const k[] = {"info", "problem", "lost", "repaired"};
	struct notes *ns = arg;
	size_t l = strlen(ns->text);
	snprintf(ns->text + l, sizeof(ns->text) - l, "%s: %s\n", k[n->kind], n->msg);
	ns->lost_files += n->kind == RFS_NOTE_LOST_FILE;
	ns->problems += n->kind == RFS_NOTE_PROBLEM;
	if (n->kind == RFS_NOTE_LOST_FILE)
		CHECK(n->path && n->ino);
}

static int run_fsck(struct ws *w, int repair, struct rfs_fsck_stats *st, struct notes *ns)
{
	memset(ns, 0, sizeof(*ns));
	struct rfs_fsck_opts o = {.repair = repair, .work_dir = w->dir, .cb = collect, .arg = ns};
	char err[1024] = "";
	int rc = rfs_fsck(w->store, &o, st, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "  fsck: %s\n", err);
	if (getenv("RFS_TEST_VERBOSE"))
		fputs(ns->text, stderr);
	return rc;
}

static int run_gc(struct ws *w, int64_t grace_s, int64_t now_ms, int dry_run, struct rfs_gc_stats *st, struct notes *ns)
{
	memset(ns, 0, sizeof(*ns));
	struct rfs_gc_opts o = {
	    .grace_s = grace_s, .now_ms = now_ms, .dry_run = dry_run, .work_dir = w->dir, .cb = collect, .arg = ns};
	char err[1024] = "";
	int rc = rfs_gc(w->store, &o, st, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "  gc: %s\n", err);
	if (getenv("RFS_TEST_VERBOSE"))
		fputs(ns->text, stderr);
	return rc;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

#define HOUR 3600

/* ---- fsck ---- */

static void fsck_clean_store(void)
{
	struct ws w;
	uint8_t a[70000], b[5000];
	fill(a, sizeof(a));
	fill(b, sizeof(b));
	if (ws_open(&w) == 0) {
		uint64_t d = ws_mkdir(&w, RFS_ROOT_INO, "dir");
		REQUIRE(d);
		REQUIRE(ws_file(&w, d, "a", a, sizeof(a), 0, 1, NULL));
		REQUIRE(ws_file(&w, RFS_ROOT_INO, "b", b, sizeof(b), 0, 1, NULL));
		struct rfs_fsck_stats st;
		struct notes ns;
		CHECK_OK(run_fsck(&w, 0, &st, &ns));
		CHECK_EQ(st.problems, 0);
		CHECK_EQ(st.packs, 2);
		CHECK_EQ(st.blocks, 2);
		CHECK_EQ(st.blocks_verified, 2);
		CHECK_EQ(st.orphans, 0);
		CHECK_EQ(st.log_records, 3);
		CHECK_STR(ns.text, "");
	}
	ws_close(&w);
}

/* A row whose xsum does not match its (intact) block: every read of it fails, so fsck says so,
 * although the bytes match the block's SHA-256. */
static void fsck_checks_the_rows_xsum(void)
{
	struct ws w;
	uint8_t a[70000], b[5000];
	fill(a, sizeof(a));
	fill(b, sizeof(b));
	if (ws_open(&w) == 0) {
		REQUIRE(ws_file(&w, RFS_ROOT_INO, "good", a, sizeof(a), 0, 1, NULL));
		xsum_flip = 1ULL << 40;
		uint64_t ib = ws_file(&w, RFS_ROOT_INO, "bad-row", b, sizeof(b), 0, 1, NULL);
		xsum_flip = 0;
		REQUIRE(ib);
		struct rfs_fsck_stats st;
		struct notes ns;
		CHECK_OK(run_fsck(&w, 0, &st, &ns));
		CHECK_EQ(st.blocks_verified, 1);
		CHECK_EQ(st.blocks_bad, 1);
		CHECK_EQ(st.files_lost, 1);
		CHECK_CONTAINS(ns.text, "different checksum (xsum)");
		CHECK_CONTAINS(ns.text, "/bad-row");
		CHECK(!strstr(ns.text, "/good"));
	}
	ws_close(&w);
}

static void fsck_missing_and_corrupt_packs_name_the_files(void)
{
	struct ws w;
	uint8_t a[70000], b[90000], c[3000];
	fill(a, sizeof(a));
	fill(b, sizeof(b));
	fill(c, sizeof(c));
	struct rfs_block_loc la, lb;
	if (ws_open(&w) == 0) {
		uint64_t d = ws_mkdir(&w, RFS_ROOT_INO, "models");
		uint64_t sub = ws_mkdir(&w, d, "v1");
		REQUIRE(sub);
		uint64_t ia = ws_file(&w, sub, "weights.bin", a, sizeof(a), 0, 1, &la);
		REQUIRE(ia);
		REQUIRE(ws_file(&w, d, "notes.txt", b, sizeof(b), 0, 1, &lb));
		REQUIRE(ws_file(&w, RFS_ROOT_INO, "fine", c, sizeof(c), 0, 1, NULL));
		char path[4400];
		pack_path(&w, la.pack, path, sizeof(path));
		REQUIRE(unlink(path) == 0);
		/* flip a byte in the middle of b's payload */
		pack_path(&w, lb.pack, path, sizeof(path));
		FILE *f = fopen(path, "r+b");
		REQUIRE(f);
		fseek(f, (long)(lb.off + lb.slen / 2), SEEK_SET);
		int ch = fgetc(f);
		fseek(f, (long)(lb.off + lb.slen / 2), SEEK_SET);
		fputc(ch ^ 0x5a, f);
		fclose(f);

		struct rfs_fsck_stats st;
		struct notes ns;
		CHECK_OK(run_fsck(&w, 0, &st, &ns));
		CHECK_EQ(st.packs_missing, 1);
		CHECK_EQ(st.packs_damaged, 1);
		CHECK_EQ(st.blocks_bad, 2);
		CHECK_EQ(st.files_lost, 2);
		CHECK_EQ(st.problems, 2);
		CHECK_EQ(ns.lost_files, 2);
		CHECK_CONTAINS(ns.text, la.pack);
		CHECK_CONTAINS(ns.text, lb.pack);
		CHECK_CONTAINS(ns.text, "/models/v1/weights.bin");
		CHECK_CONTAINS(ns.text, "/models/notes.txt");
		char ino[64];
		snprintf(ino, sizeof(ino), "inode %" PRIu64 ")", ia);
		CHECK_CONTAINS(ns.text, ino);
		CHECK(!strstr(ns.text, "/fine"));

		/* --quick reads trailers only: the missing pack still shows, the flipped payload not */
		struct rfs_fsck_opts o = {.quick = 1, .work_dir = w.dir, .cb = collect, .arg = &ns};
		char err[256];
		memset(&ns, 0, sizeof(ns));
		CHECK_OK(rfs_fsck(w.store, &o, &st, err, sizeof(err)));
		CHECK_EQ(st.packs_missing, 1);
		CHECK_EQ(st.blocks_verified, 0);
		CHECK_EQ(st.files_lost, 1);
	}
	ws_close(&w);
}

static void fsck_orphans_and_foreign_objects_are_info(void)
{
	struct ws w;
	uint8_t a[4000];
	fill(a, sizeof(a));
	if (ws_open(&w) == 0) {
		struct rfs_block_loc loc;
		uint8_t h[RFS_HASH_LEN];
		REQUIRE_OK(put_pack(&w, a, sizeof(a), 0, &loc, h));
		REQUIRE_OK(rfs_store_put(w.store, "data/zz/readme.txt", "hi", 2));
		struct rfs_fsck_stats st;
		struct notes ns;
		CHECK_OK(run_fsck(&w, 0, &st, &ns));
		CHECK_EQ(st.problems, 0);
		CHECK_EQ(st.orphans, 1);
		CHECK_EQ(st.objects, 2);
		CHECK_CONTAINS(ns.text, loc.pack);
		CHECK_CONTAINS(ns.text, "data/zz/readme.txt");
	}
	ws_close(&w);
}

static void fsck_repair_repoints_to_a_copy_and_removes_lost_records(void)
{
	struct ws w;
	uint8_t a[50000], b[60000];
	fill(a, sizeof(a));
	fill(b, sizeof(b));
	if (ws_open(&w) == 0) {
		struct rfs_block_loc la, lb, copy;
		uint8_t h[RFS_HASH_LEN];
		REQUIRE(ws_file(&w, RFS_ROOT_INO, "a", a, sizeof(a), 0, 1, &la));
		REQUIRE(ws_file(&w, RFS_ROOT_INO, "b", b, sizeof(b), 0, 1, &lb));
		/* a second copy of a's block in a pack nothing names (two hosts uploaded it) */
		REQUIRE_OK(put_pack(&w, a, sizeof(a), 0, &copy, h));
		char path[4400];
		pack_path(&w, la.pack, path, sizeof(path));
		REQUIRE(unlink(path) == 0);
		pack_path(&w, lb.pack, path, sizeof(path));
		REQUIRE(unlink(path) == 0);

		struct rfs_fsck_stats st;
		struct notes ns;
		CHECK_OK(run_fsck(&w, 1, &st, &ns));
		CHECK_EQ(st.packs_missing, 2);
		CHECK_EQ(st.files_lost, 2);
		CHECK_EQ(st.repaired, 1);
		CHECK_EQ(st.repair_removed, 1);
		CHECK_CONTAINS(ns.text, copy.pack);

		/* a is whole again; b's bytes are gone: it now shows as a block without a location */
		CHECK_OK(run_fsck(&w, 0, &st, &ns));
		CHECK_EQ(st.packs_missing, 0);
		CHECK_EQ(st.blocks_unplaced, 1);
		CHECK_EQ(st.files_lost, 1);
		CHECK_CONTAINS(ns.text, "/b (inode");
		CHECK(!strstr(ns.text, "/a (inode"));
		CHECK_EQ(st.orphans, 0);

		/* writing b's bytes again (a host restoring it) stores them anew and heals /b */
		REQUIRE(ws_file(&w, RFS_ROOT_INO, "b.restored", b, sizeof(b), 0, 1, NULL));
		CHECK_OK(run_fsck(&w, 0, &st, &ns));
		CHECK_EQ(st.problems, 0);
	}
	ws_close(&w);
}

static void fsck_reports_a_damaged_log(void)
{
	struct ws w;
	uint8_t a[3000];
	fill(a, sizeof(a));
	if (ws_open(&w) == 0) {
		REQUIRE(ws_file(&w, RFS_ROOT_INO, "a", a, sizeof(a), 0, 1, NULL));
		REQUIRE(ws_file(&w, RFS_ROOT_INO, "b", a, sizeof(a), 0, 1, NULL));
		REQUIRE_OK(rfs_store_put(w.store, "log/00000000000000000002", "RFSLOG2 garbage\n", 16));
		struct rfs_fsck_stats st;
		struct notes ns;
		CHECK_OK(run_fsck(&w, 0, &st, &ns));
		CHECK(st.problems >= 1);
		CHECK_EQ(st.log_records, 1);
		CHECK_CONTAINS(ns.text, "log/00000000000000000002");
		/* gc refuses to work on a log it cannot read */
		struct rfs_gc_stats gs;
		char err[1024] = "";
		struct rfs_gc_opts o = {.grace_s = 0, .work_dir = w.dir};
		CHECK_ERR(rfs_gc(w.store, &o, &gs, err, sizeof(err)), EIO);
		CHECK_CONTAINS(err, "fsck");
	}
	ws_close(&w);
}

/* ---- gc ---- */

static void gc_grace_zero_frees_dead_packs_and_keeps_live_ones(void)
{
	struct ws w;
	uint8_t keep[80000], dead[90000];
	fill(keep, sizeof(keep));
	fill(dead, sizeof(dead));
	if (ws_open(&w) == 0) {
		struct rfs_block_loc lk, ld;
		REQUIRE(ws_file(&w, RFS_ROOT_INO, "keep", keep, sizeof(keep), 0, 1, &lk));
		REQUIRE(ws_file(&w, RFS_ROOT_INO, "dead", dead, sizeof(dead), 0, 1, &ld));
		REQUIRE_OK(ws_unlink(&w, RFS_ROOT_INO, "dead"));
		struct rfs_gc_stats st;
		struct notes ns;
		/* default grace: both packs are minutes old, nothing goes */
		CHECK_OK(run_gc(&w, HOUR, 0, 0, &st, &ns));
		CHECK_EQ(st.objects, 2);
		CHECK_EQ(st.live, 1);
		CHECK_EQ(st.kept_young, 1);
		CHECK_EQ(st.deleted, 0);
		CHECK(pack_exists(&w, ld.pack));
		/* dry run with grace 0 says what would go and changes nothing */
		CHECK_OK(run_gc(&w, 0, 0, 1, &st, &ns));
		CHECK_EQ(st.deleted, 1);
		CHECK_EQ(st.retired_blocks, 1);
		CHECK(pack_exists(&w, ld.pack));
		/* grace 0: retired and deleted in one run */
		CHECK_OK(run_gc(&w, 0, 0, 0, &st, &ns));
		CHECK_EQ(st.retired_packs, 1);
		CHECK_EQ(st.deleted, 1);
		CHECK_EQ(st.deleted_bytes, ld.slen + RFS_PACK_ENTRY_SIZE + RFS_PACK_FOOTER_SIZE);
		CHECK(!pack_exists(&w, ld.pack));
		CHECK(pack_exists(&w, lk.pack));
		/* the store is consistent: no record names the deleted pack any more */
		struct rfs_fsck_stats fs;
		CHECK_OK(run_fsck(&w, 0, &fs, &ns));
		CHECK_EQ(fs.problems, 0);
		CHECK_EQ(fs.packs, 1);
		/* nothing left to do */
		CHECK_OK(run_gc(&w, 0, 0, 0, &st, &ns));
		CHECK_EQ(st.deleted, 0);
		CHECK_EQ(st.objects, 1);
	}
	ws_close(&w);
}

static void gc_retires_then_deletes_after_the_grace_period(void)
{
	struct ws w;
	uint8_t dead[20000];
	fill(dead, sizeof(dead));
	if (ws_open(&w) == 0) {
		struct rfs_block_loc ld;
		/* a pack created two hours ago, its file deleted just now */
		REQUIRE(ws_file(&w, RFS_ROOT_INO, "dead", dead, sizeof(dead), 2 * HOUR, 1, &ld));
		REQUIRE_OK(ws_unlink(&w, RFS_ROOT_INO, "dead"));
		struct rfs_gc_stats st;
		struct notes ns;
		/* the deletion is a log record within the grace period: a host that has not pulled it
		 * yet may still read the file */
		CHECK_OK(run_gc(&w, 2, 0, 0, &st, &ns));
		CHECK_EQ(st.kept_recent, 1);
		CHECK_EQ(st.retired_packs, 0);
		sleep_ms(2100);
		/* now the pack is retired (its rows deleted by a published record) but stays */
		CHECK_OK(run_gc(&w, 2, 0, 0, &st, &ns));
		CHECK_EQ(st.retired_packs, 1);
		CHECK_EQ(st.retired_blocks, 1);
		CHECK_EQ(st.deleted, 0);
		CHECK(pack_exists(&w, ld.pack));
		/* the retiring record is itself within the grace period */
		CHECK_OK(run_gc(&w, 2, 0, 0, &st, &ns));
		CHECK_EQ(st.kept_recent, 1);
		CHECK_EQ(st.deleted, 0);
		sleep_ms(2100);
		CHECK_OK(run_gc(&w, 2, 0, 0, &st, &ns));
		CHECK_EQ(st.deleted, 1);
		CHECK(!pack_exists(&w, ld.pack));
	}
	ws_close(&w);
}

static void gc_restores_a_block_a_host_deduplicated_into_while_it_was_retired(void)
{
	struct ws w;
	uint8_t data[30000];
	fill(data, sizeof(data));
	if (ws_open(&w) == 0) {
		struct rfs_block_loc ld;
		REQUIRE(ws_file(&w, RFS_ROOT_INO, "old", data, sizeof(data), 2 * HOUR, 1, &ld));
		REQUIRE_OK(ws_unlink(&w, RFS_ROOT_INO, "old"));
		struct rfs_gc_stats st;
		struct notes ns;
		int64_t later = rfs_now_ns() / 1000000 + 2 * HOUR * 1000LL;
		/* dry run as of two hours later: it would retire and delete the pack */
		CHECK_OK(run_gc(&w, HOUR, later, 1, &st, &ns));
		CHECK_EQ(st.deleted, 1);
		/* a real run, as of now with a 1 s grace: retires the pack's rows, keeps the pack */
		sleep_ms(1100);
		CHECK_OK(run_gc(&w, 1, 0, 0, &st, &ns));
		CHECK_EQ(st.retired_packs, 1);
		CHECK(pack_exists(&w, ld.pack));
		/* a host that had not seen the retirement deduplicates new data into that block:
		 * its block map names the hash, and no row says where it lives */
		REQUIRE(ws_file(&w, RFS_ROOT_INO, "new", data, sizeof(data), 0, 0, NULL));
		struct rfs_fsck_stats fs;
		CHECK_OK(run_fsck(&w, 0, &fs, &ns));
		CHECK_EQ(fs.blocks_unplaced, 1);
		/* gc, even as of much later, restores the row instead of deleting the pack */
		CHECK_OK(run_gc(&w, HOUR, later + 2 * HOUR * 1000LL, 0, &st, &ns));
		CHECK_EQ(st.healed, 1);
		CHECK_EQ(st.deleted, 0);
		CHECK(pack_exists(&w, ld.pack));
		CHECK_OK(run_fsck(&w, 0, &fs, &ns));
		CHECK_EQ(fs.problems, 0);
		CHECK_EQ(fs.blocks_verified, 1);
	}
	ws_close(&w);
}

static void gc_orphans_by_age_and_foreign_objects_untouched(void)
{
	struct ws w;
	uint8_t a[2000], b[2000], c[2000];
	fill(a, sizeof(a));
	fill(b, sizeof(b));
	fill(c, sizeof(c));
	if (ws_open(&w) == 0) {
		struct rfs_block_loc old, young, live;
		uint8_t h[RFS_HASH_LEN];
		REQUIRE_OK(put_pack(&w, a, sizeof(a), 3 * HOUR, &old, h)); /* a flush that crashed long ago */
		REQUIRE_OK(put_pack(&w, b, sizeof(b), 60, &young, h));     /* a flush in progress */
		REQUIRE(ws_file(&w, RFS_ROOT_INO, "live", c, sizeof(c), 3 * HOUR, 1, &live));
		REQUIRE_OK(rfs_store_put(w.store, "data/zz/notes", "x", 1));
		struct rfs_gc_stats st;
		struct notes ns;
		CHECK_OK(run_gc(&w, HOUR, 0, 0, &st, &ns));
		CHECK_EQ(st.objects, 3);
		CHECK_EQ(st.other, 1);
		CHECK_EQ(st.live, 1);
		CHECK_EQ(st.kept_young, 1);
		CHECK_EQ(st.deleted, 1);
		CHECK_EQ(st.retired_packs, 0);
		CHECK(!pack_exists(&w, old.pack));
		CHECK(pack_exists(&w, young.pack));
		CHECK(pack_exists(&w, live.pack));
		CHECK(rfs_store_head(w.store, "data/zz/notes", NULL) == 0);
		CHECK_CONTAINS(ns.text, old.pack);
	}
	ws_close(&w);
}

struct refs {
	int hashes, packs;
	char pack[33];
};

static void refs_cb(void *arg, const uint8_t *hash, const char *pack)
{
	struct refs *r = arg;
	r->hashes += hash != NULL;
	if (pack) {
		r->packs++;
		snprintf(r->pack, sizeof(r->pack), "%s", pack);
	}
}

static void changeset_block_refs_sees_deleted_rows(void)
{
	struct ws w;
	uint8_t a[1000];
	fill(a, sizeof(a));
	if (ws_open(&w) == 0) {
		struct rfs_block_loc la;
		uint64_t ino = ws_file(&w, RFS_ROOT_INO, "a", a, sizeof(a), 0, 1, &la);
		REQUIRE(ino);
		uint8_t h[RFS_HASH_LEN];
		rfs_sha256(a, sizeof(a), h);
		REQUIRE_OK(rfs_meta_begin(w.meta));
		CHECK_OK(rfs_meta_block_del(w.meta, h));
		CHECK_ERR(rfs_meta_block_del(w.meta, h), ENOENT);
		CHECK_OK(rfs_meta_bmap_del(w.meta, ino, 0));
		REQUIRE_OK(rfs_meta_commit(w.meta));
		struct rfs_buf cs = {0};
		int64_t upto = 0, n = 0;
		rfs_meta_lock(w.meta);
		CHECK_OK(rfs_meta_pending_collect(w.meta, &cs, &upto, &n));
		rfs_meta_unlock(w.meta);
		struct refs r = {0};
		CHECK_OK(rfs_meta_changeset_block_refs(cs.data, cs.len, refs_cb, &r));
		CHECK_EQ(r.hashes, 2); /* the blocks row's hash and the bmap row's old hash */
		CHECK_EQ(r.packs, 1);
		CHECK_STR(r.pack, la.pack);
		CHECK_ERR(rfs_meta_changeset_block_refs("junk", 4, refs_cb, &r), EINVAL);
		rfs_buf_free(&cs);
	}
	ws_close(&w);
}

int main(int argc, char **argv)
{
	check_init(argc, argv);
	RUN(fsck_clean_store);
	RUN(fsck_checks_the_rows_xsum);
	RUN(fsck_missing_and_corrupt_packs_name_the_files);
	RUN(fsck_orphans_and_foreign_objects_are_info);
	RUN(fsck_repair_repoints_to_a_copy_and_removes_lost_records);
	RUN(fsck_reports_a_damaged_log);
	RUN(gc_grace_zero_frees_dead_packs_and_keeps_live_ones);
	RUN(gc_retires_then_deletes_after_the_grace_period);
	RUN(gc_restores_a_block_a_host_deduplicated_into_while_it_was_retired);
	RUN(gc_orphans_by_age_and_foreign_objects_untouched);
	RUN(changeset_block_refs_sees_deleted_rows);
	return check_done();
}
