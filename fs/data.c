/*
 * data.c - the data path of the filesystem core: dirty blocks in staging arenas, block I/O,
 * the flush, truncate and open files (see core.h for the contract and the lock order,
 * core_int.h for what it shares with core.c and namespace.c).
 *
 * Dirty block state machine (per block of a file, protected by node->lock):
 *
 *   CLEAN --write--> DIRTY(gen g) --write--> DIRTY(g+1) ...
 *   DIRTY(g) --flush seals gen g, stores the pack, writes the block map--> CLEAN if the gen is
 *   still g, else stays DIRTY (written again during the upload; flushed next round).
 *
 * A DIRTY block's bytes live in a region of the staging arenas (CACHE/staging/arena.<a>, see
 * "staging arenas" below) and only there until the flush commits, so the region is freed
 * only after the metadata naming the stored block is in the DB (and that metadata only after
 * the pack is in the store: invariant C1). A daemon killed at any point finds the regions at
 * the next mount and flushes them again.
 *
 * A flush's packs: OPEN (being filled) --full--> UPLOADING (its own thread, up to
 * RFS_UPLOADS_IN_FLIGHT) --joined--> STORED or FAILED. The block map is written only when
 * every pack of the flush is STORED; one FAILED pack fails the whole flush (all its blocks
 * stay DIRTY, the reason goes to status), and nothing is committed.
 */
#include "fs/core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backends/backend.h"
#include "fs/cache.h"
#include "fs/core_int.h"
#include "fs/format.h"
#include "fs/log.h"
#include "fs/meta.h"
#include "fs/pack.h"
#include "fs/prefetch.h"
#include "fs/ranges.h"
#include "fs/wincache.h"
#include "sync/commit.h"

/* ---------- dirty blocks and the staging arenas ---------- */

static struct dblock *dblock_find(struct node *n, uint64_t idx)
{
	for (size_t i = 0; i < n->nblocks; i++)
		if (n->blocks[i].idx == idx)
			return &n->blocks[i];
	return NULL;
}

/* Staging arenas. A dirty block's bytes live in a region of one of RFS_ARENAS sparse files,
 * CACHE/staging/arena.<a>: region r of arena a is slot r*RFS_ARENAS+a, at r*slot_stride, and
 * holds a header of RFS_STAGE_HDR bytes (magic, ino, idx, staged length, time of the last
 * write, its sequence number, an XXH3 of those) followed by the block. Every write puts its
 * data there and then rewrites the header (see "Crash order"). A retired region is punched
 * out (a hole reads as zeros: an invalid header, i.e. free) and its slot reused. Bytes past
 * a block's staged length are never read (reads clamp to len), and a write that leaves a gap
 * past it zeroes the gap first.
 *
 * Crash order. A write may land partly when the daemon is killed in the middle of it (the
 * kernel stops a buffered write between pages). So the data goes first and the header, which
 * makes it count, second: a header never vouches for bytes that are not there (a block's
 * stored content being copied in, or a region that still holds an earlier block's bytes
 * because the file system cannot punch holes, fs->no_punch). A header is 64 bytes in one
 * page and carries its own check. A shrinking truncate writes the new length before zeroing
 * the tail; a growing one zeroes first. A new block is attached to its node only once its
 * first write is in place, so a failed write never leaves an empty block that the flush
 * would store over the old one. A region whose header cannot be cleared is never freed: its
 * block stays dirty (flushed again, the same content) rather than coming back at the next
 * mount.
 *
 * Earlier versions kept a file per dirty block (<ino>.<idx>, recycled through free.N by
 * renames, opened for every write): creating, renaming, opening and closing them was a sixth
 * of the daemon's CPU copying the Python stdlib, and creating files on ext4 after many
 * deletions costs ~0.2 ms each in its search for a reusable inode. An arena costs no
 * directory operation at all; a handful of files spreads the inode lock writes take. */

struct slot_hdr {
	uint64_t ino, idx, len;
	int64_t mtime_ns;
	uint64_t seq; /* fs->stage_seq at the write: orders it against truncates (do_truncate) */
};

static void slot_header(uint8_t h[RFS_STAGE_HDR], const struct slot_hdr *sh)
{
	memset(h, 0, RFS_STAGE_HDR);
	memcpy(h, "RFSSTG2", 8);
	rfs_put_le64(h + 8, sh->ino);
	rfs_put_le64(h + 16, sh->idx);
	rfs_put_le64(h + 24, sh->len);
	rfs_put_le64(h + 32, (uint64_t)sh->mtime_ns);
	rfs_put_le64(h + 40, sh->seq);
	rfs_put_le64(h + 48, rfs_xsum(h, 48));
}

/* Decodes a region's header. Returns 0, or -EINVAL for a free region (a hole reads as zeros)
 * or a torn one. */
static int slot_header_parse(const uint8_t h[RFS_STAGE_HDR], uint64_t block_size, struct slot_hdr *sh)
{
	if (memcmp(h, "RFSSTG2", 8) || rfs_get_le64(h + 48) != rfs_xsum(h, 48))
		return -EINVAL;
	sh->ino = rfs_get_le64(h + 8);
	sh->idx = rfs_get_le64(h + 16);
	sh->len = rfs_get_le64(h + 24);
	sh->mtime_ns = (int64_t)rfs_get_le64(h + 32);
	sh->seq = rfs_get_le64(h + 40);
	return sh->len > block_size ? -EINVAL : 0;
}

/* The arena fd of a slot, and where its region starts. */
static int slot_where(const struct rfs_fs *fs, uint64_t slot, off_t *base)
{
	*base = (off_t)(slot / RFS_ARENAS * fs->slot_stride);
	return fs->arena_fd[slot % RFS_ARENAS];
}

/* Makes [from, to) of a slot's data read as zeros: a hole, or written zeros where the file
 * system cannot punch. */
static int slot_zero(struct rfs_fs *fs, uint64_t slot, uint64_t from, uint64_t to)
{
	off_t base;
	int fd = slot_where(fs, slot, &base);
	if (to <= from)
		return 0;
	off_t at = base + RFS_STAGE_HDR + (off_t)from;
	if (!__atomic_load_n(&fs->no_punch, __ATOMIC_ACQUIRE) &&
	    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at, (off_t)(to - from)) == 0)
		return 0;
	if (errno == EOPNOTSUPP)
		__atomic_store_n(&fs->no_punch, 1, __ATOMIC_RELEASE);
	static const uint8_t zeros[65536];
	while (from < to) {
		size_t n = to - from < sizeof(zeros) ? (size_t)(to - from) : sizeof(zeros);
		ssize_t w = rfs_pwrite_full(fd, zeros, n, at);
		if (w < 0)
			return (int)w;
		from += n;
		at += (off_t)n;
	}
	return 0;
}

/* A free region for a new dirty block of length 0. */
static uint64_t slot_take(struct rfs_fs *fs)
{
	pthread_mutex_lock(&fs->free_lock);
	uint64_t slot = fs->nfree ? fs->free_slots[--fs->nfree] : fs->slot_next++;
	pthread_mutex_unlock(&fs->free_lock);
	return slot;
}

static void slot_put_free(struct rfs_fs *fs, uint64_t slot)
{
	pthread_mutex_lock(&fs->free_lock);
	if (fs->nfree == fs->capfree) {
		size_t nc = fs->capfree ? fs->capfree * 2 : 256;
		uint64_t *nf = realloc(fs->free_slots, nc * sizeof(*nf));
		if (!nf) {
			pthread_mutex_unlock(&fs->free_lock);
			return; /* the region stays unused: only address space in a sparse file */
		}
		fs->free_slots = nf;
		fs->capfree = nc;
	}
	fs->free_slots[fs->nfree++] = slot;
	pthread_mutex_unlock(&fs->free_lock);
}

/* Frees d's region (its data is stored or no longer wanted): punched out, or at least its
 * header cleared so that a recovery does not take it for staged data. Returns 0, or -errno
 * when the header could not be cleared: the region is still d's and must stay in use. */
static int slot_release(struct rfs_fs *fs, const struct dblock *d)
{
	off_t base;
	int fd = slot_where(fs, d->slot, &base);
	if (__atomic_load_n(&fs->no_punch, __ATOMIC_ACQUIRE) ||
	    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, base, (off_t)fs->slot_stride) < 0) {
		if (errno == EOPNOTSUPP)
			__atomic_store_n(&fs->no_punch, 1, __ATOMIC_RELEASE);
		static const uint8_t zeros[RFS_STAGE_HDR];
		ssize_t w = rfs_pwrite_full(fd, zeros, sizeof(zeros), base);
		if (w < 0) {
			RFS_LOG(LOG_ERR, "cannot clear staging region %" PRIu64 " in '%s': %s; its block stays staged",
				d->slot, fs->staging_dir, strerror((int)-w));
			return (int)w;
		}
	}
	slot_put_free(fs, d->slot);
	return 0;
}

/* Writes len bytes at boff into block d of inode ino, and the header with the new length. */
static int slot_write(struct rfs_fs *fs, uint64_t ino, struct dblock *d, const void *data, size_t len, uint64_t boff)
{
	off_t base;
	int fd = slot_where(fs, d->slot, &base);
	int rc = 0;
	if (boff > d->len && (rc = slot_zero(fs, d->slot, d->len, boff)) < 0)
		return rc; /* the gap held someone else's bytes */
	uint64_t nlen = boff + len > d->len ? boff + len : d->len;
	struct slot_hdr sh = {ino, d->idx, nlen, rfs_now_ns(), __atomic_add_fetch(&fs->stage_seq, 1, __ATOMIC_RELAXED)};
	uint8_t h[RFS_STAGE_HDR];
	slot_header(h, &sh);
	/* the data first, then the header that makes it count (see "Crash order") */
	ssize_t w = len ? rfs_pwrite_full(fd, data, len, base + RFS_STAGE_HDR + (off_t)boff) : 0;
	if (w < 0)
		return (int)w;
	w = rfs_pwrite_full(fd, h, sizeof(h), base);
	if (w < 0)
		return (int)w;
	d->len = nlen;
	return 0;
}

/* Sets block d's staged length (truncate): bytes past it now read as zeros. */
static int slot_set_len(struct rfs_fs *fs, uint64_t ino, struct dblock *d, uint64_t len)
{
	if (len > d->len)
		return slot_write(fs, ino, d, NULL, 0, len); /* zeroes the gap, then the header */
	uint64_t old = d->len;
	d->len = len; /* the new length first: bytes past it are never read */
	int rc = slot_write(fs, ino, d, NULL, 0, len);
	if (rc < 0) {
		d->len = old;
		return rc;
	}
	slot_zero(fs, d->slot, len, old); /* only to give the space back */
	return 0;
}

/* Reads len bytes at boff of block d into out; past the staged length, zeros. */
static int slot_read(struct rfs_fs *fs, const struct dblock *d, uint64_t boff, size_t len, void *out)
{
	off_t base;
	int fd = slot_where(fs, d->slot, &base);
	size_t have = boff < d->len ? (size_t)(d->len - boff) : 0;
	if (have > len)
		have = len;
	ssize_t r = have ? rfs_pread_full(fd, out, have, base + RFS_STAGE_HDR + (off_t)boff) : 0;
	if (r < 0)
		return (int)r;
	memset((uint8_t *)out + r, 0, len - (size_t)r);
	return 0;
}

static int dblock_add(struct node *n, const struct dblock *d)
{
	if (n->nblocks == n->cap) {
		size_t nc = n->cap ? n->cap * 2 : 8;
		struct dblock *nb = realloc(n->blocks, nc * sizeof(*nb));
		if (!nb)
			return -ENOMEM;
		n->blocks = nb;
		n->cap = nc;
	}
	n->blocks[n->nblocks] = *d;
	n->blocks[n->nblocks].gen = ++n->gen_counter;
	n->nblocks++;
	return 0;
}

/* Drops dirty block i and frees its region. Returns 0, or -errno when the region could not
 * be freed: the block then stays (see "Crash order" above). */
static int dblock_remove(struct rfs_fs *fs, struct node *n, size_t i)
{
	int rc = slot_release(fs, &n->blocks[i]);
	if (rc < 0)
		return rc;
	n->blocks[i] = n->blocks[n->nblocks - 1];
	n->nblocks--;
	return 0;
}

