/* Unit tests for fs/format.c: the workspace format record roamfs.json on a file store. */
#include "backends/backend.h"
#include "check.h"
#include "fs/format.h"

struct fixture {
	char dir[4096];
	struct rfs_store *s;
};

static int setup(struct fixture *f)
{
	f->s = NULL;
	if (check_tmpdir(f->dir, sizeof(f->dir)) < 0)
		return -1;
	char err[512] = "";
	if (!CHECK_OK(rfs_store_open(f->dir, &f->s, err, sizeof(err)))) {
		fprintf(stderr, "  %s\n", err);
		check_rmtree(f->dir);
		return -1;
	}
	return 0;
}

static void teardown(struct fixture *f)
{
	rfs_store_close(f->s);
	check_rmtree(f->dir);
}

static const struct rfs_format fmt1 = {
    .version = RFS_FORMAT_VERSION, .uuid = "0123456789abcdef0123456789abcdef", .block_size = 4U << 20, .compress = 1};

static void put_record(struct rfs_store *s, const char *body)
{
	CHECK_OK(rfs_store_put(s, "roamfs.json", body, strlen(body)));
}

static void format_round_trip(void)
{
	struct fixture f;
	REQUIRE(setup(&f) == 0);
	char err[1024] = "";
	CHECK_OK(rfs_format_write(f.s, &fmt1, 0, err, sizeof(err)));
	struct rfs_format got;
	memset(&got, 0xee, sizeof(got));
	if (CHECK_OK(rfs_format_read(f.s, &got, err, sizeof(err)))) {
		CHECK_EQ(got.version, RFS_FORMAT_VERSION);
		CHECK_STR(got.uuid, fmt1.uuid);
		CHECK_EQ(got.block_size, 4U << 20);
		CHECK_EQ(got.compress, 1);
	}
	/* the record is readable JSON with the documented fields */
	struct rfs_buf b = {0};
	if (CHECK_OK(rfs_store_get(f.s, "roamfs.json", 0, RFS_GET_TO_END, &b))) {
		CHECK(rfs_buf_append(&b, "", 1) == 0);
		CHECK_CONTAINS((char *)b.data, "\"roamfs\": 2");
		CHECK_CONTAINS((char *)b.data, "\"compression\": \"lz4\"");
		CHECK_CONTAINS((char *)b.data, "\"created\": \"");
	}
	rfs_buf_free(&b);
	teardown(&f);
}

static void format_round_trip_uncompressed(void)
{
	struct fixture f;
	REQUIRE(setup(&f) == 0);
	char err[1024] = "";
	struct rfs_format in = {
	    .uuid = "ffffffffffffffffffffffffffffffff", .block_size = RFS_MIN_BLOCK_SIZE, .compress = 0};
	CHECK_OK(rfs_format_write(f.s, &in, 0, err, sizeof(err)));
	struct rfs_format got;
	if (CHECK_OK(rfs_format_read(f.s, &got, err, sizeof(err)))) {
		CHECK_EQ(got.version, RFS_FORMAT_VERSION); /* written as the current version */
		CHECK_STR(got.uuid, in.uuid);
		CHECK_EQ(got.block_size, RFS_MIN_BLOCK_SIZE);
		CHECK_EQ(got.compress, 0);
	}
	teardown(&f);
}

static void format_read_missing(void)
{
	struct fixture f;
	REQUIRE(setup(&f) == 0);
	char err[1024] = "";
	struct rfs_format got;
	CHECK_ERR(rfs_format_read(f.s, &got, err, sizeof(err)), ENOENT);
	CHECK_CONTAINS(err, f.s->url);
	CHECK_CONTAINS(err, "roamfs format");
	teardown(&f);
}

