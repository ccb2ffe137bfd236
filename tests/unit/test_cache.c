/* Unit tests for fs/cache.c: the SSD block cache (put/open, LRU eviction, rescan, stats, drop). */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "check.h"
#include "fs/cache.h"

#define BLK 1000

/* Block i: BLK bytes of a pattern unique to i, and its hash. */
static void make_block(int i, uint8_t data[BLK], uint8_t hash[RFS_HASH_LEN])
{
	for (int j = 0; j < BLK; j++)
		data[j] = (uint8_t)(i * 31 + j * 7 + (j >> 8));
	rfs_sha256(data, BLK, hash);
}

static int put_block(struct rfs_cache *c, int i)
{
	uint8_t data[BLK], hash[RFS_HASH_LEN];
	make_block(i, data, hash);
	return rfs_cache_put(c, hash, data, BLK);
}

static int has_block(struct rfs_cache *c, int i)
{
	uint8_t data[BLK], hash[RFS_HASH_LEN];
	make_block(i, data, hash);
	return rfs_cache_has(c, hash);
}

/* Opens block i and checks its content; returns 1 if it was there and right. */
static int read_block(struct rfs_cache *c, int i)
{
	uint8_t data[BLK], hash[RFS_HASH_LEN], got[BLK + 1];
	make_block(i, data, hash);
	int fd = rfs_cache_open_block(c, hash);
	if (fd < 0)
		return 0;
	ssize_t n = rfs_pread_full(fd, got, sizeof(got), 0);
	close(fd);
	return CHECK_EQ(n, BLK) && !memcmp(got, data, BLK);
}

/* Counts regular files under DIR/blocks (what is really on disk). */
static int files_on_disk(const char *dir)
{
	char top[4200];
	snprintf(top, sizeof(top), "%s/blocks", dir);
	DIR *d = opendir(top);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char sub[4400];
		snprintf(sub, sizeof(sub), "%s/%s", top, de->d_name);
		DIR *s = opendir(sub);
		if (!s)
			continue;
		struct dirent *fe;
		while ((fe = readdir(s)))
			if (strcmp(fe->d_name, ".") && strcmp(fe->d_name, ".."))
				n++;
		closedir(s);
	}
	closedir(d);
	return n;
}

static void cache_put_open_round_trip(void)
{
	char dir[4096];
	REQUIRE(check_tmpdir(dir, sizeof(dir)) == 0);
	struct rfs_cache *c = NULL;
	if (!CHECK_OK(rfs_cache_open(dir, 1 << 20, &c)))
		goto out;
	CHECK(!has_block(c, 1));
	CHECK(!read_block(c, 1));
	CHECK_OK(put_block(c, 1));
	CHECK(has_block(c, 1));
	CHECK(read_block(c, 1));
	CHECK_OK(put_block(c, 1)); /* again: no-op */
	CHECK(read_block(c, 1));

	/* the file is where the header says: DIR/blocks/<xx>/<hash> */
	uint8_t data[BLK], hash[RFS_HASH_LEN];
	char hex[2 * RFS_HASH_LEN + 1], path[4400];
	make_block(1, data, hash);
	rfs_hex(hash, RFS_HASH_LEN, hex);
	snprintf(path, sizeof(path), "%s/blocks/%.2s/%s", dir, hex, hex);
	struct stat st;
	CHECK(stat(path, &st) == 0 && st.st_size == BLK);
	CHECK_EQ(files_on_disk(dir), 1);

	/* an empty block */
	uint8_t eh[RFS_HASH_LEN];
	rfs_sha256("", 0, eh);
	CHECK_OK(rfs_cache_put(c, eh, "", 0));
	int fd = rfs_cache_open_block(c, eh);
	if (CHECK_OK(fd)) {
		char x;
		CHECK_EQ(read(fd, &x, 1), 0);
		close(fd);
	}
	struct rfs_cache_stats st2;
	rfs_cache_get_stats(c, &st2);
	CHECK_EQ(st2.blocks, 2);
	CHECK_EQ(st2.used, BLK);
	rfs_cache_close(c);
out:
	check_rmtree(dir);
}