/* Recomputes the lock-free dirty summary. Caller holds n->lock. */
static void update_dirty(struct node *n)
{
	int d = n->nblocks > 0 || n->attr_dirty;
	if (!d)
		__atomic_store_n(&n->dirty_since_ms, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&n->dirty, d, __ATOMIC_RELEASE);
}

static void mark_dirty(struct node *n)
{
	if (!n->dirty_since_ms)
		__atomic_store_n(&n->dirty_since_ms, rfs_monotonic_ms(), __ATOMIC_RELEASE);
	update_dirty(n);
}

void core_discard_staging(struct rfs_fs *fs, uint64_t ino)
{
	struct node *n = core_node_get(fs, ino, 0);
	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	/* the file is gone: a region that cannot be freed is left to the next mount's recovery,
	 * which frees regions of inodes that no longer exist (ids are never reused) */
	while (n->nblocks)
		if (dblock_remove(fs, n, n->nblocks - 1) < 0)
			n->nblocks--;
	n->attr_dirty = n->atime_set = 0;
	update_dirty(n);
	pthread_mutex_unlock(&n->lock);
	core_node_put(fs, n);
}

/* ---------- block I/O ---------- */

/* The extent of the stored blocks a window fetch covers. */
struct win_extent {
	uint64_t start, end; /* end 0: no block found */
};

static int win_extend(void *arg, const uint8_t hash[RFS_HASH_LEN], const struct rfs_block_loc *loc)
{
	(void)hash;
	struct win_extent *x = arg;
	if (!x->end || loc->off < x->start)
		x->start = loc->off;
	if (loc->off + loc->slen > x->end)
		x->end = loc->off + loc->slen;
	return 0;
}

/* Fetches the stretch of a pack around a small block: from the first to the last block the
 * metadata places within [off - WINDOW_BEFORE, off + WINDOW_AFTER). Returns a held window,
 * NULL with *rc = -EAGAIN (no usable range: fetch the block alone) or NULL with *rc < 0. */
static struct rfs_win *fetch_window(struct rfs_fs *fs, const struct rfs_block_loc *want, int *rc)
{
	struct win_extent x = {0, 0};
	struct rfs_win *win = NULL;
	uint64_t from = want->off > RFS_WINDOW_BEFORE ? want->off - RFS_WINDOW_BEFORE : 0;
	uint64_t to = want->off + want->slen + RFS_WINDOW_AFTER;
	rfs_meta_lock(fs->meta);
	*rc = rfs_meta_blocks_in_range(fs->meta, want->pack, from, to, win_extend, &x);
	rfs_meta_unlock(fs->meta);
	uint64_t start = *rc == 0 ? x.start : 0, end = *rc == 0 ? x.end : 0;
	*rc = -EAGAIN;
	if (end == 0 || want->off < start || want->off + want->slen > end)
		return NULL;
	win = rfs_wincache_begin(fs->wincache, want->pack, start, end);
	if (!win)
		return NULL; /* an overlapping fetch finished meanwhile: the caller looks again */
	char key[64];
	rfs_pack_key(want->pack, key, sizeof(key));
	struct rfs_buf b = {0};
	*rc = rfs_store_get(fs->store, key, start, end - start, &b);
	if (*rc < 0) {
		char cause[256];
		rfs_store_error(fs->store, cause, sizeof(cause));
		RFS_LOG(LOG_ERR, "cannot read pack %s at %" PRIu64 ": %s", key, start,
			cause[0] ? cause : strerror(-*rc));
		rfs_wincache_done(fs->wincache, win, &b, *rc);
		rfs_wincache_put(fs->wincache, win);
		rfs_buf_free(&b);
		*rc = -EIO;
		return NULL;
	}
	size_t got = b.len;
	rfs_wincache_done(fs->wincache, win, &b, 0);
	rfs_buf_free(&b);
	/* one cache file for the whole range, not one per block in it (ranges.h) */
	const uint8_t *data = rfs_wincache_data(win, start, (uint32_t)got);
	if (data && rfs_ranges_put(fs->ranges, want->pack, start, data, (uint32_t)got) < 0)
		RFS_LOG(LOG_DEBUG, "cannot cache a range of pack %s", key);
	*rc = 0;
	return win;
}

/* A small block from a pack range in the SSD cache: read its stored bytes, decode, verify.
 * Returns -ENOENT when no cached range holds it (or the cached copy is damaged). */
static int load_from_range(struct rfs_fs *fs, const uint8_t hash[RFS_HASH_LEN], const struct rfs_block_loc *want,
			   uint8_t *buf)
{
	uint64_t start = 0;
	int fd = rfs_ranges_open_covering(fs->ranges, want->pack, want->off, want->slen, &start);
	if (fd < 0)
		return -ENOENT;
	uint8_t *src = malloc(want->slen ? want->slen : 1);
	int rc = src ? 0 : -ENOMEM;
	if (rc == 0) {
		ssize_t r = rfs_pread_full(fd, src, want->slen, (off_t)(want->off - start));
		rc = r == (ssize_t)want->slen ? 0 : -ENOENT;
	}
	close(fd);
	if (rc == 0 &&
	    rfs_pack_decode_block(src, want->slen, want->codec, want->rlen, hash, rfs_block_loc_xsum(want), buf) < 0) {
		RFS_LOG(LOG_WARNING,
			"a cached range of pack %s is damaged on the cache disk; fetching from the "
			"store",
			want->pack);
		rc = -ENOENT;
	}
	free(src);
	return rc;
}

/* A small block (a small file) is fetched together with its neighbours in the pack: files
 * written together are read together (a Python package, a conda env), so one ranged GET
 * serves many of them. The range stays in memory (wincache.h) and in the SSD cache as one
 * entry (ranges.h); each block is decoded and verified from it when read.
 * Returns -EAGAIN to fall back to a single-block GET. */
static int load_window(struct rfs_fs *fs, const uint8_t hash[RFS_HASH_LEN], const struct rfs_block_loc *want,
		       uint8_t *buf, int *fetched)
{
	int rc = -EAGAIN;
	struct rfs_win *win = NULL;
	for (int tries = 0; tries < 3 && !win; tries++) {
		win = rfs_wincache_find(fs->wincache, want->pack, want->off, want->slen);
		if (!win) {
			rc = load_from_range(fs, hash, want, buf);
			if (rc != -ENOENT)
				return rc;
			win = fetch_window(fs, want, &rc);
			if (!win && rc != 0)
				return rc;
			if (win && fetched)
				*fetched = RFS_FETCHED_WINDOW;
		}
	}
	if (!win)
		return -EAGAIN;
	const uint8_t *src = rfs_wincache_data(win, want->off, want->slen);
	if (!src) {
		rc = -EAGAIN;
		goto out;
	}
	rc = rfs_pack_decode_block(src, want->slen, want->codec, want->rlen, hash, rfs_block_loc_xsum(want), buf);
	if (rc < 0) {
		char key[64], hex[2 * RFS_HASH_LEN + 1];
		rfs_pack_key(want->pack, key, sizeof(key));
		rfs_hex(hash, RFS_HASH_LEN, hex);
		RFS_LOG(LOG_ERR,
			"pack %s is corrupt: block %s at offset %" PRIu64 " fails its hash check; "
			"run 'roamfs fsck' on the store",
			key, hex, want->off);
		rc = -EIO;
		goto out;
	}
out:
	rfs_wincache_put(fs->wincache, win);
	return rc;
}

/* Reads a cached block into a buffer of its size. Returns 0, or -ENOENT when the cache
 * has no (readable) copy. */
static int load_cached_block(struct rfs_fs *fs, const uint8_t hash[RFS_HASH_LEN], uint8_t **out, uint32_t *len)
{
	int fd = rfs_cache_open_block(fs->cache, hash);
	if (fd < 0)
		return -ENOENT;
	struct stat st;
	uint8_t *buf = NULL;
	ssize_t r = -1;
	if (fstat(fd, &st) == 0 && st.st_size <= fs->format.block_size &&
	    (buf = malloc(st.st_size ? (size_t)st.st_size : 1)))
		r = rfs_pread_full(fd, buf, (size_t)st.st_size, 0);
	close(fd);
	if (r < 0 || r != st.st_size) {
		if (buf) /* read, not allocation, failed: drop the unreadable file (as above) */
			rfs_cache_drop(fs->cache, hash);
		free(buf);
		return -ENOENT;
	}
	*out = buf;
	*len = (uint32_t)r;
	return 0;
}

/* Brings a stored block into memory: cache, else the store (verified, then cached).
 * On success *out is a malloc'd buffer of the block's *len bytes, which the caller frees
 * (a small file's block costs a few KiB, not a block size). *fetched (if not NULL) is set
 * to RFS_FETCHED_WINDOW when a small block's pack range had to come from the store, to
 * RFS_FETCHED_BLOCK when the block did. */
static int load_block(struct rfs_fs *fs, const uint8_t hash[RFS_HASH_LEN], uint8_t **out, uint32_t *len, int *fetched)
{
	if (load_cached_block(fs, hash, out, len) == 0)
		return 0;
	struct rfs_block_loc loc;
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_block_get(fs->meta, hash, &loc);
	rfs_meta_unlock(fs->meta);
	char hex[2 * RFS_HASH_LEN + 1];
	if (rc < 0) {
		rfs_hex(hash, RFS_HASH_LEN, hex);
		RFS_LOG(LOG_ERR, "block %s is named by a file but has no location in the metadata", hex);
		return -EIO;
	}
	if (loc.rlen > fs->format.block_size) {
		RFS_LOG(LOG_ERR, "block in pack %s claims %u bytes, more than the block size", loc.pack, loc.rlen);
		return -EIO;
	}
	uint8_t *buf = NULL;
	/* a short block is a small file (or a file's tail): fetch its pack neighbours too */
	if (loc.rlen <= RFS_SMALL_BLOCK && loc.rlen < fs->format.block_size) {
		buf = malloc(loc.rlen ? loc.rlen : 1);
		if (!buf)
			return -ENOMEM;
		rc = load_window(fs, hash, &loc, buf, fetched);
		if (rc != -EAGAIN)
			goto out;
	}
	char key[64];
	rfs_pack_key(loc.pack, key, sizeof(key));
	struct rfs_buf b = {0};
	if (fetched)
		*fetched = RFS_FETCHED_BLOCK;
	rc = rfs_store_get(fs->store, key, loc.off, loc.slen, &b);
	if (rc < 0) {
		char cause[256];
		rfs_store_error(fs->store, cause, sizeof(cause));
		RFS_LOG(LOG_ERR, "cannot read pack %s at %" PRIu64 ": %s", key, loc.off,
			cause[0] ? cause : strerror(-rc));
		rc = -EIO;
		goto out;
	}
	if (b.len != loc.slen) {
		RFS_LOG(LOG_ERR, "pack %s returned %zu bytes at offset %" PRIu64 " for a block of %u", key, b.len,
			loc.off, loc.slen);
		rfs_buf_free(&b);
		rc = -EIO;
		goto out;
	}
	if (loc.codec == RFS_CODEC_RAW && loc.slen == loc.rlen && b.data) {
		/* stored as is (incompressible data, most big blocks): verify the fetched bytes in
		 * place and keep them, saving a block-sized copy per fetch */
		rc = rfs_pack_verify_block(b.data, loc.rlen, hash, rfs_block_loc_xsum(&loc));
		if (rc == 0) {
			free(buf);
			buf = b.data;
			b = (struct rfs_buf){0};
		}
	} else if (!buf && !(buf = malloc(loc.rlen ? loc.rlen : 1))) {
		rfs_buf_free(&b);
		rc = -ENOMEM;
		goto out;
	} else {
		rc = rfs_pack_decode_block(b.data, loc.slen, loc.codec, loc.rlen, hash, rfs_block_loc_xsum(&loc), buf);
	}
	rfs_buf_free(&b);
	if (rc < 0) {
		rfs_hex(hash, RFS_HASH_LEN, hex);
		RFS_LOG(LOG_ERR,
			"pack %s is corrupt: block %s at offset %" PRIu64 " fails its hash check; "
			"run 'roamfs fsck' on the store",
			key, hex, loc.off);
		rc = -EIO;
		goto out;
	}
	rc = rfs_cache_put(fs->cache, hash, buf, loc.rlen);
	if (rc < 0 && rc != -EFBIG)
		RFS_LOG(LOG_DEBUG, "cannot cache a block: %s", strerror(-rc));
	rc = 0;
out:
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	*len = loc.rlen;
	return 0;
}