static void format_refuses_second_write(void)
{
	struct fixture f;
	REQUIRE(setup(&f) == 0);
	char err[1024] = "";
	CHECK_OK(rfs_format_write(f.s, &fmt1, 0, err, sizeof(err)));
	struct rfs_format other = fmt1;
	snprintf(other.uuid, sizeof(other.uuid), "%s", "11111111111111111111111111111111");
	err[0] = 0;
	CHECK_ERR(rfs_format_write(f.s, &other, 0, err, sizeof(err)), EEXIST);
	CHECK_CONTAINS(err, f.s->url);
	CHECK_CONTAINS(err, "--force");
	struct rfs_format got;
	if (CHECK_OK(rfs_format_read(f.s, &got, err, sizeof(err))))
		CHECK_STR(got.uuid, fmt1.uuid); /* untouched */

	/* with force it is overwritten */
	CHECK_OK(rfs_format_write(f.s, &other, 1, err, sizeof(err)));
	if (CHECK_OK(rfs_format_read(f.s, &got, err, sizeof(err))))
		CHECK_STR(got.uuid, other.uuid);
	teardown(&f);
}

static void format_unknown_version(void)
{
	struct fixture f;
	REQUIRE(setup(&f) == 0);
	put_record(f.s, "{\"roamfs\": 999, \"uuid\": \"0123456789abcdef0123456789abcdef\", \"block_size\": 4194304, "
			"\"compression\": \"lz4\", \"created\": \"2030-01-01T00:00:00Z\"}\n");
	char err[1024] = "";
	struct rfs_format got;
	CHECK_ERR(rfs_format_read(f.s, &got, err, sizeof(err)), EPROTO);
	CHECK_CONTAINS(err, "999");
	CHECK_CONTAINS(err, f.s->url);
	put_record(f.s, "{\"roamfs\": 0, \"uuid\": \"0123456789abcdef0123456789abcdef\", \"block_size\": 4194304, "
			"\"compression\": \"lz4\"}");
	CHECK_ERR(rfs_format_read(f.s, &got, err, sizeof(err)), EPROTO);
	teardown(&f);
}

/* A version-1 record is read (this roamfs understands version-1 workspaces) and upgraded in
 * place: same uuid, block size, compression, meta store and creation time, version 2. */
static void format_upgrade_from_v1(void)
{
	struct fixture f;
	REQUIRE(setup(&f) == 0);
	put_record(f.s, "{\"roamfs\": 1, \"uuid\": \"0123456789abcdef0123456789abcdef\", \"block_size\": 1048576, "
			"\"compression\": \"none\", \"created\": \"2026-01-02T03:04:05Z\", \"meta\": \"file:///m\"}\n");
	char err[1024] = "";
	struct rfs_format got;
	REQUIRE_OK(rfs_format_read(f.s, &got, err, sizeof(err)));
	CHECK_EQ(got.version, 1);
	CHECK_OK(rfs_format_upgrade(f.s, &got, err, sizeof(err)));
	CHECK_EQ(got.version, RFS_FORMAT_VERSION);
	struct rfs_format again;
	if (CHECK_OK(rfs_format_read(f.s, &again, err, sizeof(err)))) {
		CHECK_EQ(again.version, 2);
		CHECK_STR(again.uuid, "0123456789abcdef0123456789abcdef");
		CHECK_EQ(again.block_size, 1U << 20);
		CHECK_EQ(again.compress, 0);
		CHECK_STR(again.meta_url, "file:///m");
		CHECK_STR(again.created, "2026-01-02T03:04:05Z");
	}
	/* a current record is left alone: no write */
	REQUIRE_OK(rfs_store_delete(f.s, "roamfs.json"));
	CHECK_OK(rfs_format_upgrade(f.s, &again, err, sizeof(err)));
	CHECK_ERR(rfs_format_read(f.s, &got, err, sizeof(err)), ENOENT);
	teardown(&f);
}

