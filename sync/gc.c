/*
 * gc.c - fsck and gc over a private replica of a store's metadata (see gc.h, docs/gc.md).
 *
 * Both follow the same shape: build the replica (replay the log), walk the `blocks` table in
 * pack order, compare with what is under data/, then act. Memory holds one pack at a time
 * (fsck) or one small record per pack (gc), plus the lists of what was found damaged.
 */
#include "sync/gc.h"

#include <errno.h>
#include <inttypes.h>
#include <lz4.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/log.h"
#include "fs/pack.h"
#include "sync/commit.h"

#ifndef RFS_FSCK_WHOLE_PACK_MAX
#define RFS_FSCK_WHOLE_PACK_MAX (64u << 20) /* fsck GETs a pack up to this size in one request */
#endif
#define TAIL_FIRST (64u << 10) /* first tail read: trailers of up to ~1,300 blocks */
#define PACK_ID_LEN 32

/* ---------- small sorted vectors ---------- */

struct vec {
	uint8_t *v;
	size_t n, cap, size; /* size: bytes per element; the key is a prefix of it */
};

static int vec_push(struct vec *a, const void *e)
{
	if (a->n == a->cap) {
		size_t nc = a->cap ? a->cap * 2 : 64;
		uint8_t *nv = realloc(a->v, nc * a->size);
		if (!nv)
			return -ENOMEM;
		a->v = nv;
		a->cap = nc;
	}
	memcpy(a->v + a->n * a->size, e, a->size);
	a->n++;
	return 0;
}

static void *vec_at(const struct vec *a, size_t i)
{
	return a->v + i * a->size;
}