struct sibling_list {
	uint64_t ino[RFS_SIBLINGS_MAX];
	size_t n;
};

static int collect_sibling(void *arg, const char *name, uint64_t ino, uint32_t mode, uint64_t cookie)
{
	(void)name;
	(void)cookie;
	struct sibling_list *l = arg;
	if (S_ISREG(mode))
		l->ino[l->n++] = ino;
	return l->n == RFS_SIBLINGS_MAX;
}

/* A small file that had to come from the store: the other files of its directory are likely
 * next (a package being imported, a directory of samples). Most share its pack range, now
 * cached; those in other packs would each cost a serial round trip when read. Their first
 * blocks are queued for the prefetch workers, which fetch those ranges in parallel. At most
 * RFS_SIBLINGS_MAX files, once per directory per RFS_SIBLINGS_AGAIN_MS. */
static void prefetch_siblings(struct rfs_fs *fs, uint64_t ino)
{
	if (!fs->prefetch)
		return;
	uint64_t parent = 0;
	char name[NAME_MAX + 1];
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_name_of(fs->meta, ino, &parent, name, sizeof(name));
	rfs_meta_unlock(fs->meta);
	if (rc < 0)
		return;
	int64_t now = rfs_monotonic_ms();
	pthread_mutex_lock(&fs->sib_lock);
	int recent = 0;
	size_t oldest = 0;
	for (size_t i = 0; i < RFS_SIBLING_DIRS; i++) {
		if (fs->sib_dir[i] == parent && now - fs->sib_time[i] < RFS_SIBLINGS_AGAIN_MS)
			recent = 1;
		if (fs->sib_time[i] < fs->sib_time[oldest])
			oldest = i;
	}
	if (!recent) {
		fs->sib_dir[oldest] = parent;
		fs->sib_time[oldest] = now;
	}
	pthread_mutex_unlock(&fs->sib_lock);
	if (recent)
		return;
	struct sibling_list *l = calloc(1, sizeof(*l));
	if (!l)
		return;
	rfs_meta_lock(fs->meta);
	rfs_meta_readdir(fs->meta, parent, 0, collect_sibling, l);
	rfs_meta_unlock(fs->meta);
	for (size_t i = 0; i < l->n; i++) {
		uint8_t hash[RFS_HASH_LEN];
		rfs_meta_lock(fs->meta);
		rc = l->ino[i] == ino ? -ENOENT : rfs_meta_bmap_get(fs->meta, l->ino[i], 0, hash);
		rfs_meta_unlock(fs->meta);
		if (rc == 0 && !core_block_cached(fs, hash, NULL))
			rfs_prefetch_add(fs->prefetch, PF_BLOCK, hash);
	}
	free(l);
}

/* The directory listing and block-map lookups of prefetch_siblings run in a prefetch
 * worker, not in the FUSE read that found the file cold. */
static void queue_siblings(struct rfs_fs *fs, uint64_t ino)
{
	if (!fs->prefetch)
		return;
	uint8_t key[RFS_HASH_LEN] = {0};
	memcpy(key, &ino, sizeof(ino));
	rfs_prefetch_add(fs->prefetch, PF_SIBLINGS, key);
}

/* Reads len bytes at off of a block from the SSD cache. 0, or -ENOENT (not cached).
 * With fd_out, a block file holding all len bytes is not read: its fd is left in *fd_out
 * (the caller splices the range to the kernel and closes it). */
static int read_cached_part(struct rfs_fs *fs, const uint8_t hash[RFS_HASH_LEN], uint32_t off, uint32_t len, char *out,
			    int *fd_out)
{
	int fd = rfs_cache_open_block(fs->cache, hash);
	if (fd < 0)
		return -ENOENT;
	struct stat st;
	if (fd_out && fstat(fd, &st) == 0 && (uint64_t)st.st_size >= (uint64_t)off + len) {
		*fd_out = fd;
		return 0;
	}
	ssize_t r = rfs_pread_full(fd, out, len, off);
	close(fd);
	if (r < 0) {
		rfs_cache_drop(fs->cache, hash); /* unreadable: fetch it again, into a new file */
		return -ENOENT;
	}
	memset(out + r, 0, len - (size_t)r);
	return 0;
}

/* Reads part of block idx of a file. Caller holds n->lock when n is non-NULL.
 * Bytes past the block's stored length read as zeros. *missed (if not NULL) is set when the
 * reader had to wait for the store (not in the SSD cache, nor in a cached pack range).
 * again: a read done over (rfs_read_again) - not counted, no sibling prefetch. */
static int read_block_part(struct rfs_fs *fs, struct node *n, uint64_t ino, uint64_t idx, uint32_t off, uint32_t len,
			   char *out, int *missed, int *fd_out, int again)
{
	const struct dblock *d = n ? dblock_find(n, idx) : NULL;
	if (d)
		return slot_read(fs, d, off, len, out);
	uint8_t hash[RFS_HASH_LEN];
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_bmap_get(fs->meta, ino, idx, hash);
	rfs_meta_unlock(fs->meta);
	if (rc == -ENOENT) {
		memset(out, 0, len); /* a hole */
		return 0;
	}
	if (rc < 0)
		return rc;
	int claim = -EAGAIN, fetched = 0;
	if (read_cached_part(fs, hash, off, len, out, fd_out) == 0)
		goto out;
	/* The readahead may be fetching this very block (wait for it rather than fetch it
	 * twice), or have it queued (take it: the reader goes first). */
	claim = fs->prefetch ? rfs_prefetch_claim(fs->prefetch, PF_BLOCK, hash) : -EAGAIN;
	if (claim == 1)
		fetched = RFS_FETCHED_BLOCK; /* waited for the store */
	if (claim >= 0 && read_cached_part(fs, hash, off, len, out, fd_out) == 0)
		goto out;
	uint8_t *buf = NULL;
	uint32_t blen = 0;
	rc = load_block(fs, hash, &buf, &blen, &fetched);
	if (rc == 0) {
		uint32_t avail = off < blen ? blen - off : 0;
		uint32_t c = avail < len ? avail : len;
		memcpy(out, buf + off, c);
		memset(out + c, 0, len - c);
		free(buf);
	}
	if (rc == 0 && fetched == RFS_FETCHED_WINDOW && idx == 0 && !again)
		queue_siblings(fs, ino);
out:
	if (claim == 0)
		rfs_prefetch_release(fs->prefetch, PF_BLOCK, hash);
	if (rc == 0 && !again) {
		rfs_cache_count(fs->cache, !fetched);
		if (fetched && missed)
			*missed = 1;
	}
	return rc;
}

/* Makes block idx dirty with a copy of its current content (a partial write or a truncate
 * inside it comes next). Caller holds n->lock. */
static int make_dirty(struct rfs_fs *fs, struct node *n, uint64_t idx, struct dblock **out)
{
	struct dblock *d = dblock_find(n, idx);
	if (d) {
		d->gen = ++n->gen_counter;
		*out = d;
		return 0;
	}
	struct dblock nd = {.idx = idx, .slot = slot_take(fs)};
	uint8_t hash[RFS_HASH_LEN];
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_bmap_get(fs->meta, n->ino, idx, hash);
	rfs_meta_unlock(fs->meta);
	if (rc == 0) {
		uint8_t *buf = NULL;
		uint32_t blen = 0;
		rc = load_block(fs, hash, &buf, &blen, NULL);
		/* never keep more than the file's current size in the block */
		uint64_t start = idx * fs->format.block_size;
		if (rc == 0 && start + blen > n->size)
			blen = n->size > start ? (uint32_t)(n->size - start) : 0;
		if (rc == 0) {
			rc = slot_write(fs, n->ino, &nd, buf, blen, 0);
			free(buf);
		}
	} else if (rc == -ENOENT) {
		rc = 0; /* a hole: nothing to copy */
	}
	if (rc == 0)
		rc = dblock_add(n, &nd);
	if (rc < 0) {
		slot_release(fs, &nd); /* a failure leaves no valid header behind, or the copy */
		return rc;
	}
	*out = &n->blocks[n->nblocks - 1];
	return 0;
}

/* A new dirty block whose first write replaces all of its old content: written first, then
 * attached to the node, so that a failed write leaves the stored block as it was. */
static int write_new_block(struct rfs_fs *fs, struct node *n, uint64_t idx, const char *data, size_t len, uint64_t boff)
{
	struct dblock nd = {.idx = idx, .slot = slot_take(fs)};
	int rc = slot_write(fs, n->ino, &nd, data, len, boff);
	if (rc == 0)
		rc = dblock_add(n, &nd);
	if (rc < 0)
		slot_release(fs, &nd);
	return rc;
}

/* Loads the node's size/times from the DB if it has no newer ones. Caller holds n->lock. */
static int node_load_attr(struct rfs_fs *fs, struct node *n)
{
	if (n->attr_dirty)
		return 0;
	struct rfs_attr a;
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_get_attr(fs->meta, n->ino, &a);
	rfs_meta_unlock(fs->meta);
	if (rc < 0)
		return rc;
	n->size = a.size;
	n->mtime = a.mtime;
	n->ctime = a.ctime;
	return 0;
}

struct clean_part {
	uint64_t idx;
	uint32_t boff, len;
	size_t dst;
	int fd; /* >= 0: the part is this cache file's range at boff (zero-copy reply) */
};

/* Where a byte range continuing at pos (left bytes to go) meets the blocks: block *idx, from
 * *boff, for the returned number of bytes (to the block's end at most). */
static uint32_t block_chunk(uint32_t bs, uint64_t pos, size_t left, uint64_t *idx, uint32_t *boff)
{
	*idx = pos / bs;
	*boff = (uint32_t)(pos % bs);
	uint32_t chunk = bs - *boff;
	return chunk > left ? (uint32_t)left : chunk;
}

/* Readahead for a sequential reader that just entered block idx: queues the uncached stored
 * blocks from..to (the part of its window not queued before) for the prefetch workers, and
 * has the kernel read the next RFS_ADVISE_BLOCKS cached ones from the SSD. Returns the first
 * block of from..to it could not queue (the queue was full), to + 1 if none: the next block
 * the stream enters tries that one again. */
static uint64_t read_ahead(struct rfs_fs *fs, uint64_t ino, uint64_t idx, uint64_t from, uint64_t to, uint64_t size)
{
	if (!fs->prefetch || !size)
		return from;
	uint64_t last = (size - 1) / fs->format.block_size;
	uint64_t advise_to = idx + RFS_ADVISE_BLOCKS, upto = to + 1;
	for (uint64_t i = idx + 1; i <= last && (i <= to || i <= advise_to); i++) {
		int fetch = i >= from && i <= to && i < upto, advise = i <= advise_to;
		if (!fetch && !advise) {
			if (i > advise_to && upto <= i)
				break; /* the queue is full: nothing more to queue or advise */
			continue;
		}
		uint8_t hash[RFS_HASH_LEN];
		rfs_meta_lock(fs->meta);
		int rc = rfs_meta_bmap_get(fs->meta, ino, i, hash);
		rfs_meta_unlock(fs->meta);
		if (rc < 0)
			continue;
		if (!rfs_cache_has(fs->cache, hash)) {
			if (fetch && rfs_prefetch_add(fs->prefetch, PF_BLOCK, hash) < 0)
				upto = i;
		} else if (advise) {
			rfs_cache_advise(fs->cache, hash); /* on the SSD: have the kernel read it ahead */
		}
	}
	return upto;
}

/* Sequential-stream bookkeeping of a read of size bytes at off (n->lock held, off + size
 * within the file). Returns RA_NONE (not in a stream), RA_STREAM (continues one) or
 * RA_ENTERED (continues one and entered a new block: call read_ahead with from..to, the
 * blocks to queue, empty when from > to). *gen is the stream's generation: the caller
 * records what read_ahead queued only if no new stream began meanwhile.
 *
 * A read continues the stream when it starts at most RFS_STREAM_AHEAD past where the stream
 * has got to, or at most RFS_STREAM_BEHIND before it (or within a block of it, for blocks
 * bigger than that): FUSE runs reads on several threads, and the kernel keeps up to 12
 * 1 MiB readahead requests in flight, which arrive out of order. Readahead is planned once
 * per block the stream enters, not per request (a 4 MiB block is read in four 1 MiB
 * requests). The window starts small (a
 * reader of a file's first few MiB does not pull 256 MiB) and doubles with every block the
 * stream enters, up to RFS_READAHEAD_MAX_BYTES: one connection to a cloud store brings
 * ~100 MB/s, so a fast network needs dozens of fetches in flight. Only blocks new to the
 * window are planned (ra_queued: the first block not queued yet), never past the file's end
 * (a file that grows later is read ahead as the window slides on). */