static void format_damaged(void)
{
	struct fixture f;
	REQUIRE(setup(&f) == 0);
	static const char *const bad[] = {
	    "",
	    "not json at all",
	    "{\"roamfs\": 1, \"uuid\": \"0123456789abcdef0123456789abcdef\", \"block_si", /* cut short */
	    "{\"roamfs\": \"one\", \"uuid\": \"0123456789abcdef0123456789abcdef\", \"block_size\": 4194304, "
	    "\"compression\": \"lz4\"}",
	    "{\"roamfs\": 1, \"uuid\": 12, \"block_size\": 4194304, \"compression\": \"lz4\"}",
	    "{\"roamfs\": 1, \"uuid\": \"0123456789abcdef0123456789abcdef0\", \"block_size\": 4194304, "
	    "\"compression\": \"lz4\"}", /* uuid too long for the field */
	    "{\"roamfs\": 1, \"uuid\": \"0123456789abcdef0123456789abcdef\", \"block_size\": 4194304, "
	    "\"compression\": \"lz4}", /* unterminated string */
	    "{\"roamfs\" 1, \"uuid\": \"0123456789abcdef0123456789abcdef\", \"block_size\": 4194304, "
	    "\"compression\": \"lz4\"}", /* no colon */
	    "{\"roamfs\": 1, \"uuid\": \"0123456789abcdef0123456789abcdef\", \"compression\": \"lz4\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put_record(f.s, bad[i]);
		char err[1024] = "";
		struct rfs_format got;
		if (!CHECK_ERR(rfs_format_read(f.s, &got, err, sizeof(err)), EINVAL))
			fprintf(stderr, "  record \"%s\"\n", bad[i]);
		else
			CHECK_CONTAINS(err, f.s->url);
	}
	/* binary garbage with NULs */
	uint8_t junk[300];
	rfs_random(junk, sizeof(junk));
	CHECK_OK(rfs_store_put(f.s, "roamfs.json", junk, sizeof(junk)));
	char err[1024];
	struct rfs_format got;
	CHECK_ERR(rfs_format_read(f.s, &got, err, sizeof(err)), EINVAL);
	teardown(&f);
}

static void format_bad_block_size(void)
{
	struct fixture f;
	REQUIRE(setup(&f) == 0);
	static const char *const sizes[] = {"0", "-4096", "2048", "5000", "4194305", "134217728", "99999999999999"};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char body[512], err[1024] = "";
		snprintf(body, sizeof(body),
			 "{\"roamfs\": 1, \"uuid\": \"0123456789abcdef0123456789abcdef\", \"block_size\": %s, "
			 "\"compression\": \"lz4\"}",
			 sizes[i]);
		put_record(f.s, body);
		struct rfs_format got;
		if (CHECK_ERR(rfs_format_read(f.s, &got, err, sizeof(err)), EINVAL))
			CHECK_CONTAINS(err, sizes[i]);
		else
			fprintf(stderr, "  block size %s\n", sizes[i]);
	}
	/* the limits themselves are fine */
	static const char *const ok[] = {"4096", "67108864", "1048576"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char body[512], err[1024] = "";
		snprintf(body, sizeof(body),
			 "{\"roamfs\":1,\"uuid\":\"0123456789abcdef0123456789abcdef\",\"block_size\":%s,"
			 "\"compression\":\"none\"}",
			 ok[i]);
		put_record(f.s, body);
		struct rfs_format got;
		if (CHECK_OK(rfs_format_read(f.s, &got, err, sizeof(err)))) {
			CHECK_EQ(got.block_size, strtoull(ok[i], NULL, 10));
			CHECK_EQ(got.compress, 0);
		}
	}
	teardown(&f);
}

int main(int argc, char **argv)
{
	check_init(argc, argv);
	RUN(format_round_trip);
	RUN(format_round_trip_uncompressed);
	RUN(format_read_missing);
	RUN(format_refuses_second_write);
	RUN(format_unknown_version);
	RUN(format_upgrade_from_v1);
	RUN(format_damaged);
	RUN(format_bad_block_size);
	return check_done();
}