static void vec_free(struct vec *a)
{
	free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

static int cmp_key(const void *a, const void *b, void *klen)
{
	return memcmp(a, b, *(const size_t *)klen);
}

/* Sorts by the first klen bytes; unique: keeps the first of equal keys. */
static void vec_sort(struct vec *a, size_t klen, int unique)
{
	if (a->n > 1)
		qsort_r(a->v, a->n, a->size, cmp_key, &klen);
	if (!unique || a->n < 2)
		return;
	size_t w = 1;
	for (size_t i = 1; i < a->n; i++)
		if (memcmp(vec_at(a, i), vec_at(a, w - 1), klen))
			memmove(vec_at(a, w++), vec_at(a, i), a->size);
	a->n = w;
}

static void *vec_find(const struct vec *a, const void *key, size_t klen)
{
	size_t lo = 0, hi = a->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(vec_at(a, mid), key, klen);
		if (c == 0)
			return vec_at(a, mid);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* A pack id as a fixed 33-byte key (zero padded, so memcmp orders like strcmp). */
static void id_key(const char *id, char out[PACK_ID_LEN + 1])
{
	memset(out, 0, PACK_ID_LEN + 1);
	snprintf(out, PACK_ID_LEN + 1, "%s", id);
}

static int valid_pack_id(const char *id)
{
	if (strlen(id) != PACK_ID_LEN)
		return 0;
	for (const char *p = id; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return 0;
	return 1;
}

/* "data/xx/<id>" -> id, or NULL if key is not a pack's key. */
static const char *pack_id_of_key(const char *key)
{
	const char *slash = strrchr(key, '/');
	if (!slash || !valid_pack_id(slash + 1))
		return NULL;
	char expect[64];
	rfs_pack_key(slash + 1, expect, sizeof(expect));
	return strcmp(expect, key) ? NULL : slash + 1;
}

static void hash_short(const uint8_t *h, char out[17])
{
	rfs_hex(h, 8, out);
}

static void note(rfs_note_cb cb, void *arg, enum rfs_note_kind kind, const char *pack, const char *path, uint64_t ino,
		 const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static void note(rfs_note_cb cb, void *arg, enum rfs_note_kind kind, const char *pack, const char *path, uint64_t ino,
		 const char *fmt, ...)
{
	if (!cb)
		return;
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct rfs_note n = {.kind = kind, .pack = pack, .path = path, .ino = ino, .msg = msg};
	cb(arg, &n);
}

static void store_fail(struct rfs_store *s, int rc, char *err, size_t errlen, const char *what, const char *key)
{
	char cause[256];
	rfs_store_error(s, cause, sizeof(cause));
	snprintf(err, errlen, "cannot %s '%s': %s (is the store reachable? run again when it is)", what, key,
		 cause[0] ? cause : strerror(-rc));
}

/* ---------- log records (the format of sync/commit.h) ---------- */

struct log_rec {
	int64_t time_ns;
	uint8_t *cs; /* malloc'd raw changeset */
	size_t cs_len;
};

static void log_key(int64_t seq, char *buf, size_t len)
{
	snprintf(buf, len, "log/%020" PRId64, seq);
}

/* 0, -ENOENT (no such record), -EINVAL (damaged) or the store's error. */
static int log_read(struct rfs_store *st, int64_t seq, struct log_rec *r)
{
	char key[64];
	log_key(seq, key, sizeof(key));
	memset(r, 0, sizeof(*r));
	struct rfs_buf b = {0};
	int rc = rfs_store_get(st, key, 0, RFS_GET_TO_END, &b);
	if (rc < 0)
		return rc;
	struct rfs_log_record lr;
	rc = rfs_log_record_parse(&b, &lr);
	if (rc == 0 && lr.seq != seq) {
		free(lr.cs);
		rc = -EINVAL;
	}
	if (rc < 0) {
		rc = -EINVAL;
		goto out;
	}
	r->cs = lr.cs;
	r->cs_len = lr.cs_len;
	r->time_ns = lr.time_ns;
	rc = 0;
out:
	if (rc < 0) {
		free(r->cs);
		r->cs = NULL;
	}
	rfs_buf_free(&b);
	return rc;
}

/* ---------- the private replica ---------- */

int rfs_replica_open(struct rfs_store *store, const char *host_id, const char *work_dir, struct rfs_replica **out,
		     char *err, size_t errlen)
{
	struct rfs_replica *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->store = store;
	int rc = rfs_format_read(store, &r->format, err, errlen);
	if (rc < 0)
		goto fail;
	const char *t = work_dir && work_dir[0] ? work_dir : getenv("TMPDIR");
	if (!t || !t[0])
		t = "/tmp";
	snprintf(r->dir, sizeof(r->dir), "%s/roamfs-%s-XXXXXX", t, host_id);
	if (!mkdtemp(r->dir)) {
		rc = -errno;
		snprintf(err, errlen, "cannot create a temporary directory in '%s': %s (set TMPDIR to a writable disk)",
			 t, strerror(errno));
		r->dir[0] = 0;
		goto fail;
	}
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/meta.db", r->dir);
	rc = rfs_meta_open(path, &r->meta, err, errlen);
	if (rc < 0)
		goto fail;
	rc = rfs_sync_open(store, r->meta, host_id, 1000, &r->sync);
	if (rc < 0) {
		snprintf(err, errlen, "cannot start replaying the log: %s", strerror(-rc));
		goto fail;
	}
	/* a repair or gc publishes records of this version: upgrade an older workspace first */
	r->format_guard = (struct rfs_format_guard){store, &r->format};
	rfs_sync_set_publish_guard(r->sync, rfs_format_guard, &r->format_guard);
	rc = rfs_sync_pull(r->sync);
	rfs_meta_lock(r->meta);
	if (rfs_meta_local_get_int(r->meta, "applied_seq", &r->applied_seq) < 0)
		r->applied_seq = 0;
	rfs_meta_unlock(r->meta);
	if (rc >= 0) {
		r->log_ok = 1;
	} else {
		/* Damage (a record that does not parse or chain) is a finding; a store that cannot
		 * be read is not: read the record the replay stopped at to tell which. */
		struct log_rec lr;
		int lrc = log_read(store, r->applied_seq + 1, &lr);
		free(lr.cs);
		if (lrc < 0 && lrc != -EINVAL && lrc != -ENOENT) {
			char key[64];
			log_key(r->applied_seq + 1, key, sizeof(key));
			store_fail(store, lrc, err, errlen, "read log record", key);
			rc = lrc;
			goto fail;
		}
		struct rfs_sync_stats ss;
		rfs_sync_get_stats(r->sync, &ss);
		snprintf(r->log_error, sizeof(r->log_error), "%s", ss.last_error[0] ? ss.last_error : strerror(-rc));
	}
	*out = r;
	return 0;
fail:
	rfs_replica_close(r);
	return rc;
}

void rfs_replica_close(struct rfs_replica *r)
{
	if (!r)
		return;
	rfs_sync_close(r->sync);
	rfs_meta_close(r->meta);
	if (r->dir[0])
		rfs_rm_rf(r->dir);
	free(r);
}

void rfs_replica_path_of(struct rfs_meta *m, uint64_t ino, char *buf, size_t len)
{
	if (ino == RFS_ROOT_INO) {
		snprintf(buf, len, "/");
		return;
	}
	char path[8192], name[1024];
	size_t pos = sizeof(path) - 1;
	path[pos] = 0;
	const char *prefix = "";
	uint64_t cur = ino;
	for (int depth = 0; cur != RFS_ROOT_INO; depth++) {
		uint64_t parent;
		if (depth > 4096 || rfs_meta_name_of(m, cur, &parent, name, sizeof(name)) < 0) {
			if (cur == ino) {
				snprintf(buf, len, "(unlinked inode %" PRIu64 ")", ino);
				return;
			}
			prefix = "(detached)";
			break;
		}
		size_t nl = strlen(name);
		if (nl + 1 > pos) {
			prefix = "...";
			break;
		}
		pos -= nl;
		memcpy(path + pos, name, nl);
		path[--pos] = '/';
		cur = parent;
	}
	snprintf(buf, len, "%s%s", prefix, path + pos);
}

/* ---------- reading packs ---------- */

struct pack_view {
	char id[PACK_ID_LEN + 1], key[64];
	uint64_t size;
	struct rfs_buf whole;       /* the whole object when fetched in one GET, else empty */
	struct rfs_pack_entry *ent; /* the trailer, sorted by hash; NULL if unreadable */
	uint32_t count;
};

static void pack_view_free(struct pack_view *pv)
{
	rfs_buf_free(&pv->whole);
	free(pv->ent);
	pv->ent = NULL;
	pv->count = 0;
}

static int cmp_entry(const void *a, const void *b)
{
	return memcmp(((const struct rfs_pack_entry *)a)->hash, ((const struct rfs_pack_entry *)b)->hash, RFS_HASH_LEN);
}

/* Loads pv's trailer (from whole, else from the tail of the object). 0, -EINVAL (damaged),
 * or the store's error. */
static int pack_read_trailer(struct rfs_store *st, struct pack_view *pv)
{
	int rc;
	if (pv->whole.data) {
		rc = rfs_pack_parse_trailer(pv->whole.data, pv->whole.len, &pv->ent, &pv->count);
	} else {
		uint64_t want = pv->size < TAIL_FIRST ? pv->size : TAIL_FIRST;
		rc = -EINVAL;
		for (int round = 0; round < 2; round++) {
			struct rfs_buf b = {0};
			rc = rfs_store_get(st, pv->key, pv->size - want, want, &b);
			if (rc < 0)
				return rc;
			if (b.len != want) {
				rfs_buf_free(&b);
				return -EINVAL; /* shorter than its size said: truncated under us */
			}
			rc = rfs_pack_parse_tail(b.data, b.len, pv->size, &pv->ent, &pv->count);
			if (rc == -EAGAIN && round == 0) {
				const uint8_t *f = b.data + b.len - RFS_PACK_FOOTER_SIZE;
				uint32_t n =
				    (uint32_t)f[0] | (uint32_t)f[1] << 8 | (uint32_t)f[2] << 16 | (uint32_t)f[3] << 24;
				want = RFS_PACK_FOOTER_SIZE + (uint64_t)n * RFS_PACK_ENTRY_SIZE;
				rfs_buf_free(&b);
				continue;
			}
			rfs_buf_free(&b);
			break;
		}
		if (rc == -EAGAIN)
			rc = -EINVAL;
	}
	if (rc == 0 && pv->count > 1)
		qsort(pv->ent, pv->count, sizeof(*pv->ent), cmp_entry);
	return rc;
}

static const struct rfs_pack_entry *pack_find(const struct pack_view *pv, const uint8_t *hash)
{
	struct rfs_pack_entry key;
	memcpy(key.hash, hash, RFS_HASH_LEN);
	return pv->ent ? bsearch(&key, pv->ent, pv->count, sizeof(key), cmp_entry) : NULL;
}

/* Fetches and verifies one block of pv. 0: intact; -EIO: corrupt (why says how); else the
 * store's error. */
static int pack_verify_block(struct rfs_store *st, struct pack_view *pv, const uint8_t *hash, uint64_t off,
			     uint32_t slen, uint32_t rlen, uint8_t codec, const uint64_t *xsum, const char **why)
{
	if (off > pv->size || slen > pv->size - off) {
		*why = "it lies beyond the end of the pack";
		return -EIO;
	}
	if (rlen > RFS_MAX_BLOCK_SIZE) {
		*why = "its recorded size is larger than any block";
		return -EIO;
	}
	struct rfs_buf b = {0};
	const uint8_t *p;
	int rc = 0;
	if (pv->whole.data) {
		p = pv->whole.data + off;
	} else {
		rc = rfs_store_get(st, pv->key, off, slen, &b);
		if (rc < 0)
			return rc;
		if (b.len != slen) {
			rfs_buf_free(&b);
			*why = "the pack is shorter than the metadata says";
			return -EIO;
		}
		p = b.data;
	}
	uint8_t *out = malloc(rlen ? rlen : 1);
	if (!out) {
		rfs_buf_free(&b);
		return -ENOMEM;
	}
	if (rfs_pack_decode_block(p, slen, codec, rlen, hash, NULL, out) < 0) { /* the SHA-256: a deep check */
		*why = "its bytes do not decode to its hash";
		rc = -EIO;
	} else if (xsum && rfs_xsum(out, rlen) != *xsum) {
		/* intact bytes, but reads check the row's xsum: they would all fail */
		*why = "its metadata row records a different checksum (xsum)";
		rc = -EIO;
	}
	free(out);
	rfs_buf_free(&b);
	return rc;
}

/* ---------- fsck ---------- */

enum lost_why { WHY_MISSING, WHY_CORRUPT, WHY_UNPLACED };
static const char *const why_text[] = {"missing", "corrupt", "no location"};

struct lost {
	uint8_t hash[RFS_HASH_LEN]; /* key */
	char pack[PACK_ID_LEN + 1];
	uint8_t live, why;
};

struct block_row {
	uint8_t hash[RFS_HASH_LEN];
	struct rfs_block_loc loc;
	int live;
};

struct fsck_ctx {
	struct rfs_store *store;
	struct rfs_replica *r;
	const struct rfs_fsck_opts *o;
	struct rfs_fsck_stats *st;
	char *err;
	size_t errlen;
	char cur[PACK_ID_LEN + 1]; /* the pack whose rows are being gathered */
	struct vec rows;           /* struct block_row of cur */
	struct vec named;          /* ids of packs the blocks table names */
	struct vec lost;           /* struct lost */
	struct vec listed;         /* struct listed: packs under data/ */
	int fatal;                 /* a store error: err is set */
};

struct listed {
	char id[PACK_ID_LEN + 1];
	uint64_t size;
};

static void problem(struct fsck_ctx *c, const char *pack, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void problem(struct fsck_ctx *c, const char *pack, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->st->problems++;
	note(c->o->cb, c->o->arg, RFS_NOTE_PROBLEM, pack, NULL, 0, "%s", msg);
}

static int add_lost(struct fsck_ctx *c, const uint8_t *hash, const char *pack, int live, enum lost_why why)
{
	struct lost l;
	memset(&l, 0, sizeof(l));
	memcpy(l.hash, hash, RFS_HASH_LEN);
	id_key(pack, l.pack);
	l.live = (uint8_t)live;
	l.why = (uint8_t)why;
	return vec_push(&c->lost, &l);
}

/* Checks the pack c->cur against the rows the metadata places in it. */
static int fsck_pack(struct fsck_ctx *c)
{
	struct rfs_fsck_stats *st = c->st;
	struct pack_view pv = {0};
	char hs[17];
	int rc = 0;
	size_t live = 0;
	for (size_t i = 0; i < c->rows.n; i++)
		live += ((struct block_row *)vec_at(&c->rows, i))->live != 0;
	st->packs++;
	st->blocks += c->rows.n;
	if ((rc = vec_push(&c->named, c->cur)) < 0)
		return rc;
	snprintf(pv.id, sizeof(pv.id), "%s", c->cur);
	rfs_pack_key(pv.id, pv.key, sizeof(pv.key));
	rc = rfs_store_head(c->store, pv.key, &pv.size);
	if (rc == -ENOENT) {
		st->packs_missing++;
		st->blocks_bad += c->rows.n;
		problem(c, pv.id, "pack %s is missing (%s): its %zu block(s) have no data, %zu in use by files", pv.id,
			pv.key, c->rows.n, live);
		rc = 0;
		for (size_t i = 0; i < c->rows.n && rc == 0; i++) {
			struct block_row *b = vec_at(&c->rows, i);
			rc = add_lost(c, b->hash, pv.id, b->live, WHY_MISSING);
		}
		return rc;
	}
	if (rc < 0) {
		store_fail(c->store, rc, c->err, c->errlen, "look up pack", pv.key);
		c->fatal = 1;
		return rc;
	}
	if (!c->o->quick && pv.size <= RFS_FSCK_WHOLE_PACK_MAX) {
		rc = rfs_store_get(c->store, pv.key, 0, RFS_GET_TO_END, &pv.whole);
		if (rc < 0) {
			store_fail(c->store, rc, c->err, c->errlen, "read pack", pv.key);
			c->fatal = 1;
			goto out;
		}
		pv.size = pv.whole.len;
	}
	int damaged = 0;
	rc = pack_read_trailer(c->store, &pv);
	if (rc == -EINVAL) {
		damaged = 1;
		problem(c, pv.id,
			"pack %s: its trailer is damaged or missing (%" PRIu64 " bytes); the metadata still"
			" says where its %zu block(s) are",
			pv.id, pv.size, c->rows.n);
	} else if (rc < 0) {
		store_fail(c->store, rc, c->err, c->errlen, "read the trailer of pack", pv.key);
		c->fatal = 1;
		goto out;
	}
	rc = 0;
	for (size_t i = 0; i < c->rows.n; i++) {
		struct block_row *b = vec_at(&c->rows, i);
		struct rfs_block_loc *l = &b->loc;
		hash_short(b->hash, hs);
		if (pv.ent) {
			const struct rfs_pack_entry *e = pack_find(&pv, b->hash);
			if (!e) {
				damaged = 1;
				problem(c, pv.id, "pack %s: block %s is not in the pack's trailer", pv.id, hs);
			} else if (e->offset != l->off || e->stored_len != l->slen || e->raw_len != l->rlen ||
				   e->codec != l->codec) {
				damaged = 1;
				problem(c, pv.id,
					"pack %s: block %s: the metadata says offset %" PRIu64 ", %u/%u bytes,"
					" codec %u; the trailer says offset %" PRIu64 ", %u/%u bytes, codec %u",
					pv.id, hs, l->off, l->slen, l->rlen, l->codec, e->offset, e->stored_len,
					e->raw_len, e->codec);
			}
		}
		if (c->o->quick)
			continue;
		const char *why = "";
		rc = pack_verify_block(c->store, &pv, b->hash, l->off, l->slen, l->rlen, l->codec,
				       rfs_block_loc_xsum(l), &why);
		if (rc == 0) {
			st->blocks_verified++;
			continue;
		}
		if (rc != -EIO) {
			store_fail(c->store, rc, c->err, c->errlen, "read pack", pv.key);
			c->fatal = 1;
			goto out;
		}
		damaged = 1;
		st->blocks_bad++;
		problem(c, pv.id, "pack %s: block %s at offset %" PRIu64 " is corrupt: %s%s", pv.id, hs, l->off, why,
			b->live ? "" : " (no file uses it)");
		rc = add_lost(c, b->hash, pv.id, b->live, WHY_CORRUPT);
		if (rc < 0)
			goto out;
	}
	if (damaged)
		st->packs_damaged++;
out:
	pack_view_free(&pv);
	return rc;
}

static int fsck_row(void *arg, const uint8_t hash[RFS_HASH_LEN], const struct rfs_block_loc *loc, int live)
{
	struct fsck_ctx *c = arg;
	if (c->rows.n && strcmp(c->cur, loc->pack)) {
		int rc = fsck_pack(c);
		c->rows.n = 0;
		if (rc < 0)
			return rc;
	}
	id_key(loc->pack, c->cur);
	struct block_row b;
	memcpy(b.hash, hash, RFS_HASH_LEN);
	b.loc = *loc;
	b.live = live;
	return vec_push(&c->rows, &b);
}

static int fsck_list_cb(void *arg, const char *key, uint64_t size)
{
	struct fsck_ctx *c = arg;
	c->st->objects++;
	const char *id = pack_id_of_key(key);
	if (!id) {
		note(c->o->cb, c->o->arg, RFS_NOTE_INFO, NULL, NULL, 0,
		     "object %s is not a pack; roamfs neither reads nor deletes it", key);
		return 0;
	}
	struct listed l;
	id_key(id, l.id);
	l.size = size;
	if (vec_push(&c->listed, &l) < 0)
		return -ENOMEM;
	if (!vec_find(&c->named, l.id, sizeof(l.id))) {
		c->st->orphans++;
		c->st->orphan_bytes += size;
		note(c->o->cb, c->o->arg, RFS_NOTE_INFO, l.id, NULL, 0,
		     "orphan pack %s (%" PRIu64
		     " bytes): no metadata names it; roamfs gc deletes it after the grace period",
		     l.id, size);
	}
	return 0;
}

struct unplaced_ctx {
	struct fsck_ctx *c;
	uint8_t last[RFS_HASH_LEN];
	int have;
	uint64_t rows;
	int rc;
};

static void unplaced_flush(struct unplaced_ctx *u)
{
	if (!u->have)
		return;
	char hex[2 * RFS_HASH_LEN + 1];
	rfs_hex(u->last, RFS_HASH_LEN, hex);
	u->c->st->blocks_unplaced++;
	problem(u->c, NULL,
		"block %s is named by %" PRIu64 " block map row(s) but has no location: no host can read it", hex,
		u->rows);
	if (u->rc == 0)
		u->rc = add_lost(u->c, u->last, "", 1, WHY_UNPLACED);
	u->have = 0;
	u->rows = 0;
}

static int unplaced_cb(void *arg, uint64_t ino, uint64_t idx, const uint8_t hash[RFS_HASH_LEN])
{
	(void)ino;
	(void)idx;
	struct unplaced_ctx *u = arg;
	if (u->have && memcmp(u->last, hash, RFS_HASH_LEN))
		unplaced_flush(u);
	memcpy(u->last, hash, RFS_HASH_LEN);
	u->have = 1;
	u->rows++;
	return u->rc;
}

struct lost_file {
	uint64_t ino; /* key (host order; sorted with a real comparator below) */
	uint32_t lost_idx;
};

struct files_ctx {
	struct vec *files;
	uint32_t lost_idx;
};

static int files_cb(void *arg, uint64_t ino, uint64_t idx, const uint8_t hash[RFS_HASH_LEN])
{
	(void)idx;
	(void)hash;
	struct files_ctx *f = arg;
	struct lost_file lf = {.ino = ino, .lost_idx = f->lost_idx};
	return vec_push(f->files, &lf);
}

static int cmp_lost_file(const void *a, const void *b)
{
	uint64_t x = ((const struct lost_file *)a)->ino, y = ((const struct lost_file *)b)->ino;
	return x < y ? -1 : x > y;
}

/* Reports each file that names a lost block. Caller holds the meta lock. */
static int fsck_report_files(struct fsck_ctx *c)
{
	struct vec files = {.size = sizeof(struct lost_file)};
	int rc = 0;
	for (size_t i = 0; i < c->lost.n && rc == 0; i++) {
		struct lost *l = vec_at(&c->lost, i);
		if (!l->live)
			continue;
		struct files_ctx f = {.files = &files, .lost_idx = (uint32_t)i};
		rc = rfs_meta_files_with_block(c->r->meta, l->hash, files_cb, &f);
	}
	if (rc < 0)
		goto out;
	if (files.n > 1)
		qsort(files.v, files.n, files.size, cmp_lost_file);
	for (size_t i = 0; i < files.n;) {
		struct lost_file *first = vec_at(&files, i);
		size_t j = i;
		while (j < files.n && ((struct lost_file *)vec_at(&files, j))->ino == first->ino)
			j++;
		struct lost *l = vec_at(&c->lost, first->lost_idx);
		char path[4096];
		rfs_replica_path_of(c->r->meta, first->ino, path, sizeof(path));
		c->st->files_lost++;
		if (l->pack[0])
			note(c->o->cb, c->o->arg, RFS_NOTE_LOST_FILE, l->pack, path, first->ino,
			     "%s (inode %" PRIu64 ") loses data: %zu of its blocks cannot be read (pack %s: %s%s)",
			     path, first->ino, j - i, l->pack, why_text[l->why], j - i > 1 ? ", ..." : "");
		else
			note(c->o->cb, c->o->arg, RFS_NOTE_LOST_FILE, NULL, path, first->ino,
			     "%s (inode %" PRIu64 ") loses data: %zu of its blocks cannot be read (%s)", path,
			     first->ino, j - i, why_text[l->why]);
		i = j;
	}
out:
	vec_free(&files);
	return rc;
}

struct copy {
	int have;
	char pack[PACK_ID_LEN + 1];
	struct rfs_pack_entry e;
};

/* --repair: finds intact copies of lost blocks in other packs, then re-points or removes
 * their rows in one published log record. */
static int fsck_repair(struct fsck_ctx *c)
{
	struct vec *lost = &c->lost; /* sorted by hash, unique */
	struct copy *found = calloc(lost->n ? lost->n : 1, sizeof(*found));
	if (!found)
		return -ENOMEM;
	size_t nfound = 0;
	int rc = 0;
	char hs[17];
	for (size_t p = 0; p < c->listed.n && nfound < lost->n; p++) {
		struct listed *ls = vec_at(&c->listed, p);
		struct pack_view pv = {0};
		snprintf(pv.id, sizeof(pv.id), "%s", ls->id);
		rfs_pack_key(pv.id, pv.key, sizeof(pv.key));
		pv.size = ls->size;
		rc = pack_read_trailer(c->store, &pv);
		if (rc == -EINVAL || rc == -ENOENT) {
			rc = 0;
			pack_view_free(&pv);
			continue;
		}
		if (rc < 0) {
			store_fail(c->store, rc, c->err, c->errlen, "read the trailer of pack", pv.key);
			c->fatal = 1;
			pack_view_free(&pv);
			break;
		}
		for (uint32_t i = 0; i < pv.count && rc == 0; i++) {
			struct rfs_pack_entry *e = &pv.ent[i];
			struct lost *l = vec_find(lost, e->hash, RFS_HASH_LEN);
			if (!l)
				continue;
			size_t li = (size_t)((uint8_t *)l - lost->v) / lost->size;
			if (found[li].have || !strcmp(l->pack, pv.id))
				continue; /* found already, or the damaged copy itself */
			const char *why;
			rc = pack_verify_block(c->store, &pv, e->hash, e->offset, e->stored_len, e->raw_len, e->codec,
					       NULL, &why);
			if (rc == -EIO) {
				rc = 0;
				continue;
			}
			if (rc < 0) {
				store_fail(c->store, rc, c->err, c->errlen, "read pack", pv.key);
				c->fatal = 1;
				break;
			}
			found[li].have = 1;
			snprintf(found[li].pack, sizeof(found[li].pack), "%s", pv.id);
			found[li].e = *e;
			nfound++;
		}
		pack_view_free(&pv);
		if (rc < 0)
			break;
	}
	if (rc < 0)
		goto out;
	rc = rfs_meta_begin(c->r->meta);
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < lost->n && rc == 0; i++) {
		struct lost *l = vec_at(lost, i);
		hash_short(l->hash, hs);
		if (found[i].have) {
			struct rfs_block_loc loc = {0}; /* no xsum: reads check its SHA-256 */
			snprintf(loc.pack, sizeof(loc.pack), "%s", found[i].pack);
			loc.off = found[i].e.offset;
			loc.slen = found[i].e.stored_len;
			loc.rlen = found[i].e.raw_len;
			loc.codec = found[i].e.codec;
			rc = rfs_meta_block_del(c->r->meta, l->hash);
			if (rc == -ENOENT)
				rc = 0;
			if (rc == 0)
				rc = rfs_meta_block_put(c->r->meta, l->hash, &loc);
			if (rc == 0) {
				c->st->repaired++;
				note(c->o->cb, c->o->arg, RFS_NOTE_REPAIR, found[i].pack, NULL, 0,
				     "block %s (%s%s%s): now read from its intact copy in pack %s", hs,
				     why_text[l->why], l->pack[0] ? " in pack " : "", l->pack, found[i].pack);
			}
		} else if (l->why != WHY_UNPLACED) {
			rc = rfs_meta_block_del(c->r->meta, l->hash);
			if (rc == -ENOENT)
				rc = 0;
			if (rc == 0) {
				c->st->repair_removed++;
				note(c->o->cb, c->o->arg, RFS_NOTE_REPAIR, l->pack, NULL, 0,
				     "block %s: removed its record (its data in pack %s is %s and no copy was found);"
				     " writing the same bytes again stores them anew%s",
				     hs, l->pack, why_text[l->why],
				     l->live ? " and makes the files above readable" : "");
			}
		}
	}
	if (rc < 0) {
		rfs_meta_rollback(c->r->meta);
		snprintf(c->err, c->errlen, "cannot record the repair in the replica: %s", strerror(-rc));
		c->fatal = 1;
		goto out;
	}
	rc = rfs_meta_commit(c->r->meta);
	if (rc == 0 && (c->st->repaired || c->st->repair_removed))
		rc = rfs_sync_commit_now(c->r->sync);
	if (rc < 0) {
		snprintf(c->err, c->errlen, "cannot publish the repair to the store's log: %s (nothing was changed)",
			 strerror(-rc));
		c->fatal = 1;
	}
out:
	free(found);
	return rc;
}

/* The log beyond what the replay applied: records after a gap or after a bad record. */
struct log_list_ctx {
	int64_t applied, beyond, first_beyond;
	uint64_t others;
};

static int log_list_cb(void *arg, const char *key, uint64_t size)
{
	(void)size;
	struct log_list_ctx *l = arg;
	const char *p = key + 4;
	char *end;
	long long seq = strtoll(p, &end, 10);
	if (strlen(p) != 20 || *end || seq <= 0) {
		l->others++;
		return 0;
	}
	if (seq > l->applied) {
		if (!l->beyond || seq < l->first_beyond)
			l->first_beyond = seq;
		l->beyond++;
	}
	return 0;
}

int rfs_fsck(struct rfs_store *store, const struct rfs_fsck_opts *o, struct rfs_fsck_stats *st, char *err,
	     size_t errlen)
{
	memset(st, 0, sizeof(*st));
	struct fsck_ctx c = {.store = store, .o = o, .st = st, .err = err, .errlen = errlen};
	c.rows.size = sizeof(struct block_row);
	c.named.size = PACK_ID_LEN + 1;
	c.lost.size = sizeof(struct lost);
	c.listed.size = sizeof(struct listed);
	int rc = rfs_replica_open(store, "fsck", o->work_dir, &c.r, err, errlen);
	if (rc < 0)
		return rc;
	st->log_records = c.r->applied_seq;

	/* 1. the log */
	if (!c.r->log_ok)
		problem(&c, NULL, "log: %s; what follows checks the state as of log/%020" PRId64, c.r->log_error,
			c.r->applied_seq);
	struct log_list_ctx ll = {.applied = c.r->applied_seq};
	rc = rfs_store_list(store, "log/", log_list_cb, &ll);
	if (rc < 0) {
		store_fail(store, rc, err, errlen, "list", "log/");
		goto out;
	}
	if (c.r->log_ok && ll.beyond)
		problem(&c, NULL,
			"log: %" PRId64 " record(s) from log/%020" PRId64 " on lie after a gap at log/%020" PRId64
			": no host will ever apply them",
			ll.beyond, ll.first_beyond, c.r->applied_seq + 1);
	else if (!c.r->log_ok && ll.beyond > 1)
		note(o->cb, o->arg, RFS_NOTE_INFO, NULL, NULL, 0,
		     "log: %" PRId64 " record(s) after the bad one are not applied by any host", ll.beyond - 1);

	/* 2. packs named by the blocks table */
	rfs_meta_lock(c.r->meta);
	rc = rfs_meta_index_block_refs(c.r->meta);
	if (rc == 0)
		rc = rfs_meta_blocks_each(c.r->meta, fsck_row, &c);
	if (rc == 0 && c.rows.n)
		rc = fsck_pack(&c);
	rfs_meta_unlock(c.r->meta);
	if (rc < 0) {
		if (!c.fatal)
			snprintf(err, errlen, "cannot walk the blocks table of the replica: %s", strerror(-rc));
		goto out;
	}
	vec_sort(&c.named, c.named.size, 1);

	/* 3. orphans under data/ */
	rc = rfs_store_list(store, "data/", fsck_list_cb, &c);
	if (rc < 0) {
		if (rc != -ENOMEM)
			store_fail(store, rc, err, errlen, "list", "data/");
		goto out;
	}

	/* 4. block map rows without a block, and the files that lose data */
	rfs_meta_lock(c.r->meta);
	struct unplaced_ctx u = {.c = &c};
	rc = rfs_meta_bmap_unplaced(c.r->meta, unplaced_cb, &u);
	if (rc >= 0) {
		unplaced_flush(&u);
		rc = u.rc;
	}
	if (rc == 0) {
		vec_sort(&c.lost, RFS_HASH_LEN, 1);
		rc = fsck_report_files(&c);
	}
	rfs_meta_unlock(c.r->meta);
	if (rc < 0) {
		snprintf(err, errlen, "cannot query the replica: %s", strerror(-rc));
		goto out;
	}

	/* 5. repair */
	if (o->repair && c.lost.n && c.r->log_ok)
		rc = fsck_repair(&c);
	else if (o->repair && c.lost.n)
		note(o->cb, o->arg, RFS_NOTE_INFO, NULL, NULL, 0,
		     "not repairing: the log is damaged, and a repair is itself a log record");
out:
	vec_free(&c.rows);
	vec_free(&c.named);
	vec_free(&c.lost);
	vec_free(&c.listed);
	rfs_replica_close(c.r);
	return rc < 0 ? rc : 0;
}

/* ---------- gc ---------- */

struct pinfo {
	char id[PACK_ID_LEN + 1]; /* key */
	uint64_t rows, live;
};

struct gc_obj {
	char id[PACK_ID_LEN + 1];
	uint64_t size;
	enum { OBJ_LIVE, OBJ_YOUNG, OBJ_RECENT, OBJ_RETIRE, OBJ_DELETE, OBJ_HEALED } state;
};

struct gc_ctx {
	struct rfs_store *store;
	struct rfs_replica *r;
	const struct rfs_gc_opts *o;
	struct rfs_gc_stats *st;
	char *err;
	size_t errlen;
	struct vec packs;    /* struct pinfo, sorted by id */
	struct vec recent;   /* pack ids named by records within the grace period */
	struct vec rhashes;  /* hashes named by those records */
	struct vec objs;     /* struct gc_obj: packs under data/ */
	struct vec unplaced; /* hashes named by bmap without a blocks row */
	struct vec heals;    /* struct heal */
	uint64_t other;
};

struct heal {
	uint8_t hash[RFS_HASH_LEN];
	struct rfs_block_loc loc;
};

static int gc_row(void *arg, const uint8_t hash[RFS_HASH_LEN], const struct rfs_block_loc *loc, int live)
{
	(void)hash;
	struct gc_ctx *g = arg;
	struct pinfo *last = g->packs.n ? vec_at(&g->packs, g->packs.n - 1) : NULL;
	if (!last || strcmp(last->id, loc->pack)) {
		struct pinfo p = {.rows = 0};
		id_key(loc->pack, p.id);
		int rc = vec_push(&g->packs, &p);
		if (rc < 0)
			return rc;
		last = vec_at(&g->packs, g->packs.n - 1);
	}
	last->rows++;
	last->live += live != 0;
	return 0;
}

static void gc_ref_cb(void *arg, const uint8_t *hash, const char *pack)
{
	struct gc_ctx *g = arg;
	if (pack && valid_pack_id(pack)) {
		char k[PACK_ID_LEN + 1];
		id_key(pack, k);
		vec_push(&g->recent, k);
	}
	if (hash)
		vec_push(&g->rhashes, hash);
}

static int gc_list_cb(void *arg, const char *key, uint64_t size)
{
	struct gc_ctx *g = arg;
	const char *id = pack_id_of_key(key);
	if (!id) {
		g->other++;
		return 0;
	}
	struct gc_obj ob = {.size = size};
	id_key(id, ob.id);
	return vec_push(&g->objs, &ob);
}

static int gc_unplaced_cb(void *arg, uint64_t ino, uint64_t idx, const uint8_t hash[RFS_HASH_LEN])
{
	(void)ino;
	(void)idx;
	struct gc_ctx *g = arg;
	return vec_push(&g->unplaced, hash);
}

/* Packs named by log records newer than cutoff_ns: walks the log back from its end. */
static int gc_recent_refs(struct gc_ctx *g, int64_t cutoff_ns)
{
	g->recent.n = g->rhashes.n = 0;
	for (int64_t seq = g->r->applied_seq; seq >= 1; seq--) {
		struct log_rec lr;
		int rc = log_read(g->store, seq, &lr);
		if (rc < 0) {
			char key[64];
			log_key(seq, key, sizeof(key));
			if (rc == -EINVAL || rc == -ENOENT)
				snprintf(g->err, g->errlen, "log record %s changed while gc read it; run gc again",
					 key);
			else
				store_fail(g->store, rc, g->err, g->errlen, "read log record", key);
			return rc;
		}
		if (lr.time_ns <= cutoff_ns) {
			free(lr.cs);
			break;
		}
		rc = rfs_meta_changeset_block_refs(lr.cs, lr.cs_len, gc_ref_cb, g);
		free(lr.cs);
		if (rc < 0) {
			snprintf(g->err, g->errlen, "log record %" PRId64 " holds a changeset gc cannot read", seq);
			return rc;
		}
	}
	/* a hash a recent record names protects the pack its blocks row points to */
	rfs_meta_lock(g->r->meta);
	for (size_t i = 0; i < g->rhashes.n; i++) {
		struct rfs_block_loc loc;
		if (rfs_meta_block_get(g->r->meta, vec_at(&g->rhashes, i), &loc) == 0 && valid_pack_id(loc.pack)) {
			char k[PACK_ID_LEN + 1];
			id_key(loc.pack, k);
			if (vec_push(&g->recent, k) < 0)
				break;
		}
	}
	rfs_meta_unlock(g->r->meta);
	vec_sort(&g->recent, PACK_ID_LEN + 1, 1);
	return 0;
}

/* For a pack about to go: does a file name one of its blocks that lost its blocks row (a
 * host deduplicated into it while gc retired it)? Then plan to restore the row. */
static int gc_check_heal(struct gc_ctx *g, struct gc_obj *ob)
{
	if (!g->unplaced.n)
		return 0;
	struct pack_view pv = {0};
	snprintf(pv.id, sizeof(pv.id), "%s", ob->id);
	rfs_pack_key(pv.id, pv.key, sizeof(pv.key));
	pv.size = ob->size;
	int rc = pack_read_trailer(g->store, &pv);
	if (rc == -EINVAL) {
		pack_view_free(&pv);
		return 0;
	}
	if (rc < 0) {
		store_fail(g->store, rc, g->err, g->errlen, "read the trailer of pack", pv.key);
		pack_view_free(&pv);
		return rc;
	}
	for (uint32_t i = 0; i < pv.count; i++) {
		struct rfs_pack_entry *e = &pv.ent[i];
		if (!vec_find(&g->unplaced, e->hash, RFS_HASH_LEN))
			continue;
		const char *why;
		rc = pack_verify_block(g->store, &pv, e->hash, e->offset, e->stored_len, e->raw_len, e->codec, NULL,
				       &why);
		if (rc == -EIO) {
			rc = 0;
			continue;
		}
		if (rc < 0) {
			store_fail(g->store, rc, g->err, g->errlen, "read pack", pv.key);
			break;
		}
		struct heal h = {0}; /* no xsum: reads check its SHA-256 */
		memcpy(h.hash, e->hash, RFS_HASH_LEN);
		snprintf(h.loc.pack, sizeof(h.loc.pack), "%s", pv.id);
		h.loc.off = e->offset;
		h.loc.slen = e->stored_len;
		h.loc.rlen = e->raw_len;
		h.loc.codec = e->codec;
		if ((rc = vec_push(&g->heals, &h)) < 0)
			break;
		ob->state = OBJ_HEALED;
	}
	pack_view_free(&pv);
	return rc;
}

/* Decides the fate of every pack under data/ as of now_ms. quiet: no notes for kept packs. */
static int gc_plan(struct gc_ctx *g, int64_t now_ms, int quiet)
{
	const struct rfs_gc_opts *o = g->o;
	int64_t cutoff_ms = now_ms - o->grace_s * 1000;
	g->packs.n = g->objs.n = g->unplaced.n = g->heals.n = 0;
	g->other = 0;
	rfs_meta_lock(g->r->meta);
	int rc = rfs_meta_blocks_each(g->r->meta, gc_row, g);
	if (rc == 0)
		rc = rfs_meta_bmap_unplaced(g->r->meta, gc_unplaced_cb, g);
	rfs_meta_unlock(g->r->meta);
	if (rc < 0) {
		snprintf(g->err, g->errlen, "cannot query the replica: %s", strerror(-rc));
		return rc;
	}
	vec_sort(&g->packs, PACK_ID_LEN + 1, 0); /* SQLite's order is already this one */
	vec_sort(&g->unplaced, RFS_HASH_LEN, 1);
	rc = gc_recent_refs(g, cutoff_ms * 1000000);
	if (rc < 0)
		return rc;
	rc = rfs_store_list(g->store, "data/", gc_list_cb, g);
	if (rc < 0) {
		store_fail(g->store, rc, g->err, g->errlen, "list", "data/");
		return rc;
	}
	vec_sort(&g->objs, PACK_ID_LEN + 1, 1); /* the listing's order already, but retire_row relies on it */
	for (size_t i = 0; i < g->objs.n; i++) {
		struct gc_obj *ob = vec_at(&g->objs, i);
		struct pinfo *p = vec_find(&g->packs, ob->id, PACK_ID_LEN + 1);
		int64_t t = rfs_pack_id_time_ms(ob->id);
		if (t > now_ms + 86400000LL)
			t = -1; /* an id from before ids carried a time: no age known */
		if (p && p->live) {
			ob->state = OBJ_LIVE;
		} else if (t >= 0 && t > cutoff_ms) {
			ob->state = OBJ_YOUNG;
			if (!quiet)
				note(o->cb, o->arg, RFS_NOTE_INFO, ob->id, NULL, 0,
				     "keep pack %s: no live block, but created within the grace period", ob->id);
		} else if (vec_find(&g->recent, ob->id, PACK_ID_LEN + 1)) {
			ob->state = OBJ_RECENT;
			if (!quiet)
				note(o->cb, o->arg, RFS_NOTE_INFO, ob->id, NULL, 0,
				     "keep pack %s: no live block, but a log record within the grace period names it",
				     ob->id);
		} else {
			ob->state = p && p->rows ? OBJ_RETIRE : OBJ_DELETE;
			rc = gc_check_heal(g, ob);
			if (rc < 0)
				return rc;
			if (ob->state == OBJ_HEALED)
				note(o->cb, o->arg, RFS_NOTE_INFO, ob->id, NULL, 0,
				     "keep pack %s: a file names a block in it whose record was gone; %s", ob->id,
				     o->dry_run ? "would restore it" : "restoring it");
		}
	}
	return 0;
}

struct retire_ctx {
	struct gc_ctx *g;
	struct vec hashes; /* rows to delete */
};

static int retire_row(void *arg, const uint8_t hash[RFS_HASH_LEN], const struct rfs_block_loc *loc, int live)
{
	struct retire_ctx *rc = arg;
	if (live)
		return 0;
	/* only the rows of packs gc planned to retire (objs is sorted by id) */
	char k[PACK_ID_LEN + 1];
	id_key(loc->pack, k);
	struct gc_obj *ob = vec_find(&rc->g->objs, k, sizeof(k));
	return ob && ob->state == OBJ_RETIRE ? vec_push(&rc->hashes, hash) : 0;
}

/* Publishes one log record that removes the rows of retired packs and restores healed rows. */
static int gc_publish(struct gc_ctx *g, uint64_t *retired_rows)
{
	struct retire_ctx rc_ctx = {.g = g};
	rc_ctx.hashes.size = RFS_HASH_LEN;
	*retired_rows = 0;
	rfs_meta_lock(g->r->meta);
	int rc = rfs_meta_blocks_each(g->r->meta, retire_row, &rc_ctx);
	rfs_meta_unlock(g->r->meta);
	if (rc < 0)
		goto out;
	if (!rc_ctx.hashes.n && !g->heals.n)
		goto out;
	rc = rfs_meta_begin(g->r->meta);
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < rc_ctx.hashes.n && rc == 0; i++) {
		rc = rfs_meta_block_del(g->r->meta, vec_at(&rc_ctx.hashes, i));
		if (rc == -ENOENT)
			rc = 0;
	}
	for (size_t i = 0; i < g->heals.n && rc == 0; i++) {
		struct heal *h = vec_at(&g->heals, i);
		rc = rfs_meta_block_put(g->r->meta, h->hash, &h->loc);
	}
	if (rc < 0) {
		rfs_meta_rollback(g->r->meta);
		goto out;
	}
	rc = rfs_meta_commit(g->r->meta);
	if (rc == 0)
		rc = rfs_sync_commit_now(g->r->sync);
	if (rc == 0)
		*retired_rows = rc_ctx.hashes.n;
out:
	if (rc < 0)
		snprintf(g->err, g->errlen, "cannot publish gc's log record (retired blocks): %s; nothing was deleted",
			 strerror(-rc));
	vec_free(&rc_ctx.hashes);
	return rc;
}

static int gc_delete(struct gc_ctx *g, struct gc_obj *ob)
{
	char key[64];
	rfs_pack_key(ob->id, key, sizeof(key));
	if (g->o->dry_run) {
		note(g->o->cb, g->o->arg, RFS_NOTE_INFO, ob->id, NULL, 0, "would delete pack %s (%" PRIu64 " bytes)",
		     ob->id, ob->size);
	} else {
		int rc = rfs_store_delete(g->store, key);
		if (rc < 0 && rc != -ENOENT) {
			char cause[256];
			rfs_store_error(g->store, cause, sizeof(cause));
			note(g->o->cb, g->o->arg, RFS_NOTE_PROBLEM, ob->id, NULL, 0, "cannot delete pack %s: %s", key,
			     cause[0] ? cause : strerror(-rc));
			g->st->failed++;
			return 0;
		}
		note(g->o->cb, g->o->arg, RFS_NOTE_INFO, ob->id, NULL, 0, "deleted pack %s (%" PRIu64 " bytes)", ob->id,
		     ob->size);
	}
	g->st->deleted++;
	g->st->deleted_bytes += ob->size;
	return 0;
}

int rfs_gc(struct rfs_store *store, const struct rfs_gc_opts *o, struct rfs_gc_stats *st, char *err, size_t errlen)
{
	memset(st, 0, sizeof(*st));
	struct gc_ctx g = {.store = store, .o = o, .st = st, .err = err, .errlen = errlen};
	g.packs.size = sizeof(struct pinfo);
	g.recent.size = PACK_ID_LEN + 1;
	g.rhashes.size = RFS_HASH_LEN;
	g.objs.size = sizeof(struct gc_obj);
	g.unplaced.size = RFS_HASH_LEN;
	g.heals.size = sizeof(struct heal);
	if (o->grace_s < 0) {
		snprintf(err, errlen, "invalid grace period %" PRId64 " s: give 0 or more seconds", o->grace_s);
		return -EINVAL;
	}
	int rc = rfs_replica_open(store, "gc", o->work_dir, &g.r, err, errlen);
	if (rc < 0)
		return rc;
	st->log_records = g.r->applied_seq;
	if (!g.r->log_ok) {
		snprintf(err, errlen,
			 "the log is damaged (%s); gc deletes nothing it cannot account for: run 'roamfs fsck'",
			 g.r->log_error);
		rc = -EIO;
		goto out;
	}
	rfs_meta_lock(g.r->meta);
	rc = rfs_meta_index_block_refs(g.r->meta);
	rfs_meta_unlock(g.r->meta);
	if (rc < 0) {
		snprintf(err, errlen, "cannot index the replica: %s", strerror(-rc));
		goto out;
	}
	int64_t now_ms = o->now_ms ? o->now_ms : rfs_now_ns() / 1000000;
	for (int pass = 0; pass < 2; pass++) {
		rc = gc_plan(&g, now_ms, pass > 0);
		if (rc < 0)
			goto out;
		uint64_t retire = 0;
		for (size_t i = 0; i < g.objs.n; i++) {
			struct gc_obj *ob = vec_at(&g.objs, i);
			if (pass == 0) {
				st->objects++;
				st->bytes += ob->size;
				if (ob->state == OBJ_LIVE) {
					st->live++;
					st->live_bytes += ob->size;
				}
			}
			st->kept_young += pass == 0 && ob->state == OBJ_YOUNG;
			st->kept_recent += pass == 0 && ob->state == OBJ_RECENT;
			retire += ob->state == OBJ_RETIRE;
		}
		if (pass == 0)
			st->other = g.other;
		/* packs with no blocks rows go now */
		for (size_t i = 0; i < g.objs.n; i++) {
			struct gc_obj *ob = vec_at(&g.objs, i);
			if (ob->state == OBJ_DELETE)
				gc_delete(&g, ob);
		}
		st->healed += g.heals.n;
		if (!retire && !g.heals.n)
			break;
		/* packs with dead rows: retire the rows first (a log record every host applies,
		 * so none deduplicates into them any more); the pack itself goes once that record
		 * is older than the grace period: at once with grace 0, else in a later run. */
		int deletable_now =
		    o->now_ms ? rfs_now_ns() / 1000000 <= o->now_ms - o->grace_s * 1000 : o->grace_s == 0;
		for (size_t i = 0; i < g.objs.n; i++) {
			struct gc_obj *ob = vec_at(&g.objs, i);
			if (ob->state != OBJ_RETIRE)
				continue;
			st->retired_packs++;
			if (o->dry_run && deletable_now)
				gc_delete(&g, ob);
			else
				note(o->cb, o->arg, RFS_NOTE_INFO, ob->id, NULL, 0,
				     "%s pack %s (%" PRIu64 " bytes): no file uses its blocks; %s",
				     o->dry_run ? "would retire" : "retired", ob->id, ob->size,
				     deletable_now ? "deleting it now" : "a gc run after the grace period deletes it");
		}
		if (o->dry_run) {
			/* count the rows a real run would retire */
			struct retire_ctx rc_ctx = {.g = &g};
			rc_ctx.hashes.size = RFS_HASH_LEN;
			rfs_meta_lock(g.r->meta);
			rfs_meta_blocks_each(g.r->meta, retire_row, &rc_ctx);
			rfs_meta_unlock(g.r->meta);
			st->retired_blocks += rc_ctx.hashes.n;
			vec_free(&rc_ctx.hashes);
			break;
		}
		uint64_t rows = 0;
		rc = gc_publish(&g, &rows);
		if (rc < 0)
			goto out;
		st->retired_blocks += rows;
		if (!deletable_now)
			break;
		/* pass 2: the retired packs, as of a clock past their retirement */
		if (!o->now_ms)
			now_ms = rfs_now_ns() / 1000000 + 1; /* + 1: the record's ns time must not round into now */
	}
	rc = 0;
out:
	vec_free(&g.packs);
	vec_free(&g.recent);
	vec_free(&g.rhashes);
	vec_free(&g.objs);
	vec_free(&g.unplaced);
	vec_free(&g.heals);
	rfs_replica_close(g.r);
	return rc;
}