enum { RA_NONE, RA_STREAM, RA_ENTERED };

static int readahead_plan(struct rfs_fs *fs, struct node *n, uint64_t off, size_t size, uint64_t *from, uint64_t *to,
			  uint64_t *gen)
{
	uint64_t bs = fs->format.block_size, end = off + size;
	uint64_t ahead = bs > RFS_STREAM_AHEAD ? bs : RFS_STREAM_AHEAD;
	uint64_t behind = bs > RFS_STREAM_BEHIND ? bs : RFS_STREAM_BEHIND;
	int in_stream = off + behind >= n->ra_next && off <= n->ra_next + ahead;
	*from = 1;
	*to = 0;
	*gen = n->ra_gen;
	if (!size)
		return RA_NONE;
	if (!in_stream) {
		n->ra_next = end;
		n->ra_window = 0; /* a new stream starts small again */
		n->ra_queued = 0;
		n->ra_block = 0;
		*gen = ++n->ra_gen; /* a plan of the old stream must not move ra_queued */
		return RA_NONE;
	}
	if (end > n->ra_next)
		n->ra_next = end;
	uint64_t last = (end - 1) / bs, file_last = (n->size - 1) / bs;
	if (last + 1 <= n->ra_block)
		return RA_STREAM; /* this block's readahead is planned already */
	n->ra_block = last + 1;
	uint64_t max = RFS_READAHEAD_MAX_BYTES / bs;
	if (max > RFS_READAHEAD_MAX_BLOCKS)
		max = RFS_READAHEAD_MAX_BLOCKS;
	if (max < RFS_READAHEAD_MIN)
		max = RFS_READAHEAD_MIN;
	n->ra_window = n->ra_window ? n->ra_window * 2 : RFS_READAHEAD_MIN;
	if (n->ra_window > max)
		n->ra_window = max;
	uint64_t lo = n->ra_queued > last + 1 ? n->ra_queued : last + 1;
	uint64_t hi = last + n->ra_window < file_last ? last + n->ra_window : file_last;
	if (lo <= hi) {
		*from = lo;
		*to = hi;
	}
	return RA_ENTERED;
}

/* Queues the PF_FILE job for blocks from..end of a file: the key holds ino, then from. */
static void queue_file_fetch(struct rfs_fs *fs, uint64_t ino, uint64_t from)
{
	uint8_t key[RFS_HASH_LEN] = {0};
	memcpy(key, &ino, sizeof(ino));
	memcpy(key + 8, &from, sizeof(from));
	rfs_prefetch_add(fs->prefetch, PF_FILE, key);
}

/* A random reader (a dataset shard, a model loaded tensor by tensor) of a file that is small
 * against the cache gets the whole file fetched in the background, several blocks at once:
 * it would otherwise wait for one block fetch per miss, one at a time. It takes a few misses
 * outside a sequential stream first - more for bigger files (a 64th of their blocks) - so a
 * reader that only peeks into a file does not pull all of it. */
static void note_random_miss(struct rfs_fs *fs, struct node *n, uint64_t size)
{
	uint64_t bs = fs->format.block_size, nblocks = (size + bs - 1) / bs;
	struct rfs_cache_stats st;
	rfs_cache_get_stats(fs->cache, &st);
	if (!fs->prefetch || nblocks <= RFS_RANDOM_MISSES || size > st.limit / RFS_FILE_FETCH_CACHE_SHARE)
		return;
	uint64_t need = nblocks / 64 > RFS_RANDOM_MISSES ? nblocks / 64 : RFS_RANDOM_MISSES;
	pthread_mutex_lock(&n->lock);
	/* every `need` misses, not once: a whole-file fetch dropped on a full queue (or cut
	 * short by one) is asked for again while the reader keeps missing; once the file is in
	 * the cache there are no misses left to count */
	int start = ++n->random_misses % need == 0;
	pthread_mutex_unlock(&n->lock);
	if (start)
		queue_file_fetch(fs, n->ino, 0);
}

/* Prefetch job PF_FILE (ino, from): queues the next uncached blocks of the file from block
 * `from`, one per prefetch worker, then itself for the rest, so the queue never holds more
 * than a batch of one file and a reader's own misses are not stuck behind a whole file's
 * fetches. */
static void prefetch_file(struct rfs_fs *fs, uint64_t ino, uint64_t from)
{
	struct rfs_attr a;
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_get_attr(fs->meta, ino, &a);
	rfs_meta_unlock(fs->meta);
	if (rc < 0 || !S_ISREG(a.mode))
		return; /* removed meanwhile */
	uint64_t bs = fs->format.block_size, nblocks = (a.size + bs - 1) / bs, i = from;
	for (int queued = 0; i < nblocks && queued < fs->cfg.fetch_threads; i++) {
		uint8_t hash[RFS_HASH_LEN];
		rfs_meta_lock(fs->meta);
		rc = rfs_meta_bmap_get(fs->meta, ino, i, hash);
		rfs_meta_unlock(fs->meta);
		if (rc < 0 || core_block_cached(fs, hash, NULL))
			continue;
		if (rfs_prefetch_add(fs->prefetch, PF_BLOCK, hash) < 0)
			return; /* the queue is full: readahead is a hint, not a backlog */
		queued++;
	}
	if (i < nblocks)
		queue_file_fetch(fs, ino, i);
}

/* The smallest cache file range worth a zero-copy piece: libfuse 3.14 copies a whole reply
 * whose last file range is under two pages (its check looks at that one only), and for less
 * than that a copy is as cheap as a splice anyway. */
static size_t splice_min(void)
{
	return 2 * rfs_page_size();
}

/* rfs_read and rfs_read_again (again: no readahead, no counting, see core.h). */
static ssize_t read_file(struct rfs_fs *fs, uint64_t ino, uint64_t off, size_t size, char *buf,
			 struct rfs_read_reply *zc, int again)
{
	struct node *n = core_node_get(fs, ino, 1);
	if (!n)
		return -ENOMEM;
	struct clean_part parts[8], *cp = parts;
	size_t nparts = 0, capparts = 8;
	int ra = RA_NONE;
	uint64_t fsize = 0, ra_from = 1, ra_to = 0, ra_gen = 0;
	/* Dirty blocks are read under the node lock (staging may change); stored blocks are read
	 * after it is dropped, so parallel reads of one file fetch in parallel. */
	pthread_mutex_lock(&n->lock);
	ssize_t rc = node_load_attr(fs, n);
	if (rc < 0)
		goto unlock;
	fsize = n->size;
	if (off >= n->size) {
		rc = 0;
		goto unlock;
	}
	if (size > n->size - off)
		size = (size_t)(n->size - off);
	if (!again)
		ra = readahead_plan(fs, n, off, size, &ra_from, &ra_to, &ra_gen);
	uint32_t bs = fs->format.block_size;
	size_t done = 0;
	while (done < size) {
		uint64_t pos = off + done, idx;
		uint32_t boff, chunk = block_chunk(bs, pos, size - done, &idx, &boff);
		if (dblock_find(n, idx)) {
			int r = read_block_part(fs, n, ino, idx, boff, chunk, buf + done, NULL, NULL, again);
			if (r < 0) {
				rc = r;
				goto unlock;
			}
		} else {
			if (nparts == capparts) {
				struct clean_part *np = malloc(capparts * 2 * sizeof(*np));
				if (!np) {
					rc = -ENOMEM;
					goto unlock;
				}
				memcpy(np, cp, nparts * sizeof(*np));
				if (cp != parts)
					free(cp);
				cp = np;
				capparts *= 2;
			}
			cp[nparts++] = (struct clean_part){idx, boff, chunk, done, -1};
		}
		done += chunk;
	}
	rc = (ssize_t)done;
unlock:
	pthread_mutex_unlock(&n->lock);
	int missed = 0;
	size_t nfd = 0, npieces = 0, at = 0;
	for (size_t i = 0; rc >= 0 && i < nparts; i++) {
		/* A file range costs a piece, plus one for the buffer bytes before it; one piece
		 * stays free for the buffer bytes after the last. Past that, parts are copied. */
		size_t need = 1 + (cp[i].dst > at);
		int *fdp = zc && cp[i].len >= splice_min() && npieces + need + 1 <= RFS_READ_SEGS ? &cp[i].fd : NULL;
		int r = read_block_part(fs, NULL, ino, cp[i].idx, cp[i].boff, cp[i].len, buf + cp[i].dst, &missed, fdp,
					again);
		if (r < 0)
			rc = r;
		if (cp[i].fd >= 0) {
			nfd++;
			npieces += need;
			at = cp[i].dst + cp[i].len;
		}
	}
	if (zc)
		zc->nsegs = 0;
	if (nfd && rc < 0) {
		for (size_t i = 0; i < nparts; i++)
			if (cp[i].fd >= 0)
				close(cp[i].fd);
	} else if (nfd) {
		at = 0;
		for (size_t i = 0; i < nparts; i++) {
			if (cp[i].fd < 0)
				continue;
			if (cp[i].dst > at)
				zc->seg[zc->nsegs++] = (struct rfs_read_seg){-1, at, cp[i].dst - at};
			zc->seg[zc->nsegs++] = (struct rfs_read_seg){cp[i].fd, cp[i].boff, cp[i].len};
			at = cp[i].dst + cp[i].len;
		}
		if ((size_t)rc > at)
			zc->seg[zc->nsegs++] = (struct rfs_read_seg){-1, at, (size_t)rc - at};
	}
	if (rc > 0 && ra == RA_ENTERED) {
		uint64_t upto =
		    read_ahead(fs, ino, (off + (uint64_t)rc - 1) / fs->format.block_size, ra_from, ra_to, fsize);
		pthread_mutex_lock(&n->lock);
		if (ra_to >= ra_from && n->ra_gen == ra_gen && upto > n->ra_queued)
			n->ra_queued = upto;
		pthread_mutex_unlock(&n->lock);
	}
	if (rc > 0 && ra == RA_NONE && missed && !again)
		note_random_miss(fs, n, fsize);
	if (cp != parts)
		free(cp);
	core_node_put(fs, n);
	return rc;
}

ssize_t rfs_read(struct rfs_fs *fs, uint64_t ino, uint64_t off, size_t size, char *buf, struct rfs_read_reply *zc)
{
	return read_file(fs, ino, off, size, buf, zc, 0);
}

ssize_t rfs_read_again(struct rfs_fs *fs, uint64_t ino, uint64_t off, size_t size, char *buf)
{
	return read_file(fs, ino, off, size, buf, NULL, 1);
}

/* Whether a block can be read without the store: in the block cache, or (a small block)
 * inside a pack range in the cache. loc may be NULL (looked up). */
int core_block_cached(struct rfs_fs *fs, const uint8_t hash[RFS_HASH_LEN], const struct rfs_block_loc *loc)
{
	if (rfs_cache_has(fs->cache, hash))
		return 1;
	struct rfs_block_loc l;
	if (!loc) {
		rfs_meta_lock(fs->meta);
		int rc = rfs_meta_block_get(fs->meta, hash, &l);
		rfs_meta_unlock(fs->meta);
		if (rc < 0)
			return 0;
		loc = &l;
	}
	return loc->rlen <= RFS_SMALL_BLOCK && loc->rlen < fs->format.block_size &&
	       rfs_ranges_has(fs->ranges, loc->pack, loc->off, loc->slen);
}

