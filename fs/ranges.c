#include "fs/ranges.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NBUCKETS 4096

struct range {
	uint64_t start;
	uint32_t len;
	uint8_t key[RFS_HASH_LEN];
};

struct pack_ranges {
	char pack[33];
	struct range *v;
	size_t n, cap;
	struct pack_ranges *next;
};

struct rfs_ranges {
	struct rfs_cache *cache;
	char idx_path[PATH_MAX];
	pthread_mutex_t lock;
	/* below: protected by lock */
	struct pack_ranges *buckets[NBUCKETS];
	int idx_fd; /* ranges.idx, O_APPEND; -1 if it cannot be written */
};

static size_t bucket_of(const char *pack)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const char *p = pack; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return h % NBUCKETS;
}

static void range_key(const char *pack, uint64_t start, uint32_t len, uint8_t key[RFS_HASH_LEN])
{
	char s[128];
	int n = snprintf(s, sizeof(s), "rfs-range %s %" PRIu64 " %u", pack, start, len);
	rfs_sha256(s, (size_t)n, key);
}

static struct pack_ranges *find_pack(struct rfs_ranges *r, const char *pack, int create)
{
	size_t b = bucket_of(pack);
	for (struct pack_ranges *p = r->buckets[b]; p; p = p->next)
		if (!strcmp(p->pack, pack))
			return p;
	if (!create)
		return NULL;
	struct pack_ranges *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	snprintf(p->pack, sizeof(p->pack), "%s", pack);
	p->next = r->buckets[b];
	r->buckets[b] = p;
	return p;
}

/* Adds a range to the in-memory index unless it is there. Caller holds lock. */
static int add_locked(struct rfs_ranges *r, const char *pack, uint64_t start, uint32_t len,
		      const uint8_t key[RFS_HASH_LEN])
{
	struct pack_ranges *p = find_pack(r, pack, 1);
	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < p->n; i++)
		if (p->v[i].start == start && p->v[i].len == len)
			return 0;
	if (p->n == p->cap) {
		size_t nc = p->cap ? p->cap * 2 : 4;
		struct range *nv = realloc(p->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		p->v = nv;
		p->cap = nc;
	}
	p->v[p->n].start = start;
	p->v[p->n].len = len;
	memcpy(p->v[p->n].key, key, RFS_HASH_LEN);
	p->n++;
	return 1;
}

static int write_line(int fd, const char *pack, uint64_t start, uint32_t len, const uint8_t key[RFS_HASH_LEN])
{
	char hex[2 * RFS_HASH_LEN + 1], line[256];
	rfs_hex(key, RFS_HASH_LEN, hex);
	int n = snprintf(line, sizeof(line), "%s %s %" PRIu64 " %u\n", hex, pack, start, len);
	return write(fd, line, (size_t)n) == n ? 0 : -EIO;
}

/* Loads ranges.idx, keeping the ranges the cache still holds, and rewrites it compacted. */
static void load_index(struct rfs_ranges *r)
{
	FILE *f = fopen(r->idx_path, "r");
	if (f) {
		char hex[80], pack[40];
		uint64_t start;
		unsigned len;
		while (fscanf(f, "%79s %39s %" SCNu64 " %u", hex, pack, &start, &len) == 4) {
			uint8_t key[RFS_HASH_LEN], want[RFS_HASH_LEN];
			if (strlen(pack) > 32 || rfs_unhex(hex, key, RFS_HASH_LEN) < 0)
				continue;
			range_key(pack, start, len, want);
			if (memcmp(key, want, RFS_HASH_LEN) || !rfs_cache_has(r->cache, key))
				continue;
			add_locked(r, pack, start, len, key);
		}
		fclose(f);
	}
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof(tmp), "%s.tmp", r->idx_path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	int rc = 0;
	for (size_t b = 0; b < NBUCKETS && rc == 0; b++)
		for (struct pack_ranges *p = r->buckets[b]; p && rc == 0; p = p->next)
			for (size_t i = 0; i < p->n && rc == 0; i++)
				rc = write_line(fd, p->pack, p->v[i].start, p->v[i].len, p->v[i].key);
	close(fd);
	if (rc < 0 || rename(tmp, r->idx_path) < 0)
		unlink(tmp);
}

int rfs_ranges_open(struct rfs_cache *cache, const char *dir, struct rfs_ranges **out)
{
	struct rfs_ranges *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->cache = cache;
	pthread_mutex_init(&r->lock, NULL);
	snprintf(r->idx_path, sizeof(r->idx_path), "%s/ranges.idx", dir);
	load_index(r);
	r->idx_fd = open(r->idx_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	*out = r;
	return 0;
}

void rfs_ranges_close(struct rfs_ranges *r)
{
	if (!r)
		return;
	for (size_t b = 0; b < NBUCKETS; b++) {
		struct pack_ranges *p = r->buckets[b];
		while (p) {
			struct pack_ranges *next = p->next;
			free(p->v);
			free(p);
			p = next;
		}
	}
	if (r->idx_fd >= 0)
		close(r->idx_fd);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

int rfs_ranges_put(struct rfs_ranges *r, const char *pack, uint64_t start, const void *data, uint32_t len)
{
	uint8_t key[RFS_HASH_LEN];
	range_key(pack, start, len, key);
	int rc = rfs_cache_put(r->cache, key, data, len);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&r->lock);
	rc = add_locked(r, pack, start, len, key);
	/* the line follows the cache file: an index line never names a range never written */
	if (rc == 1)
		rc = r->idx_fd >= 0 ? write_line(r->idx_fd, pack, start, len, key) : 0;
	pthread_mutex_unlock(&r->lock);
	return rc < 0 ? rc : 0;
}

/* Finds a covering range the cache still holds; drops evicted ones. Caller holds lock. */
static struct range *covering_locked(struct rfs_ranges *r, const char *pack, uint64_t off, uint32_t len)
{
	struct pack_ranges *p = find_pack(r, pack, 0);
	if (!p)
		return NULL;
	for (size_t i = 0; i < p->n;) {
		struct range *g = &p->v[i];
		if (off < g->start || off + len > g->start + g->len) {
			i++;
			continue;
		}
		if (rfs_cache_has(r->cache, g->key))
			return g;
		p->v[i] = p->v[--p->n]; /* evicted by the block cache */
	}
	return NULL;
}

int rfs_ranges_open_covering(struct rfs_ranges *r, const char *pack, uint64_t off, uint32_t len, uint64_t *start)
{
	pthread_mutex_lock(&r->lock);
	struct range *g = covering_locked(r, pack, off, len);
	uint8_t key[RFS_HASH_LEN];
	if (g) {
		memcpy(key, g->key, RFS_HASH_LEN);
		*start = g->start;
	}
	pthread_mutex_unlock(&r->lock);
	if (!g)
		return -ENOENT;
	return rfs_cache_open_block(r->cache, key); /* -ENOENT if evicted meanwhile */
}

int rfs_ranges_has(struct rfs_ranges *r, const char *pack, uint64_t off, uint32_t len)
{
	pthread_mutex_lock(&r->lock);
	int has = covering_locked(r, pack, off, len) != NULL;
	pthread_mutex_unlock(&r->lock);
	return has;
}