static void cache_lru_eviction_order(void)
{
	char dir[4096];
	REQUIRE(check_tmpdir(dir, sizeof(dir)) == 0);
	struct rfs_cache *c = NULL;
	if (!CHECK_OK(rfs_cache_open(dir, 3 * BLK, &c)))
		goto out;
	CHECK_OK(put_block(c, 1));
	CHECK_OK(put_block(c, 2));
	CHECK_OK(put_block(c, 3));
	/* used: 1 is now the most recent, 2 the oldest */
	CHECK(read_block(c, 1));
	CHECK_OK(put_block(c, 4));
	CHECK(has_block(c, 1));
	CHECK(!has_block(c, 2));
	CHECK(has_block(c, 3));
	CHECK(has_block(c, 4));
	/* has() does not count as a use: 3 is the oldest now */
	CHECK_OK(put_block(c, 5));
	CHECK(!has_block(c, 3));
	CHECK(has_block(c, 1));
	CHECK(has_block(c, 4));
	CHECK(has_block(c, 5));
	/* evicted files are gone from disk too */
	CHECK_EQ(files_on_disk(dir), 3);
	CHECK(!read_block(c, 2));
	CHECK(read_block(c, 1));
	CHECK(read_block(c, 4));
	CHECK(read_block(c, 5));
	struct rfs_cache_stats st;
	rfs_cache_get_stats(c, &st);
	CHECK_EQ(st.evictions, 2);
	CHECK_EQ(st.used, 3 * BLK);
	CHECK(st.used <= st.limit);
	rfs_cache_close(c);
out:
	check_rmtree(dir);
}

/* An fd handed out stays readable after the block is evicted. */
static void cache_open_fd_survives_eviction(void)
{
	char dir[4096];
	REQUIRE(check_tmpdir(dir, sizeof(dir)) == 0);
	struct rfs_cache *c = NULL;
	if (!CHECK_OK(rfs_cache_open(dir, BLK, &c)))
		goto out;
	uint8_t data[BLK], hash[RFS_HASH_LEN], got[BLK];
	make_block(1, data, hash);
	CHECK_OK(rfs_cache_put(c, hash, data, BLK));
	int fd = rfs_cache_open_block(c, hash);
	if (CHECK_OK(fd)) {
		CHECK_OK(put_block(c, 2)); /* evicts 1 */
		CHECK(!has_block(c, 1));
		CHECK_EQ(rfs_pread_full(fd, got, BLK, 0), BLK);
		CHECK_MEM(got, data, BLK);
		close(fd);
	}
	rfs_cache_close(c);
out:
	check_rmtree(dir);
}

static void cache_reopen_restores_index(void)
{
	char dir[4096];
	REQUIRE(check_tmpdir(dir, sizeof(dir)) == 0);
	struct rfs_cache *c = NULL;
	if (!CHECK_OK(rfs_cache_open(dir, 10 * BLK, &c)))
		goto out;
	for (int i = 0; i < 5; i++)
		CHECK_OK(put_block(c, i));
	rfs_cache_close(c);
	c = NULL;

	/* leftovers a crash could leave: a temp file (removed) and a stray name (ignored) */
	uint8_t data[BLK], hash[RFS_HASH_LEN];
	char hex[2 * RFS_HASH_LEN + 1], path[4400], tmp[4400];
	make_block(0, data, hash);
	rfs_hex(hash, RFS_HASH_LEN, hex);
	snprintf(tmp, sizeof(tmp), "%s/blocks/%.2s/.tmp-0123456789abcdef", dir, hex);
	CHECK_OK(rfs_write_file_atomic(tmp, "partial", 7, 0600));
	snprintf(path, sizeof(path), "%s/blocks/%.2s/not-a-hash", dir, hex);
	CHECK_OK(rfs_write_file_atomic(path, "x", 1, 0600));

	if (!CHECK_OK(rfs_cache_open(dir, 10 * BLK, &c)))
		goto out;
	struct rfs_cache_stats st;
	rfs_cache_get_stats(c, &st);
	CHECK_EQ(st.blocks, 5);
	CHECK_EQ(st.used, 5 * BLK);
	CHECK_EQ(st.limit, 10 * BLK);
	CHECK_EQ(st.hits, 0);
	CHECK_EQ(st.misses, 0);
	CHECK_EQ(st.evictions, 0);
	for (int i = 0; i < 5; i++)
		CHECK(read_block(c, i));
	struct stat sb;
	CHECK(stat(tmp, &sb) < 0 && errno == ENOENT);
	rfs_cache_close(c);
	c = NULL;

	/* reopening with a smaller limit evicts down to it */
	if (!CHECK_OK(rfs_cache_open(dir, 2 * BLK, &c)))
		goto out;
	rfs_cache_get_stats(c, &st);
	CHECK_EQ(st.blocks, 2);
	CHECK_EQ(st.used, 2 * BLK);
	CHECK_EQ(st.evictions, 3);
	CHECK_EQ(files_on_disk(dir), 3); /* 2 blocks + the stray file */
	rfs_cache_close(c);
out:
	check_rmtree(dir);
}