/* Prefetch worker: bring one block into the cache, or queue a directory's files. */
void core_prefetch_job(void *arg, int kind, const uint8_t key[RFS_HASH_LEN])
{
	struct rfs_fs *fs = arg;
	if (kind == PF_SIBLINGS) {
		uint64_t ino;
		memcpy(&ino, key, sizeof(ino));
		prefetch_siblings(fs, ino);
		return;
	}
	if (kind == PF_FILE) {
		uint64_t ino, from;
		memcpy(&ino, key, sizeof(ino));
		memcpy(&from, key + 8, sizeof(from));
		prefetch_file(fs, ino, from);
		return;
	}
	/* 1: a reader or a readahead worker fetched it meanwhile (if that fetch failed, warmup
	 * tries once more itself). Never queue PF_WARM on fs->prefetch itself: the job would wait
	 * for its own claim. */
	int claim = kind == PF_WARM && fs->prefetch ? rfs_prefetch_claim(fs->prefetch, PF_BLOCK, key) : -EAGAIN;
	uint8_t *buf = NULL;
	uint32_t len;
	if (!core_block_cached(fs, key, NULL) && load_block(fs, key, &buf, &len, NULL) == 0)
		free(buf);
	if (claim == 0)
		rfs_prefetch_release(fs->prefetch, PF_BLOCK, key);
}

/* Staged data must never take the last free space of the cache disk: the flush that would
 * free it needs room for a metadata transaction (SQLite's WAL). Keep a reserve of a tenth
 * of the disk, between 1 and 64 MiB. */
static int staging_space_ok(struct rfs_fs *fs, size_t incoming)
{
	/* a partial first write materialises up to a whole block */
	uint64_t need = incoming + fs->format.block_size;
	int64_t now = rfs_monotonic_ms();
	pthread_mutex_lock(&fs->space_lock);
	/* statvfs() on every write was a syscall per copied file: far from the reserve, the last
	 * answer serves for RFS_SPACE_CHECK_MS minus what was admitted since; within
	 * RFS_SPACE_SLACK of it every write asks again, so ENOSPC comes exactly when it did. */
	int fresh = fs->space_ms && now - fs->space_ms < RFS_SPACE_CHECK_MS &&
		    fs->space_avail >= fs->space_reserve + need + RFS_SPACE_SLACK;
	if (!fresh) {
		struct statvfs sv;
		if (statvfs(fs->staging_dir, &sv) < 0) {
			pthread_mutex_unlock(&fs->space_lock);
			return 0; /* cannot tell: let the write itself fail if it must */
		}
		uint64_t total = (uint64_t)sv.f_blocks * sv.f_frsize;
		uint64_t reserve = total / 10;
		if (reserve < (1u << 20))
			reserve = 1u << 20;
		if (reserve > (64u << 20))
			reserve = 64u << 20;
		fs->space_avail = (uint64_t)sv.f_bavail * sv.f_frsize;
		fs->space_reserve = reserve;
		fs->space_ms = now;
	}
	int ok = fs->space_avail >= fs->space_reserve + need;
	if (ok)
		fs->space_avail -= incoming;
	pthread_mutex_unlock(&fs->space_lock);
	return ok ? 0 : -ENOSPC;
}

ssize_t rfs_write(struct rfs_fs *fs, uint64_t ino, uint64_t off, const char *buf, size_t size)
{
	if (core_check_writable(fs))
		return -EROFS;
	if (staging_space_ok(fs, size) < 0) {
		RFS_LOG(LOG_WARNING,
			"cache disk of '%s' is nearly full: refusing a write to inode %" PRIu64
			" with ENOSPC until staged data is uploaded (free space there or lower --cache-size)",
			fs->cache_dir, ino);
		core_bg_kick(fs);
		return -ENOSPC;
	}
	struct node *n = core_node_get(fs, ino, 1);
	if (!n)
		return -ENOMEM;
	pthread_mutex_lock(&n->lock);
	ssize_t rc = node_load_attr(fs, n);
	if (rc < 0)
		goto out;
	uint32_t bs = fs->format.block_size;
	size_t done = 0;
	while (done < size) {
		uint64_t pos = off + done, idx;
		uint32_t boff, chunk = block_chunk(bs, pos, size - done, &idx, &boff);
		/* the write replaces all old content of the block if it covers [0, old length) */
		uint64_t start = idx * bs;
		uint64_t old_len = n->size > start ? n->size - start : 0;
		if (old_len > bs)
			old_len = bs;
		int all = boff == 0 && chunk >= old_len;
		struct dblock *d = dblock_find(n, idx);
		int r;
		if (!d && all) {
			r = write_new_block(fs, n, idx, buf + done, chunk, boff);
		} else {
			r = make_dirty(fs, n, idx, &d);
			if (r == 0)
				r = slot_write(fs, ino, d, buf + done, chunk, boff);
		}
		if (r < 0) {
			rc = r;
			break;
		}
		done += chunk;
		if (pos + chunk > n->size)
			n->size = pos + chunk;
	}
	if (done) {
		int64_t now = rfs_now_ns();
		n->mtime = now;
		n->ctime = now;
		n->attr_dirty = 1;
		n->attr_gen++;
		mark_dirty(n);
		rc = (ssize_t)done; /* a partial write reports what landed */
	} else if (rc == 0) {
		rc = 0;
	}
	update_dirty(n);
	if (rc == -ENOSPC || rc == -EDQUOT)
		RFS_LOG(LOG_WARNING,
			"staging area on '%s' is full: a write to inode %" PRIu64 " failed "
			"(free space on the cache disk or lower --cache-size)",
			fs->cache_dir, ino);
out:
	pthread_mutex_unlock(&n->lock);
	core_node_put(fs, n);
	return rc;
}

/* ---------- flush: staging -> pack -> store -> metadata ---------- */

struct sealed {
	struct node *n;
	uint64_t idx, gen;
	int hole;
	uint8_t hash[RFS_HASH_LEN];
};

struct attr_snap {
	struct node *n;
	uint64_t attr_gen;
	int attr_dirty;
	uint64_t size;
	int64_t mtime, ctime;
	int atime_set;
	int64_t atime;
};

/* A full pack on its way to the store, on a thread of its own. */
struct pack_upload {
	pthread_t thread;
	struct rfs_fs *fs;
	struct rfs_pack pack;
	int rc;
};

struct flush_batch {
	struct sealed *s;
	size_t ns, caps;
	struct rfs_pack_entry *entries; /* blocks stored in packs during this flush */
	char (*entry_pack)[33];
	size_t ne, cape;
	struct rfs_pack pack;
	int pack_open;
	/* Full packs upload while the next one is sealed: one PUT stream reached a third of
	 * the RGW's PUT throughput. Oldest first; RFS_UPLOADS_IN_FLIGHT bounds the memory. */
	struct pack_upload *up[RFS_UPLOADS_IN_FLIGHT];
	size_t nup;
	int up_rc; /* the first failed upload */
	/* Buffers of uploaded packs, reused for the next ones: a fresh 32 MiB buffer is page
	 * faults and zeroing (a fifth of the daemon's CPU while flushing a big file) and grows
	 * by copies. Freed at the end of the flush. */
	struct rfs_buf spare[RFS_UPLOADS_IN_FLIGHT];
	size_t nspare;
};

/* Opens the batch's next pack, on a spare buffer when there is one, else on one reserved
 * for a full pack up front (address space only until written). */
static void open_pack(struct rfs_fs *fs, struct flush_batch *b)
{
	rfs_pack_init(&b->pack, fs->format.compress);
	b->pack_open = 1;
	if (b->nspare) {
		b->pack.buf = b->spare[--b->nspare];
		b->pack.buf.len = 0;
	} else {
		rfs_buf_reserve(&b->pack.buf, RFS_PACK_TARGET + fs->format.block_size + (64u << 10));
	}
}

/* Frees a pack, keeping its buffer for the next one when there is room. */
static void retire_pack(struct flush_batch *b, struct rfs_pack *pack)
{
	if (b->nspare < RFS_UPLOADS_IN_FLIGHT && pack->buf.data) {
		b->spare[b->nspare++] = pack->buf;
		pack->buf = (struct rfs_buf){0};
	}
	rfs_pack_free(pack);
}

static int batch_add_sealed(struct flush_batch *b, const struct sealed *s)
{
	if (b->ns == b->caps) {
		size_t nc = b->caps ? b->caps * 2 : 64;
		struct sealed *x = realloc(b->s, nc * sizeof(*x));
		if (!x)
			return -ENOMEM;
		b->s = x;
		b->caps = nc;
	}
	b->s[b->ns++] = *s;
	return 0;
}

void core_upload_error(struct rfs_fs *fs, char *buf, size_t len)
{
	pthread_mutex_lock(&fs->upload_err_lock);
	snprintf(buf, len, "%s", fs->upload_err);
	pthread_mutex_unlock(&fs->upload_err_lock);
}

static int store_pack(struct rfs_fs *fs, struct rfs_pack *pack)
{
	char key[64];
	rfs_pack_key(pack->id, key, sizeof(key));
	int rc = rfs_store_put(fs->store, key, pack->buf.data, pack->buf.len);
	if (rc < 0) {
		char cause[200];
		rfs_store_error(fs->store, cause, sizeof(cause));
		pthread_mutex_lock(&fs->upload_err_lock);
		snprintf(fs->upload_err, sizeof(fs->upload_err),
			 "cannot upload pack %s: %s; the data stays in staging and is retried", key,
			 cause[0] ? cause : strerror(-rc));
		RFS_LOG(LOG_WARNING, "%s", fs->upload_err);
		pthread_mutex_unlock(&fs->upload_err_lock);
	}
	return rc;
}

static void *upload_thread(void *arg)
{
	struct pack_upload *u = arg;
	__atomic_store_n(&u->rc, store_pack(u->fs, &u->pack), __ATOMIC_RELEASE);
	return NULL;
}

/* Waits for the oldest upload in flight and frees it. */
static void join_upload(struct flush_batch *b)
{
	struct pack_upload *u = b->up[0];
	pthread_join(u->thread, NULL);
	if (u->rc < 0 && b->up_rc == 0)
		b->up_rc = u->rc;
	retire_pack(b, &u->pack);
	free(u);
	memmove(b->up, b->up + 1, --b->nup * sizeof(b->up[0]));
}

/* Waits for every upload of the batch: 0 when all packs are in the store (C1: only then may
 * the metadata naming them be committed). */
static int finish_uploads(struct flush_batch *b)
{
	while (b->nup)
		join_upload(b);
	return b->up_rc;
}

/* Finishes the open pack and starts its upload (on this thread if no thread can be made).
 * Its entries join the batch now, so later blocks of this flush dedup against them; they
 * are committed only after finish_uploads() says every pack arrived. */
static int upload_pack(struct rfs_fs *fs, struct flush_batch *b)
{
	if (!b->pack_open)
		return 0;
	int rc = 0;
	if (b->pack.count == 0)
		goto out;
	rc = rfs_pack_finish(&b->pack);
	if (rc < 0)
		goto out;
	if (b->ne + b->pack.count > b->cape) {
		size_t nc = (b->ne + b->pack.count) * 2;
		struct rfs_pack_entry *e = realloc(b->entries, nc * sizeof(*e));
		if (!e) {
			rc = -ENOMEM;
			goto out;
		}
		b->entries = e;
		char(*p)[33] = realloc(b->entry_pack, nc * sizeof(*p));
		if (!p) {
			rc = -ENOMEM;
			goto out;
		}
		b->entry_pack = p;
		b->cape = nc;
	}
	for (uint32_t i = 0; i < b->pack.count; i++) {
		b->entries[b->ne] = b->pack.entries[i];
		memcpy(b->entry_pack[b->ne], b->pack.id, 33);
		b->ne++;
	}
	if (b->nup == RFS_UPLOADS_IN_FLIGHT)
		join_upload(b);
	for (size_t i = 0; i < b->nup && b->up_rc == 0; i++) /* a failed one need not be joined first */
		b->up_rc = __atomic_load_n(&b->up[i]->rc, __ATOMIC_ACQUIRE);
	if (b->up_rc < 0) {
		rc = b->up_rc; /* an earlier pack failed: this flush cannot commit, stop sealing */
		goto out;
	}
	struct pack_upload *u = malloc(sizeof(*u));
	if (u) {
		u->fs = fs;
		u->pack = b->pack;
		u->rc = 0;
		b->pack_open = 0; /* the thread owns the pack now */
		b->pack = (struct rfs_pack){0};
		if (pthread_create(&u->thread, NULL, upload_thread, u) == 0) {
			b->up[b->nup++] = u;
			return 0;
		}
		b->pack = u->pack;
		b->pack_open = 1;
		free(u);
	}
	rc = store_pack(fs, &b->pack);
out:
	if (b->pack_open)
		retire_pack(b, &b->pack);
	b->pack_open = 0;
	return rc;
}

