/* Unit tests for fs/ranges.c: pack ranges in the SSD cache (put, covering lookups, the index
 * surviving a reopen, ranges the block cache evicted disappearing from the index). */
#include <fcntl.h>

#include "check.h"
#include "fs/ranges.h"

static void fill(uint8_t *p, size_t n, uint64_t start)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((start + i) * 7);
}

/* Reads [off, off+len) of pack through the index; 1 if the bytes are those of fill(). */
static int read_back(struct rfs_ranges *r, const char *pack, uint64_t off, uint32_t len)
{
	uint64_t start = 0;
	int fd = rfs_ranges_open_covering(r, pack, off, len, &start);
	if (fd < 0)
		return 0;
	uint8_t got[4096], want[4096];
	ssize_t n = pread(fd, got, len, (off_t)(off - start));
	close(fd);
	fill(want, len, off);
	return n == (ssize_t)len && !memcmp(got, want, len);
}

static void ranges_put_and_cover(void)
{
	char dir[4096];
	REQUIRE(check_tmpdir(dir, sizeof(dir)) == 0);
	struct rfs_cache *c = NULL;
	struct rfs_ranges *r = NULL;
	if (!CHECK_OK(rfs_cache_open(dir, 1 << 20, &c)) || !CHECK_OK(rfs_ranges_open(c, dir, &r)))
		goto out;
	uint8_t buf[10000];
	fill(buf, 10000, 5000);
	CHECK_OK(rfs_ranges_put(r, "packA", 5000, buf, 10000));
	CHECK(rfs_ranges_has(r, "packA", 5000, 10000));
	CHECK(rfs_ranges_has(r, "packA", 7000, 100));
	CHECK(!rfs_ranges_has(r, "packA", 4999, 2));   /* starts before the range */
	CHECK(!rfs_ranges_has(r, "packA", 14999, 2));  /* ends after it */
	CHECK(!rfs_ranges_has(r, "packB", 7000, 100)); /* another pack */
	CHECK(read_back(r, "packA", 7000, 100));
	CHECK(read_back(r, "packA", 14000, 1000));
	uint64_t st;
	CHECK_ERR(rfs_ranges_open_covering(r, "packB", 7000, 100, &st), ENOENT);
	/* the index survives a reopen of the cache */
	rfs_ranges_close(r);
	rfs_cache_close(c);
	r = NULL;
	c = NULL;
	if (!CHECK_OK(rfs_cache_open(dir, 1 << 20, &c)) || !CHECK_OK(rfs_ranges_open(c, dir, &r)))
		goto out;
	CHECK(read_back(r, "packA", 7000, 100));
out:
	rfs_ranges_close(r);
	rfs_cache_close(c);
	check_rmtree(dir);
}

static void ranges_evicted_are_forgotten(void)
{
	char dir[4096];
	REQUIRE(check_tmpdir(dir, sizeof(dir)) == 0);
	struct rfs_cache *c = NULL;
	struct rfs_ranges *r = NULL;
	/* room for two 3000-byte ranges */
	if (!CHECK_OK(rfs_cache_open(dir, 7000, &c)) || !CHECK_OK(rfs_ranges_open(c, dir, &r)))
		goto out;
	uint8_t buf[3000];
	for (int i = 0; i < 3; i++) {
		fill(buf, 3000, (uint64_t)i * 3000);
		CHECK_OK(rfs_ranges_put(r, "p", (uint64_t)i * 3000, buf, 3000));
	}
	CHECK(!rfs_ranges_has(r, "p", 0, 10)); /* the first was evicted */
	CHECK(rfs_ranges_has(r, "p", 3000, 10));
	CHECK(read_back(r, "p", 6000, 3000));
	/* a reopen keeps only what the cache holds, and a damaged index line is ignored */
	rfs_ranges_close(r);
	rfs_cache_close(c);
	r = NULL;
	c = NULL;
	char idx[4200];
	snprintf(idx, sizeof(idx), "%s/ranges.idx", dir);
	int fd = open(idx, O_WRONLY | O_APPEND);
	if (CHECK(fd >= 0)) {
		const char *junk = "00112233 p 0 3000\nnot a line at all\n";
		CHECK_EQ(write(fd, junk, strlen(junk)), (long long)strlen(junk));
		close(fd);
	}
	if (!CHECK_OK(rfs_cache_open(dir, 7000, &c)) || !CHECK_OK(rfs_ranges_open(c, dir, &r)))
		goto out;
	CHECK(!rfs_ranges_has(r, "p", 0, 10));
	CHECK(read_back(r, "p", 3000, 3000));
	CHECK(read_back(r, "p", 6000, 3000));
out:
	rfs_ranges_close(r);
	rfs_cache_close(c);
	check_rmtree(dir);
}

int main(int argc, char **argv)
{
	check_init(argc, argv);
	RUN(ranges_put_and_cover);
	RUN(ranges_evicted_are_forgotten);
	return check_done();
}