static void cache_stats_hits_misses(void)
{
	char dir[4096];
	REQUIRE(check_tmpdir(dir, sizeof(dir)) == 0);
	struct rfs_cache *c = NULL;
	if (!CHECK_OK(rfs_cache_open(dir, 2 * BLK, &c)))
		goto out;
	struct rfs_cache_stats st;
	rfs_cache_get_stats(c, &st);
	CHECK_EQ(st.used, 0);
	CHECK_EQ(st.blocks, 0);
	CHECK_EQ(st.limit, 2 * BLK);
	/* lookups count nothing: the reader counts what it found, once per read */
	CHECK(!read_block(c, 1));
	CHECK(!has_block(c, 1));
	CHECK_OK(put_block(c, 1));
	CHECK(read_block(c, 1));
	rfs_cache_count(c, 0);
	rfs_cache_count(c, 1);
	rfs_cache_count(c, 1);
	CHECK_OK(put_block(c, 2));
	CHECK_OK(put_block(c, 3)); /* evicts 1 */
	CHECK(!read_block(c, 1));
	CHECK(has_block(c, 2));
	/* read-ahead advice: a cached block's file, no LRU change */
	uint8_t adv_data[BLK], adv_hash[RFS_HASH_LEN];
	make_block(2, adv_data, adv_hash);
	CHECK_OK(rfs_cache_advise(c, adv_hash));
	make_block(1, adv_data, adv_hash);
	CHECK_EQ(rfs_cache_advise(c, adv_hash), -ENOENT);
	rfs_cache_get_stats(c, &st);
	CHECK_EQ(st.hits, 2);
	CHECK_EQ(st.misses, 1);
	CHECK_EQ(st.evictions, 1);
	CHECK_EQ(st.blocks, 2);
	CHECK_EQ(st.used, 2 * BLK);

	/* a block file deleted behind the cache's back: not found, and the entry is dropped */
	uint8_t data[BLK], hash[RFS_HASH_LEN];
	char hex[2 * RFS_HASH_LEN + 1], path[4400];
	make_block(2, data, hash);
	rfs_hex(hash, RFS_HASH_LEN, hex);
	snprintf(path, sizeof(path), "%s/blocks/%.2s/%s", dir, hex, hex);
	CHECK(unlink(path) == 0);
	CHECK_ERR(rfs_cache_open_block(c, hash), ENOENT);
	CHECK(!has_block(c, 2));
	rfs_cache_get_stats(c, &st);
	CHECK_EQ(st.hits, 2);
	CHECK_EQ(st.misses, 1);
	CHECK_EQ(st.blocks, 1);
	CHECK_EQ(st.used, BLK);
	rfs_cache_close(c);
out:
	check_rmtree(dir);
}