static int block_known(struct rfs_fs *fs, struct flush_batch *b, const uint8_t *hash)
{
	for (uint32_t i = 0; b->pack_open && i < b->pack.count; i++)
		if (!memcmp(b->pack.entries[i].hash, hash, RFS_HASH_LEN))
			return 1;
	for (size_t i = 0; i < b->ne; i++)
		if (!memcmp(b->entries[i].hash, hash, RFS_HASH_LEN))
			return 1;
	struct rfs_block_loc loc;
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_block_get(fs->meta, hash, &loc);
	rfs_meta_unlock(fs->meta);
	return rc == 0;
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* Seals the dirty blocks of one node into the batch. Caller holds fs->flush_lock. */
static int seal_node(struct rfs_fs *fs, struct flush_batch *b, struct node *n, struct attr_snap *snap, uint8_t *buf)
{
	uint32_t bs = fs->format.block_size;
	pthread_mutex_lock(&n->lock);
	snap->n = n;
	snap->attr_dirty = n->attr_dirty;
	snap->attr_gen = n->attr_gen;
	snap->size = n->size;
	snap->mtime = n->mtime;
	snap->ctime = n->ctime;
	snap->atime_set = n->atime_set;
	snap->atime = n->atime;
	size_t count = n->nblocks;
	struct dblock *list = malloc((count ? count : 1) * sizeof(*list));
	if (!list) {
		pthread_mutex_unlock(&n->lock);
		return -ENOMEM;
	}
	if (count)
		memcpy(list, n->blocks, count * sizeof(*list));
	uint64_t size = n->size;
	pthread_mutex_unlock(&n->lock);
	int rc = 0;
	/* Each block is read under the node lock (a concurrent write cannot tear it) and only if it
	 * is still the generation snapshotted above (else it stays dirty for the next round);
	 * hashing, compression and uploads happen without the lock, and a full pack is uploaded at
	 * once, so a flush of a huge file holds at most one pack in memory. */
	for (size_t i = 0; i < count && rc == 0; i++) {
		struct sealed s = {.n = n, .idx = list[i].idx, .gen = list[i].gen};
		uint64_t start = s.idx * bs;
		if (start >= size) {
			s.hole = 1; /* beyond EOF (a truncate raced us): drop it */
			rc = batch_add_sealed(b, &s);
			continue;
		}
		uint32_t len = size - start < bs ? (uint32_t)(size - start) : bs;
		pthread_mutex_lock(&n->lock);
		struct dblock *d = dblock_find(n, s.idx);
		if (!d || d->gen != s.gen) {
			pthread_mutex_unlock(&n->lock);
			continue; /* written or truncated since the snapshot: next round */
		}
		rc = slot_read(fs, d, 0, len, buf);
		uint64_t slot = d->slot;
		pthread_mutex_unlock(&n->lock);
		if (rc < 0) {
			RFS_LOG(LOG_ERR, "cannot read staging region %" PRIu64 " in '%s' (inode %" PRIu64 "): %s", slot,
				fs->staging_dir, n->ino, strerror(-rc));
			break;
		}
		if (all_zero(buf, len)) {
			s.hole = 1;
		} else {
			rfs_sha256(buf, len, s.hash);
			if (!block_known(fs, b, s.hash)) {
				if (!b->pack_open)
					open_pack(fs, b);
				rc = rfs_pack_add(&b->pack, s.hash, buf, len, NULL);
			}
		}
		if (rc == 0)
			rc = batch_add_sealed(b, &s);
		if (rc == 0 && b->pack_open && b->pack.buf.len >= RFS_PACK_TARGET)
			rc = upload_pack(fs, b);
	}
	free(list);
	return rc;
}

/* Writes the metadata for everything sealed and uploaded. */
static int commit_batch(struct rfs_fs *fs, struct flush_batch *b, struct attr_snap *snaps, size_t nsnaps)
{
	int rc = rfs_meta_begin(fs->meta);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < b->ne && rc == 0; i++) {
		struct rfs_block_loc loc;
		memcpy(loc.pack, b->entry_pack[i], 33);
		loc.off = b->entries[i].offset;
		loc.slen = b->entries[i].stored_len;
		loc.rlen = b->entries[i].raw_len;
		loc.codec = b->entries[i].codec;
		loc.has_xsum = 1;
		loc.xsum = b->entries[i].xsum;
		rc = rfs_meta_block_put(fs->meta, b->entries[i].hash, &loc);
	}
	for (size_t i = 0; i < b->ns && rc == 0; i++) {
		struct sealed *s = &b->s[i];
		if (s->hole)
			rc = rfs_meta_bmap_del(fs->meta, s->n->ino, s->idx);
		else
			rc = rfs_meta_bmap_set(fs->meta, s->n->ino, s->idx, s->hash);
	}
	uint32_t bs = fs->format.block_size;
	for (size_t i = 0; i < nsnaps && rc == 0; i++) {
		struct attr_snap *sn = &snaps[i];
		if (!sn->attr_dirty)
			continue;
		struct rfs_attr a;
		rc = rfs_meta_get_attr(fs->meta, sn->n->ino, &a);
		if (rc == -ENOENT) { /* deleted meanwhile */
			rc = rfs_meta_bmap_truncate(fs->meta, sn->n->ino, 0);
			continue;
		}
		if (rc < 0)
			break;
		a.size = sn->size;
		a.mtime = sn->mtime;
		if (sn->ctime > a.ctime)
			a.ctime = sn->ctime;
		if (sn->atime_set)
			a.atime = sn->atime;
		rc = rfs_meta_put_attr(fs->meta, &a);
		if (rc == 0)
			rc = rfs_meta_bmap_truncate(fs->meta, sn->n->ino, (sn->size + bs - 1) / bs);
	}
	if (rc < 0) {
		rfs_meta_rollback(fs->meta);
		return rc;
	}
	return rfs_meta_commit(fs->meta);
}

/* Flushes the given nodes (references held by the caller). */
static int flush_nodes(struct rfs_fs *fs, struct node **nodes, size_t count)
{
	struct flush_batch b;
	memset(&b, 0, sizeof(b));
	struct attr_snap *snaps = calloc(count ? count : 1, sizeof(*snaps));
	uint8_t *buf = malloc(fs->format.block_size);
	int rc = 0;
	if (!snaps || !buf) {
		rc = -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&fs->flush_lock);
	for (size_t i = 0; i < count && rc == 0; i++)
		rc = seal_node(fs, &b, nodes[i], &snaps[i], buf);
	if (rc == 0)
		rc = upload_pack(fs, &b);
	int up_rc = finish_uploads(&b); /* C1: every pack is stored before the metadata below */
	if (rc == 0)
		rc = up_rc;
	if (rc == 0 && b.ne)
		rfs_crash_point("after-pack-upload");
	if (rc == 0)
		rc = commit_batch(fs, &b, snaps, count);
	if (rc == 0 && b.ne) {
		pthread_mutex_lock(&fs->upload_err_lock);
		fs->upload_err[0] = 0; /* packs reached the store: uploads work again */
		pthread_mutex_unlock(&fs->upload_err_lock);
	}
	if (rc == 0) {
		/* Retire what was sealed, unless written again meanwhile. */
		for (size_t i = 0; i < b.ns; i++) {
			struct node *n = b.s[i].n;
			pthread_mutex_lock(&n->lock);
			for (size_t j = 0; j < n->nblocks; j++) {
				if (n->blocks[j].idx == b.s[i].idx && n->blocks[j].gen == b.s[i].gen) {
					dblock_remove(fs, n, j);
					break;
				}
			}
			pthread_mutex_unlock(&n->lock);
		}
		for (size_t i = 0; i < count; i++) {
			struct node *n = nodes[i];
			pthread_mutex_lock(&n->lock);
			if (n->attr_gen == snaps[i].attr_gen)
				n->attr_dirty = n->atime_set = 0;
			update_dirty(n);
			pthread_mutex_unlock(&n->lock);
		}
	}
	pthread_mutex_unlock(&fs->flush_lock);
	if (b.pack_open)
		rfs_pack_free(&b.pack);
out:
	free(b.s);
	free(b.entries);
	free(b.entry_pack);
	while (b.nspare)
		rfs_buf_free(&b.spare[--b.nspare]);
	free(snaps);
	free(buf);
	if (rc == 0 && count)
		rfs_sync_kick(fs->sync);
	return rc;
}

/* Collects dirty nodes (with references). all: every dirty node; else only those closed
 * for writing or dirty for too long. */
static size_t collect_dirty(struct rfs_fs *fs, int all, struct node ***out)
{
	size_t n = 0, cap = 0;
	struct node **list = NULL;
	int64_t now = rfs_monotonic_ms();
	pthread_mutex_lock(&fs->nodes_lock);
	for (size_t i = 0; i < NODE_BUCKETS; i++) {
		for (struct node *x = fs->nodes[i]; x; x = x->hnext) {
			int dirty = __atomic_load_n(&x->dirty, __ATOMIC_ACQUIRE);
			int64_t since = __atomic_load_n(&x->dirty_since_ms, __ATOMIC_ACQUIRE);
			int due = all || x->writers == 0 || (since && now - since >= RFS_MAX_DIRTY_AGE_MS);
			if (!dirty || !due)
				continue;
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 64;
				struct node **nl = realloc(list, nc * sizeof(*nl));
				if (!nl)
					goto done;
				list = nl;
				cap = nc;
			}
			x->refs++;
			list[n++] = x;
		}
	}
done:
	pthread_mutex_unlock(&fs->nodes_lock);
	*out = list;
	return n;
}

int core_flush_dirty(struct rfs_fs *fs, int all)
{
	struct node **list;
	size_t n = collect_dirty(fs, all, &list);
	int rc = 0;
	/* bound the batch so one commit doesn't hold thousands of nodes' memory */
	for (size_t i = 0; i < n && rc == 0; i += 4096) {
		size_t c = n - i < 4096 ? n - i : 4096;
		rc = flush_nodes(fs, list + i, c);
	}
	for (size_t i = 0; i < n; i++)
		core_node_put(fs, list[i]);
	free(list);
	return rc;
}

void *core_bg_thread(void *arg)
{
	struct rfs_fs *fs = arg;
	int64_t last_flush = 0;
	pthread_mutex_lock(&fs->bg_lock);
	while (!fs->bg_stop) {
		if (!fs->bg_kick) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			int ms = fs->cfg.flush_interval_ms;
			ts.tv_sec += ms / 1000;
			ts.tv_nsec += (long)(ms % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&fs->bg_cond, &fs->bg_lock, &ts);
		}
		if (fs->bg_stop)
			break;
		pthread_mutex_unlock(&fs->bg_lock);
		/* Coalesce: closes arriving within a short window share one pack and one record. */
		int64_t wait = last_flush + RFS_COALESCE_MS - rfs_monotonic_ms();
		if (wait > 0) {
			struct timespec ts = {0, (long)wait * 1000000};
			nanosleep(&ts, NULL);
		}
		pthread_mutex_lock(&fs->bg_lock);
		fs->bg_kick = 0;
		pthread_mutex_unlock(&fs->bg_lock);
		last_flush = rfs_monotonic_ms();
		if (core_trash_on(fs) && !fs->cfg.read_only &&
		    last_flush - fs->last_purge_ms >= (fs->cfg.trash_seconds < 3600 ? 1000 : 60000)) {
			fs->last_purge_ms = last_flush;
			core_purge_trash(fs);
		}
		int rc = core_flush_dirty(fs, 0);
		if (rc < 0)
			RFS_LOG(LOG_WARNING, "background flush failed: %s; retrying", strerror(-rc));
		pthread_mutex_lock(&fs->bg_lock);
	}
	pthread_mutex_unlock(&fs->bg_lock);
	return NULL;
}

void core_bg_kick(struct rfs_fs *fs)
{
	pthread_mutex_lock(&fs->bg_lock);
	fs->bg_kick = 1;
	pthread_cond_signal(&fs->bg_cond);
	pthread_mutex_unlock(&fs->bg_lock);
}

int rfs_sync_all(struct rfs_fs *fs)
{
	int rc = core_flush_dirty(fs, 1);
	if (rc == 0)
		rc = rfs_sync_commit_now(fs->sync);
	return rc;
}

int rfs_fsync(struct rfs_fs *fs, uint64_t ino, int datasync)
{
	(void)datasync; /* metadata is needed to find the data again: both are published */
	struct node *n = core_node_get(fs, ino, 0);
	int rc = 0;
	if (n) {
		rc = flush_nodes(fs, &n, 1);
		core_node_put(fs, n);
	}
	if (rc == 0)
		rc = rfs_sync_commit_now(fs->sync);
	return rc;
}

/* ---------- truncate ---------- */

/* Changes a file's size: drops dirty blocks and block map rows past it and trims the block
 * it ends in, so bytes beyond the new size never come back on a later grow. */
static int do_truncate(struct rfs_fs *fs, uint64_t ino, uint64_t size)
{
	struct node *n = core_node_get(fs, ino, 1);
	if (!n)
		return -ENOMEM;
	pthread_mutex_lock(&fs->flush_lock);
	pthread_mutex_lock(&n->lock);
	uint32_t bs = fs->format.block_size;
	int rc = node_load_attr(fs, n);
	if (rc < 0)
		goto out;
	/* A shrink commits the new size first and drops the staged data past it after: a daemon
	 * killed in between must find neither the dropped data gone with the old size still in
	 * place (acknowledged writes lost) nor it resurrected past the new size. When staged data
	 * is to be dropped, the commit records a marker "trunc.<ino>" = "<size> <seq>": the
	 * recovery cuts every region of the inode written before it (sequence <= seq) to the size.
	 * The tail block's stored content is copied in before the commit (that loses nothing). */
	int shrink = size < n->size, marker = 0;
	uint64_t keep = (size + bs - 1) / bs; /* blocks still (partly) inside */
	uint32_t tail = (uint32_t)(size % bs);
	if (shrink && tail) {
		struct dblock *d;
		rc = make_dirty(fs, n, size / bs, &d);
		if (rc < 0)
			goto out;
		mark_dirty(n); /* even if the commit fails: the copy is flushed and its region freed */
		marker = d->len > tail;
	}
	for (size_t i = 0; shrink && i < n->nblocks; i++)
		marker |= n->blocks[i].idx >= keep;
	rc = rfs_meta_begin(fs->meta);
	if (rc < 0)
		goto out;
	struct rfs_attr a;
	rc = rfs_meta_get_attr(fs->meta, ino, &a);
	if (rc == 0) {
		int64_t now = rfs_now_ns();
		a.size = size;
		a.mtime = now;
		a.ctime = now;
		rc = rfs_meta_put_attr(fs->meta, &a);
		if (rc == 0)
			rc = rfs_meta_bmap_truncate(fs->meta, ino, keep);
		if (rc == 0 && marker) {
			char key[48], val[64];
			snprintf(key, sizeof(key), "trunc.%" PRIu64, ino);
			snprintf(val, sizeof(val), "%" PRIu64 " %" PRIu64, size,
				 __atomic_load_n(&fs->stage_seq, __ATOMIC_RELAXED));
			rc = rfs_meta_local_set_text(fs->meta, key, val);
		}
		if (rc == 0 && n->attr_dirty) {
			n->size = size;
			n->mtime = now;
			n->ctime = now;
			n->attr_gen++;
		}
	}
	if (rc < 0)
		rfs_meta_rollback(fs->meta);
	else
		rc = rfs_meta_commit(fs->meta);
	if (rc < 0)
		goto out;
	if (!n->attr_dirty)
		n->size = size;
	if (marker)
		rfs_crash_point("after-truncate-commit");
	if (shrink) {
		/* A block whose region cannot be freed stays, past the new end: reads never reach it
		 * and the flush drops it (a hole past EOF). */
		for (size_t i = 0; i < n->nblocks;) {
			if (n->blocks[i].idx < keep || dblock_remove(fs, n, i) < 0)
				i++;
		}
		struct dblock *d = tail ? dblock_find(n, size / bs) : NULL;
		if (d && slot_set_len(fs, ino, d, tail) < 0) {
			/* the size is committed: cut the block in memory (reads and the flush stop at
			 * len, a grow zeroes past it); a crash finds the marker, which cuts it too */
			RFS_LOG(LOG_ERR,
				"truncate of inode %" PRIu64 ": cannot cut its staged last block to %u bytes on the "
				"cache disk; cut in memory",
				ino, tail);
			if (d->len > tail)
				d->len = tail;
		}
		update_dirty(n);
	}
out:
	pthread_mutex_unlock(&n->lock);
	pthread_mutex_unlock(&fs->flush_lock);
	core_node_put(fs, n);
	return rc;
}

int rfs_setattr(struct rfs_fs *fs, uint64_t ino, const struct stat *in, int to_set, struct stat *out)
{
	int rc = core_check_writable(fs);
	if (rc < 0)
		return rc;
	if (ino == RFS_TRASH_INO)
		return -EPERM;
	if (to_set & RFS_SET_SIZE) {
		struct rfs_attr cur;
		rc = core_get_attr(fs, ino, &cur);
		if (rc < 0)
			return rc;
		if (S_ISDIR(cur.mode))
			return -EISDIR;
		if (!S_ISREG(cur.mode))
			return -EINVAL;
		rc = do_truncate(fs, ino, (uint64_t)in->st_size);
		if (rc < 0)
			return rc;
	}
	if (to_set & ~RFS_SET_SIZE) {
		struct node *n = core_node_get(fs, ino, 0);
		if (n)
			pthread_mutex_lock(&n->lock);
		if (n && n->attr_dirty && !(to_set & ~RFS_SET_TIMES)) {
			/* Times only, on a file whose size and mtime already wait in the node for the
			 * flush (`cp --preserve`, `tar x`, `rsync -t` right after writing): they join
			 * them there instead of costing a metadata transaction of their own, and are
			 * committed with them, as durable as the data they describe. */
			int64_t now = rfs_now_ns();
			if (to_set & RFS_SET_MTIME_NOW)
				n->mtime = now;
			else if (to_set & RFS_SET_MTIME)
				n->mtime = (int64_t)in->st_mtim.tv_sec * 1000000000 + in->st_mtim.tv_nsec;
			if (to_set & RFS_SET_ATIME_NOW)
				n->atime = now;
			else if (to_set & RFS_SET_ATIME)
				n->atime = (int64_t)in->st_atim.tv_sec * 1000000000 + in->st_atim.tv_nsec;
			if (to_set & (RFS_SET_ATIME | RFS_SET_ATIME_NOW))
				n->atime_set = 1;
			n->ctime = (to_set & RFS_SET_CTIME)
				       ? (int64_t)in->st_ctim.tv_sec * 1000000000 + in->st_ctim.tv_nsec
				       : now;
			n->attr_gen++;
			mark_dirty(n);
			rc = 0;
			goto unlock;
		}
		rc = rfs_meta_begin(fs->meta);
		if (rc < 0)
			goto unlock;
		struct rfs_attr a;
		rc = rfs_meta_get_attr(fs->meta, ino, &a);
		if (rc < 0) {
			rfs_meta_rollback(fs->meta);
			goto unlock;
		}
		int64_t now = rfs_now_ns();
		if (to_set & RFS_SET_MODE) {
			a.mode = (a.mode & S_IFMT) | (in->st_mode & 07777);
			rc = core_acl_chmod(fs, ino, a.mode);
			if (rc < 0) {
				rfs_meta_rollback(fs->meta);
				goto unlock;
			}
		}
		if (to_set & RFS_SET_UID)
			a.uid = in->st_uid;
		if (to_set & RFS_SET_GID)
			a.gid = in->st_gid;
		if (to_set & RFS_SET_ATIME_NOW)
			a.atime = now;
		else if (to_set & RFS_SET_ATIME)
			a.atime = (int64_t)in->st_atim.tv_sec * 1000000000 + in->st_atim.tv_nsec;
		if (to_set & RFS_SET_MTIME_NOW)
			a.mtime = now;
		else if (to_set & RFS_SET_MTIME)
			a.mtime = (int64_t)in->st_mtim.tv_sec * 1000000000 + in->st_mtim.tv_nsec;
		if (to_set & RFS_SET_CTIME)
			a.ctime = (int64_t)in->st_ctim.tv_sec * 1000000000 + in->st_ctim.tv_nsec;
		else
			a.ctime = now;
		if (n && n->attr_dirty) {
			/* the node's pending size/mtime would otherwise overwrite what we set */
			a.size = n->size;
			if (!(to_set & (RFS_SET_MTIME | RFS_SET_MTIME_NOW)))
				a.mtime = n->mtime;
			n->mtime = a.mtime;
			n->ctime = a.ctime;
			n->attr_gen++;
		}
		rc = rfs_meta_put_attr(fs->meta, &a);
		if (rc < 0)
			rfs_meta_rollback(fs->meta);
		else
			rc = rfs_meta_commit(fs->meta);
	unlock:
		if (n) {
			pthread_mutex_unlock(&n->lock);
			core_node_put(fs, n);
		}
		if (rc < 0)
			return rc;
	}
	return rfs_getattr(fs, ino, out);
}

/* ---------- open files ---------- */

int rfs_open(struct rfs_fs *fs, uint64_t ino, int flags)
{
	int acc = flags & O_ACCMODE;
	if (acc != O_RDONLY && fs->cfg.read_only)
		return -EROFS;
	/* close-to-open across hosts: see what others committed before this open */
	rfs_sync_pull_if_older(fs->sync, RFS_OPEN_PULL_AGE_MS);
	struct rfs_attr a;
	int rc = core_get_attr(fs, ino, &a);
	if (rc < 0)
		return rc;
	struct node *n = core_node_get(fs, ino, 1);
	if (!n)
		return -ENOMEM;
	pthread_mutex_lock(&fs->nodes_lock);
	n->opens++;
	if (acc != O_RDONLY)
		n->writers++;
	pthread_mutex_unlock(&fs->nodes_lock);
	core_node_put(fs, n);
	if ((flags & O_TRUNC) && acc != O_RDONLY && S_ISREG(a.mode) && a.size > 0) {
		rc = do_truncate(fs, ino, 0);
		if (rc < 0)
			rfs_release(fs, ino, flags);
	}
	return rc;
}

int rfs_release(struct rfs_fs *fs, uint64_t ino, int flags)
{
	struct node *n = core_node_get(fs, ino, 0);
	if (!n)
		return 0;
	pthread_mutex_lock(&fs->nodes_lock);
	n->opens--;
	if ((flags & O_ACCMODE) != O_RDONLY)
		n->writers--;
	int last = n->opens == 0;
	int writers = n->writers;
	pthread_mutex_unlock(&fs->nodes_lock);
	core_node_put(fs, n);
	struct rfs_attr cur;
	if (last) {
		/* cheap check first: almost every file closed still has a name */
		rfs_meta_lock(fs->meta);
		int named = rfs_meta_get_attr(fs->meta, ino, &cur) != 0 || cur.nlink > 0;
		rfs_meta_unlock(fs->meta);
		if (named)
			last = 0;
	}
	if (last) {
		/* an unlinked file whose last handle just closed: now it can go */
		int rc = rfs_meta_begin(fs->meta);
		if (rc < 0)
			return rc;
		struct rfs_attr a;
		int gone = 0;
		if (rfs_meta_get_attr(fs->meta, ino, &a) == 0 && a.nlink == 0 && !core_node_is_open(fs, ino) &&
		    rfs_meta_trash_has(fs->meta, ino) == 0) {
			rc = rfs_meta_delete_inode(fs->meta, ino);
			gone = rc == 0;
		}
		if (rc < 0) {
			rfs_meta_rollback(fs->meta);
			return rc;
		}
		rc = rfs_meta_commit(fs->meta);
		if (gone)
			core_discard_staging(fs, ino);
	}
	if (writers == 0)
		core_bg_kick(fs);
	return 0;
}

int rfs_fallocate(struct rfs_fs *fs, uint64_t ino, int mode, uint64_t off, uint64_t len)
{
	if (mode & ~FALLOC_FL_KEEP_SIZE)
		return -EOPNOTSUPP;
	if (core_check_writable(fs))
		return -EROFS;
	struct rfs_attr a;
	int rc = core_get_attr(fs, ino, &a);
	if (rc < 0)
		return rc;
	if (!S_ISREG(a.mode))
		return -ENODEV;
	/* Blocks are allocated on write in the store; only the size needs to change. */
	if ((mode & FALLOC_FL_KEEP_SIZE) || off + len <= a.size)
		return 0;
	return do_truncate(fs, ino, off + len);
}