static void cache_block_larger_than_limit(void)
{
	char dir[4096];
	REQUIRE(check_tmpdir(dir, sizeof(dir)) == 0);
	struct rfs_cache *c = NULL;
	if (!CHECK_OK(rfs_cache_open(dir, BLK - 1, &c)))
		goto out;
	uint8_t data[BLK], hash[RFS_HASH_LEN];
	make_block(1, data, hash);
	CHECK_ERR(rfs_cache_put(c, hash, data, BLK), EFBIG);
	CHECK(!rfs_cache_has(c, hash));
	rfs_sha256(data, BLK - 1, hash);
	CHECK_OK(rfs_cache_put(c, hash, data, BLK - 1)); /* exactly the limit fits */
	struct rfs_cache_stats st;
	rfs_cache_get_stats(c, &st);
	CHECK_EQ(st.used, BLK - 1);
	CHECK_EQ(st.evictions, 0);
	rfs_cache_close(c);
out:
	check_rmtree(dir);
}

static void cache_many_blocks(void)
{
	/* enough entries to grow the hash table (starts at 4096 buckets, grows past 2 per bucket) */
	char dir[4096];
	REQUIRE(check_tmpdir(dir, sizeof(dir)) == 0);
	struct rfs_cache *c = NULL;
	if (!CHECK_OK(rfs_cache_open(dir, 1ULL << 30, &c)))
		goto out;
	const int n = 9000;
	for (int i = 0; i < n; i++) {
		uint8_t hash[RFS_HASH_LEN];
		uint32_t v = (uint32_t)i;
		rfs_sha256(&v, sizeof(v), hash);
		if (!CHECK_OK(rfs_cache_put(c, hash, &v, sizeof(v))))
			break;
	}
	struct rfs_cache_stats st;
	rfs_cache_get_stats(c, &st);
	CHECK_EQ(st.blocks, n);
	CHECK_EQ(st.used, n * 4);
	int missing = 0;
	for (int i = 0; i < n; i++) {
		uint8_t hash[RFS_HASH_LEN];
		uint32_t v = (uint32_t)i;
		rfs_sha256(&v, sizeof(v), hash);
		missing += !rfs_cache_has(c, hash);
	}
	CHECK_EQ(missing, 0);
	rfs_cache_close(c);
out:
	check_rmtree(dir);
}

static void cache_drop_forgets_a_block(void)
{
	/* a dropped block's file is gone and its bytes no longer count; the next put of it
	 * writes a new file (a put of a block the cache has is skipped) */
	char dir[4096];
	REQUIRE(check_tmpdir(dir, sizeof(dir)) == 0);
	struct rfs_cache *c = NULL;
	if (!CHECK_OK(rfs_cache_open(dir, 10 * BLK, &c)))
		goto out;
	CHECK_OK(put_block(c, 1));
	CHECK_OK(put_block(c, 2));
	uint8_t data[BLK], hash[RFS_HASH_LEN];
	make_block(1, data, hash);
	rfs_cache_drop(c, hash);
	CHECK(!has_block(c, 1));
	CHECK(has_block(c, 2));
	CHECK_EQ(rfs_cache_open_block(c, hash), -ENOENT);
	struct rfs_cache_stats st;
	rfs_cache_get_stats(c, &st);
	CHECK_EQ(st.blocks, 1);
	CHECK_EQ(st.used, BLK);
	rfs_cache_drop(c, hash); /* dropping what is not there is a no-op */
	CHECK_OK(put_block(c, 1));
	CHECK(read_block(c, 1));
	rfs_cache_close(c);
	/* and the index rebuilt from the directory agrees */
	if (!CHECK_OK(rfs_cache_open(dir, 10 * BLK, &c)))
		goto out;
	rfs_cache_get_stats(c, &st);
	CHECK_EQ(st.blocks, 2);
	rfs_cache_close(c);
out:
	check_rmtree(dir);
}

int main(int argc, char **argv)
{
	check_init(argc, argv);
	RUN(cache_put_open_round_trip);
	RUN(cache_lru_eviction_order);
	RUN(cache_open_fd_survives_eviction);
	RUN(cache_reopen_restores_index);
	RUN(cache_stats_hits_misses);
	RUN(cache_block_larger_than_limit);
	RUN(cache_many_blocks);
	RUN(cache_drop_forgets_a_block);
	return check_done();
}