/* ---------- crash recovery ---------- */

/* Makes block nd.idx of ino dirty with the data its region holds (nd.len bytes, last
 * written at mtime_ns), as a crash left it. Takes over the region. Returns 1 if recovered, 0
 * if the file is gone (the region is freed), or -errno. */
static int recover_block(struct rfs_fs *fs, uint64_t ino, struct dblock nd, int64_t mtime_ns)
{
	struct rfs_attr a;
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_get_attr(fs->meta, ino, &a);
	rfs_meta_unlock(fs->meta);
	if (rc == -ENOENT || (rc == 0 && !S_ISREG(a.mode))) {
		slot_release(fs, &nd); /* the file was deleted: its data can go */
		return 0;
	}
	if (rc < 0)
		return rc; /* the region stays for the next mount */
	struct node *n = core_node_get(fs, ino, 1);
	if (!n)
		return -ENOMEM;
	pthread_mutex_lock(&n->lock);
	node_load_attr(fs, n);
	struct dblock *old = dblock_find(n, nd.idx);
	if (old) {
		/* not made by a daemon (a block has one region at a time): keep the later data */
		RFS_LOG(LOG_WARNING,
			"staging regions %" PRIu64 " and %" PRIu64 " both hold block %" PRIu64 " of inode %" PRIu64
			"; keeping the later one",
			old->slot, nd.slot, nd.idx, ino);
		uint8_t h[RFS_STAGE_HDR];
		struct slot_hdr oh = {0};
		off_t base;
		int fd = slot_where(fs, old->slot, &base);
		if (rfs_pread_full(fd, h, sizeof(h), base) != (ssize_t)sizeof(h) ||
		    slot_header_parse(h, fs->format.block_size, &oh) < 0)
			oh.mtime_ns = INT64_MIN; /* unreadable: the other one wins */
		if (mtime_ns > oh.mtime_ns) {
			struct dblock keep = *old;
			*old = nd;
			old->gen = keep.gen;
			nd = keep;
		}
		slot_release(fs, &nd);
	} else {
		rc = dblock_add(n, &nd); /* on failure the region stays for the next mount */
	}
	if (rc == 0) {
		struct dblock *d = dblock_find(n, nd.idx);
		uint64_t end = d->idx * fs->format.block_size + d->len;
		if (end > n->size)
			n->size = end;
		if (mtime_ns > n->mtime)
			n->mtime = mtime_ns;
		n->attr_dirty = 1;
		n->attr_gen++;
		mark_dirty(n);
	}
	pthread_mutex_unlock(&n->lock);
	core_node_put(fs, n);
	return rc < 0 ? rc : 1;
}

/* A staging file of an earlier version (<ino>.<idx>, only data), moved into a region. */
static int recover_legacy(struct rfs_fs *fs, const char *path, uint64_t ino, uint64_t idx)
{
	struct stat st;
	uint8_t *buf = NULL;
	int rc = 0, in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &st) < 0) {
		rc = -errno;
		goto out;
	}
	size_t len = (size_t)st.st_size;
	if (len > fs->format.block_size)
		len = fs->format.block_size; /* nothing past a block was ever written there */
	buf = malloc(len ? len : 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	ssize_t r = rfs_pread_full(in, buf, len, 0);
	if (r < 0) {
		rc = (int)r;
		goto out;
	}
	struct dblock nd = {.idx = idx, .slot = slot_take(fs)};
	rc = slot_write(fs, ino, &nd, buf, (size_t)r, 0);
	if (rc < 0) {
		slot_release(fs, &nd);
		goto out;
	}
	rc = recover_block(fs, ino, nd, st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
	if (rc >= 0)
		unlink(path); /* its data is in a region now */
out:
	if (in >= 0)
		close(in);
	free(buf);
	return rc;
}

/* How many regions arena a spans (its size, rounded up to whole regions). */
static int arena_regions(struct rfs_fs *fs, int a, uint64_t *nreg)
{
	struct stat st;
	if (fstat(fs->arena_fd[a], &st) < 0)
		return -errno;
	*nreg = ((uint64_t)st.st_size + fs->slot_stride - 1) / fs->slot_stride;
	return 0;
}

/* Calls fn for every region of every arena holding staged data (torn or free regions are
 * skipped). Regions are found by reading each header up to the arena's size; holes read
 * fast. Stops at the first negative return of fn and returns it. */
static int arena_scan(struct rfs_fs *fs, int (*fn)(void *arg, uint64_t slot, const struct slot_hdr *sh), void *arg)
{
	for (int a = 0; a < RFS_ARENAS; a++) {
		uint64_t nreg = 0;
		int rc = arena_regions(fs, a, &nreg);
		if (rc < 0)
			return rc;
		for (uint64_t r = 0; r < nreg; r++) {
			uint8_t h[RFS_STAGE_HDR];
			struct slot_hdr sh;
			ssize_t got = rfs_pread_full(fs->arena_fd[a], h, sizeof(h), (off_t)(r * fs->slot_stride));
			if (got < 0)
				return (int)got;
			if (got != (ssize_t)sizeof(h) || slot_header_parse(h, fs->format.block_size, &sh) < 0)
				continue;
			int rc = fn(arg, r * RFS_ARENAS + (uint64_t)a, &sh);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

struct recover_ctx {
	struct rfs_fs *fs;
	uint8_t *used; /* per slot below slot_next: holds a recovered block */
	int found;
};

/* A region written before a truncate of its file that was committed but whose drops the
 * crash interrupted (do_truncate): cut to the truncated size. Returns the length to keep. */
static uint64_t recover_truncated(struct rfs_fs *fs, const struct slot_hdr *sh, uint64_t *size_out)
{
	char key[48], val[64] = "";
	unsigned long long size = 0, seq;
	snprintf(key, sizeof(key), "trunc.%" PRIu64, sh->ino);
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_local_get_text(fs->meta, key, val, sizeof(val));
	rfs_meta_unlock(fs->meta);
	if (rc < 0 || sscanf(val, "%llu %llu", &size, &seq) != 2 || sh->seq > seq)
		return sh->len;
	*size_out = size;
	uint64_t start = sh->idx * fs->format.block_size;
	uint64_t room = size > start ? size - start : 0;
	return sh->len < room ? sh->len : room;
}

static int recover_region(void *arg, uint64_t slot, const struct slot_hdr *sh)
{
	struct recover_ctx *c = arg;
	struct dblock nd = {.idx = sh->idx, .slot = slot, .len = sh->len};
	c->used[slot] = 1;
	uint64_t tsize = 0, keep = recover_truncated(c->fs, sh, &tsize);
	if (keep < sh->len) {
		RFS_LOG(LOG_NOTICE,
			"staged block %" PRIu64 " of inode %" PRIu64 " predates a truncate to %" PRIu64
			" bytes the crash interrupted: cut to it",
			sh->idx, sh->ino, tsize);
		if (keep == 0) /* a failure keeps the markers for the next mount: it must not come back */
			return slot_release(c->fs, &nd);
		/* the header first (a new sequence): the marker goes once the recovery is done */
		int rc = slot_set_len(c->fs, sh->ino, &nd, keep);
		if (rc < 0)
			return rc;
	}
	int rc = recover_block(c->fs, sh->ino, nd, sh->mtime_ns);
	if (rc > 0)
		c->found++;
	if (rc < 0)
		RFS_LOG(LOG_ERR, "cannot recover staged block %" PRIu64 " of inode %" PRIu64 ": %s", sh->idx, sh->ino,
			strerror(-rc));
	return rc < 0 ? rc : 0;
}

int core_recover_staging(struct rfs_fs *fs)
{
	/* the arenas first: legacy files moved into regions must not take a used one */
	uint64_t regions = 0;
	for (int a = 0; a < RFS_ARENAS; a++) {
		uint64_t nreg = 0;
		int rc = arena_regions(fs, a, &nreg);
		if (rc < 0)
			return rc;
		if (nreg > regions)
			regions = nreg;
	}
	struct recover_ctx c = {.fs = fs, .used = calloc(regions * RFS_ARENAS + 1, 1)};
	if (!c.used)
		return -ENOMEM;
	fs->slot_next = regions * RFS_ARENAS;
	int rc = arena_scan(fs, recover_region, &c);
	/* every other region below slot_next is free (a hole or an emptied header) */
	for (uint64_t slot = fs->slot_next; rc == 0 && slot-- > 0;)
		if (!c.used[slot])
			slot_put_free(fs, slot);
	free(c.used);
	if (rc < 0)
		return rc;
	DIR *d = opendir(fs->staging_dir);
	if (!d)
		return -errno;
	struct dirent *de;
	unsigned long long a, b;
	char extra;
	while (rc >= 0 && (de = readdir(d))) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", fs->staging_dir, de->d_name);
		if (!strncmp(de->d_name, "free.", 5)) {
			unlink(path); /* a pooled file of an earlier version */
			continue;
		}
		if (sscanf(de->d_name, "%llu.%llu%c", &a, &b, &extra) != 2)
			continue;
		rc = recover_legacy(fs, path, a, b);
		if (rc > 0)
			c.found++;
		if (rc < 0)
			RFS_LOG(LOG_ERR, "cannot recover staging file '%s': %s", path, strerror(-rc));
	}
	closedir(d);
	if (rc < 0)
		return rc;
	if (c.found)
		RFS_LOG(LOG_NOTICE, "recovered %d unsaved blocks from staging; uploading them", c.found);
	return c.found;
}

int core_arenas_open(struct rfs_fs *fs)
{
	/* a region: the header, then a whole block, page-aligned so regions punch cleanly */
	fs->slot_stride = ((uint64_t)RFS_STAGE_HDR + fs->format.block_size + 4095) / 4096 * 4096;
	for (int a = 0; a < RFS_ARENAS; a++)
		fs->arena_fd[a] = -1;
	for (int a = 0; a < RFS_ARENAS; a++) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/arena.%d", fs->staging_dir, a);
		fs->arena_fd[a] = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fs->arena_fd[a] < 0)
			return -errno;
	}
	return 0;
}

void core_arenas_close(struct rfs_fs *fs, int empty)
{
	for (int a = 0; a < RFS_ARENAS; a++) {
		if (fs->arena_fd[a] < 0)
			continue;
		if (empty && ftruncate(fs->arena_fd[a], 0) < 0)
			RFS_LOG(LOG_WARNING, "cannot empty staging arena %d in '%s': %s", a, fs->staging_dir,
				strerror(errno));
		close(fs->arena_fd[a]);
		fs->arena_fd[a] = -1;
	}
	free(fs->free_slots);
	fs->free_slots = NULL;
	fs->nfree = fs->capfree = 0;
}

struct summary_ctx {
	uint64_t bytes;
	int64_t oldest;
	uint64_t *inos;
	size_t n, cap;
	int failed; /* out of memory: the file count is low */
};

static int summary_region(void *arg, uint64_t slot, const struct slot_hdr *sh)
{
	(void)slot;
	struct summary_ctx *c = arg;
	c->bytes += sh->len;
	if (!c->oldest || sh->mtime_ns < c->oldest)
		c->oldest = sh->mtime_ns;
	if (c->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 64;
		uint64_t *ni = realloc(c->inos, nc * sizeof(*ni));
		if (!ni) {
			c->failed = 1;
			return 0;
		}
		c->inos = ni;
		c->cap = nc;
	}
	c->inos[c->n++] = sh->ino;
	return 0;
}

static int cmp_ino(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int core_staged_summary(struct rfs_fs *fs, uint64_t *bytes, uint64_t *files, int64_t *oldest_ns)
{
	struct summary_ctx c = {0};
	int rc = arena_scan(fs, summary_region, &c);
	*files = 0;
	if (c.n) {
		qsort(c.inos, c.n, sizeof(*c.inos), cmp_ino);
		*files = 1;
		for (size_t i = 1; i < c.n; i++)
			*files += c.inos[i] != c.inos[i - 1];
	}
	free(c.inos);
	*bytes = c.bytes;
	*oldest_ns = c.oldest;
	return rc < 0 ? rc : c.failed ? -ENOMEM : 0;
}
