/* Unit tests for fs/pack.c: building packs, the trailer, decoding and verifying blocks. */
#include <lz4.h>

#include "check.h"
#include "fs/pack.h"

#define NBLOCKS 6

struct block {
	uint8_t *data;
	uint32_t len;
	uint8_t hash[RFS_HASH_LEN];
};

/* Deterministic PRNG (xorshift64*) so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static void fill_random(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(rng() >> 32);
}

/* Blocks: compressible text, random bytes, tiny (stays raw), zeros, empty, mixed. */
static void make_blocks(struct block b[NBLOCKS])
{
	static const uint32_t lens[NBLOCKS] = {16384, 8192, 40, 65536, 0, 5000};
	for (int i = 0; i < NBLOCKS; i++) {
		b[i].len = lens[i];
		b[i].data = malloc(lens[i] ? lens[i] : 1);
		switch (i) {
		case 0:
			for (uint32_t j = 0; j < lens[i]; j++)
				b[i].data[j] = (uint8_t)("the quick brown fox "[j % 20]);
			break;
		case 3:
			memset(b[i].data, 0, lens[i]);
			break;
		case 5:
			fill_random(b[i].data, lens[i]);
			memset(b[i].data, 'a', lens[i] / 2);
			break;
		default:
			fill_random(b[i].data, lens[i]);
		}
		rfs_sha256(b[i].data, b[i].len, b[i].hash);
	}
}

static void free_blocks(struct block b[NBLOCKS])
{
	for (int i = 0; i < NBLOCKS; i++)
		free(b[i].data);
}

/* Builds a finished pack of the blocks; entries returned by add go to ent. */
static int build_pack(struct rfs_pack *p, int compress, struct block b[NBLOCKS], struct rfs_pack_entry ent[NBLOCKS])
{
	rfs_pack_init(p, compress);
	for (int i = 0; i < NBLOCKS; i++) {
		int rc = rfs_pack_add(p, b[i].hash, b[i].data, b[i].len, &ent[i]);
		if (rc < 0)
			return rc;
	}
	return rfs_pack_finish(p);
}

static int entries_equal(const struct rfs_pack_entry *a, const struct rfs_pack_entry *b)
{
	return !memcmp(a->hash, b->hash, RFS_HASH_LEN) && a->offset == b->offset && a->stored_len == b->stored_len &&
	       a->raw_len == b->raw_len && a->codec == b->codec;
}

static void pack_init_id_and_key(void)
{
	struct rfs_pack p, q;
	int64_t before = rfs_now_ns() / 1000000;
	rfs_pack_init(&p, 1);
	rfs_pack_init(&q, 1);
	int64_t after = rfs_now_ns() / 1000000;
	/* the id carries its creation time (ms) for gc's grace period */
	int64_t t = rfs_pack_id_time_ms(p.id);
	CHECK(t >= before && t <= after);
	CHECK_EQ(rfs_pack_id_time_ms("0123"), -1);
	CHECK_EQ(rfs_pack_id_time_ms("0123456789abcdef0123456789abcdeg"), -1);
	CHECK_EQ(rfs_pack_id_time_ms("0123456789abcdef000000000000002a"), 42);
	CHECK_EQ(strlen(p.id), 32);
	uint8_t raw[16];
	CHECK_OK(rfs_unhex(p.id, raw, sizeof(raw)));
	CHECK(strcmp(p.id, q.id) != 0);
	CHECK_EQ(p.count, 0);
	CHECK_EQ(p.buf.len, 0);
	char key[64], want[64];
	rfs_pack_key(p.id, key, sizeof(key));
	snprintf(want, sizeof(want), "data/%c%c/%s", p.id[0], p.id[1], p.id);
	CHECK_STR(key, want);
	rfs_pack_free(&p);
	rfs_pack_free(&q);
}

static void pack_add_layout(int compress)
{
	struct block b[NBLOCKS];
	struct rfs_pack_entry ent[NBLOCKS];
	struct rfs_pack p;
	make_blocks(b);
	if (!CHECK_OK(build_pack(&p, compress, b, ent)))
		goto out;
	CHECK_EQ(p.count, NBLOCKS);
	uint64_t off = 0;
	for (int i = 0; i < NBLOCKS; i++) {
		CHECK(entries_equal(&ent[i], &p.entries[i]));
		CHECK_MEM(ent[i].hash, b[i].hash, RFS_HASH_LEN);
		CHECK_EQ(ent[i].offset, off); /* payloads back to back */
		CHECK_EQ(ent[i].raw_len, b[i].len);
		off += ent[i].stored_len;
		if (ent[i].codec == RFS_CODEC_RAW) {
			CHECK_EQ(ent[i].stored_len, b[i].len);
			CHECK_MEM(p.buf.data + ent[i].offset, b[i].data, b[i].len);
		} else {
			CHECK_EQ(ent[i].codec, RFS_CODEC_LZ4);
			CHECK(ent[i].stored_len < b[i].len);
		}
	}
	CHECK_EQ(p.buf.len, off + NBLOCKS * RFS_PACK_ENTRY_SIZE + RFS_PACK_FOOTER_SIZE);
	CHECK_MEM(p.buf.data + p.buf.len - 8, "RFSPACK1", 8);
	if (compress) {
		CHECK_EQ(ent[0].codec, RFS_CODEC_LZ4); /* text */
		CHECK_EQ(ent[1].codec, RFS_CODEC_RAW); /* random: LZ4 would not save space */
		CHECK_EQ(ent[2].codec, RFS_CODEC_RAW); /* too small to try */
		CHECK_EQ(ent[3].codec, RFS_CODEC_LZ4); /* zeros */
		CHECK_EQ(ent[4].codec, RFS_CODEC_RAW); /* empty */
		CHECK_EQ(ent[5].codec, RFS_CODEC_LZ4); /* half 'a' */
	} else {
		for (int i = 0; i < NBLOCKS; i++)
			CHECK_EQ(ent[i].codec, RFS_CODEC_RAW);
	}
	rfs_pack_free(&p);
out:
	free_blocks(b);
}

static void pack_add_compressed(void)
{
	pack_add_layout(1);
}

static void pack_add_uncompressed(void)
{
	pack_add_layout(0);
}

/* A big block is compressed only when samples of it compress: text is, random bytes are not
 * (LZ4 over them would be wasted), and a block that starts with 64 KiB of noise but is mostly
 * zeros is (the samples are spread over the block). Each decodes back. */
static void pack_add_samples_big_blocks(void)
{
	const uint32_t len = 1u << 20;
	uint8_t *text = malloc(len), *noise = malloc(len), *mixed = malloc(len);
	REQUIRE(text && noise && mixed);
	for (uint32_t i = 0; i < len; i++)
		text[i] = (uint8_t)("def import(self):\n    return 42\n"[i % 32]);
	rfs_random(noise, len);
	memcpy(mixed, noise, 64 * 1024);
	memset(mixed + 64 * 1024, 0, len - 64 * 1024);
	const uint8_t *blocks[3] = {text, noise, mixed};
	const uint8_t want[3] = {RFS_CODEC_LZ4, RFS_CODEC_RAW, RFS_CODEC_LZ4};
	struct rfs_pack p;
	rfs_pack_init(&p, 1);
	for (int i = 0; i < 3; i++) {
		uint8_t h[RFS_HASH_LEN];
		rfs_sha256(blocks[i], len, h);
		struct rfs_pack_entry e;
		if (!CHECK_OK(rfs_pack_add(&p, h, blocks[i], len, &e)))
			continue;
		CHECK_EQ(e.codec, want[i]);
		CHECK_EQ(e.xsum, rfs_xsum(blocks[i], len));
		uint8_t *out = malloc(len);
		if (out &&
		    CHECK_OK(rfs_pack_decode_block(p.buf.data + e.offset, e.stored_len, e.codec, len, h, NULL, out)))
			CHECK_MEM(out, blocks[i], len);
		free(out);
	}
	/* the price of sampling: noise exactly where the four 16 KiB samples fall, zeros elsewhere
	 * (the whole would compress) is stored raw */
	memset(mixed, 0, len);
	for (uint32_t i = 0; i < 4; i++)
		memcpy(mixed + (len - 16384) / 3 * i, noise + 16384 * i, 16384);
	{
		uint8_t hs[RFS_HASH_LEN];
		rfs_sha256(mixed, len, hs);
		struct rfs_pack_entry es;
		if (CHECK_OK(rfs_pack_add(&p, hs, mixed, len, &es)))
			CHECK_EQ(es.codec, RFS_CODEC_RAW);
	}
	/* a small block is tried whole: 200 KiB of zeros after 64 KiB of noise compress */
	memcpy(mixed, noise, 64 * 1024);
	uint8_t h[RFS_HASH_LEN];
	rfs_sha256(mixed, 200 * 1024, h);
	struct rfs_pack_entry e;
	if (CHECK_OK(rfs_pack_add(&p, h, mixed, 200 * 1024, &e)))
		CHECK_EQ(e.codec, RFS_CODEC_LZ4);
	rfs_pack_free(&p);
	free(text);
	free(noise);
	free(mixed);
}

static void pack_trailer_round_trip(void)
{
	for (int compress = 0; compress <= 1; compress++) {
		struct block b[NBLOCKS];
		struct rfs_pack_entry ent[NBLOCKS];
		struct rfs_pack p;
		make_blocks(b);
		if (CHECK_OK(build_pack(&p, compress, b, ent))) {
			struct rfs_pack_entry *pe = NULL;
			uint32_t n = 0;
			if (CHECK_OK(rfs_pack_parse_trailer(p.buf.data, p.buf.len, &pe, &n))) {
				CHECK_EQ(n, NBLOCKS);
				for (uint32_t i = 0; i < n && i < NBLOCKS; i++)
					CHECK(entries_equal(&pe[i], &ent[i]));
				free(pe);
			}
		}
		rfs_pack_free(&p);
		free_blocks(b);
	}
}

static void pack_empty(void)
{
	struct rfs_pack p;
	rfs_pack_init(&p, 1);
	REQUIRE_OK(rfs_pack_finish(&p));
	CHECK_EQ(p.buf.len, RFS_PACK_FOOTER_SIZE);
	struct rfs_pack_entry *pe = NULL;
	uint32_t n = 99;
	if (CHECK_OK(rfs_pack_parse_trailer(p.buf.data, p.buf.len, &pe, &n)))
		CHECK_EQ(n, 0);
	free(pe);
	rfs_pack_free(&p);
}

static void pack_decode_every_block(void)
{
	for (int compress = 0; compress <= 1; compress++) {
		struct block b[NBLOCKS];
		struct rfs_pack_entry ent[NBLOCKS];
		struct rfs_pack p;
		make_blocks(b);
		if (CHECK_OK(build_pack(&p, compress, b, ent))) {
			struct rfs_pack_entry *pe = NULL;
			uint32_t n = 0;
			if (CHECK_OK(rfs_pack_parse_trailer(p.buf.data, p.buf.len, &pe, &n))) {
				for (uint32_t i = 0; i < n; i++) {
					/* decode from an exact-size copy so valgrind sees any over-read */
					uint8_t *stored = malloc(pe[i].stored_len ? pe[i].stored_len : 1);
					uint8_t *out = malloc(pe[i].raw_len ? pe[i].raw_len : 1);
					memcpy(stored, p.buf.data + pe[i].offset, pe[i].stored_len);
					CHECK_OK(rfs_pack_decode_block(stored, pe[i].stored_len, pe[i].codec,
								       pe[i].raw_len, pe[i].hash, NULL, out));
					CHECK_MEM(out, b[i].data, b[i].len);
					free(stored);
					free(out);
				}
				free(pe);
			}
		}
		rfs_pack_free(&p);
		free_blocks(b);
	}
}

/* One flipped bit anywhere in a payload is -EIO, never wrong bytes. */
static void pack_decode_flipped_byte(void)
{
	struct block b[NBLOCKS];
	struct rfs_pack_entry ent[NBLOCKS];
	struct rfs_pack p;
	make_blocks(b);
	if (!CHECK_OK(build_pack(&p, 1, b, ent)))
		goto out;
	for (int i = 0; i < NBLOCKS; i++) {
		uint32_t sl = ent[i].stored_len;
		if (sl == 0)
			continue;
		uint8_t *stored = malloc(sl);
		uint8_t *out = malloc(ent[i].raw_len);
		/* every position of the compressed payloads, a spread of positions of raw ones */
		uint32_t step = ent[i].codec == RFS_CODEC_LZ4 ? 1 : (sl > 64 ? sl / 61 : 1);
		uint32_t tried = 0, eio = 0;
		for (uint32_t pos = 0; pos < sl; pos += step) {
			memcpy(stored, p.buf.data + ent[i].offset, sl);
			stored[pos] ^= 0x10;
			int rc =
			    rfs_pack_decode_block(stored, sl, ent[i].codec, ent[i].raw_len, ent[i].hash, NULL, out);
			tried++;
			/* A raw payload must fail. An LZ4 one may still decode to the very same bytes
			 * (a match offset changed within a run of zeros); what must never happen is
			 * success with different bytes. */
			if (rc == -EIO) {
				eio++;
				continue;
			}
			if (ent[i].codec == RFS_CODEC_LZ4 && rc == 0 && !memcmp(out, b[i].data, b[i].len))
				continue;
			CHECK_ERR(rc, EIO);
			fprintf(stderr, "  block %d codec %d, flipped byte %u of %u\n", i, ent[i].codec, pos, sl);
			break;
		}
		CHECK(eio * 10 >= tried * 9); /* nearly every flip is caught by the codec or the hash */
		free(stored);
		free(out);
	}
	/* the wrong hash: -EIO too */
	uint8_t wrong[RFS_HASH_LEN];
	memcpy(wrong, ent[0].hash, RFS_HASH_LEN);
	wrong[31] ^= 1;
	uint8_t *out = malloc(ent[0].raw_len);
	CHECK_ERR(rfs_pack_decode_block(p.buf.data + ent[0].offset, ent[0].stored_len, ent[0].codec, ent[0].raw_len,
					wrong, NULL, out),
		  EIO);
	/* with the entry's xsum the check is the xsum: the right one passes, a wrong one fails */
	CHECK_OK(rfs_pack_decode_block(p.buf.data + ent[0].offset, ent[0].stored_len, ent[0].codec, ent[0].raw_len,
				       wrong, &ent[0].xsum, out));
	uint64_t bad_xsum = ent[0].xsum ^ (1ULL << 63);
	CHECK_ERR(rfs_pack_decode_block(p.buf.data + ent[0].offset, ent[0].stored_len, ent[0].codec, ent[0].raw_len,
					ent[0].hash, &bad_xsum, out),
		  EIO);
	free(out);
	rfs_pack_free(&p);
out:
	free_blocks(b);
}

static void pack_decode_bad_lengths_and_codec(void)
{
	uint8_t raw[4096];
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)("abcabcabd"[i % 9]);
	uint8_t hash[RFS_HASH_LEN];
	rfs_sha256(raw, sizeof(raw), hash);
	char comp[LZ4_COMPRESSBOUND(4096)];
	int clen = LZ4_compress_default((const char *)raw, comp, (int)sizeof(raw), (int)sizeof(comp));
	REQUIRE(clen > 0 && clen < (int)sizeof(raw));

	uint8_t *out = malloc(sizeof(raw) + 100);
	CHECK_OK(rfs_pack_decode_block(comp, (uint32_t)clen, RFS_CODEC_LZ4, sizeof(raw), hash, NULL, out));
	CHECK_MEM(out, raw, sizeof(raw));
	/* LZ4 with a raw_len that does not match what the payload decodes to */
	CHECK_ERR(rfs_pack_decode_block(comp, (uint32_t)clen, RFS_CODEC_LZ4, sizeof(raw) - 1, hash, NULL, out), EIO);
	CHECK_ERR(rfs_pack_decode_block(comp, (uint32_t)clen, RFS_CODEC_LZ4, sizeof(raw) + 100, hash, NULL, out), EIO);
	CHECK_ERR(rfs_pack_decode_block(comp, (uint32_t)clen, RFS_CODEC_LZ4, 1, hash, NULL, out), EIO);
	/* a payload cut short */
	CHECK_ERR(rfs_pack_decode_block(comp, (uint32_t)clen - 1, RFS_CODEC_LZ4, sizeof(raw), hash, NULL, out), EIO);
	/* raw with stored != raw length */
	CHECK_ERR(rfs_pack_decode_block(raw, sizeof(raw) - 1, RFS_CODEC_RAW, sizeof(raw), hash, NULL, out), EIO);
	/* a raw payload verified in place: right bytes pass, one flipped bit or a short length fails */
	CHECK_OK(rfs_pack_verify_block(raw, sizeof(raw), hash, NULL));
	CHECK_ERR(rfs_pack_verify_block(raw, sizeof(raw) - 1, hash, NULL), EIO);
	raw[100] ^= 1;
	CHECK_ERR(rfs_pack_verify_block(raw, sizeof(raw), hash, NULL), EIO);
	raw[100] ^= 1;
	/* the same with the fast check: the content's xsum passes; a flipped bit or a short length fails */
	uint64_t xs = rfs_xsum(raw, sizeof(raw));
	CHECK_OK(rfs_pack_verify_block(raw, sizeof(raw), hash, &xs));
	CHECK_ERR(rfs_pack_verify_block(raw, sizeof(raw) - 1, hash, &xs), EIO);
	raw[4095] ^= 0x80;
	CHECK_ERR(rfs_pack_verify_block(raw, sizeof(raw), hash, &xs), EIO);
	raw[4095] ^= 0x80;
	CHECK_OK(rfs_pack_decode_block(comp, (uint32_t)clen, RFS_CODEC_LZ4, sizeof(raw), hash, &xs, out));
	CHECK_ERR(rfs_pack_decode_block(comp, (uint32_t)clen, RFS_CODEC_LZ4, sizeof(raw) - 1, hash, &xs, out), EIO);
	/* unknown codec */
	CHECK_ERR(rfs_pack_decode_block(raw, sizeof(raw), 7, sizeof(raw), hash, NULL, out), EIO);
	/* raw payload labelled LZ4 */
	CHECK_ERR(rfs_pack_decode_block(raw, sizeof(raw), RFS_CODEC_LZ4, sizeof(raw), hash, NULL, out), EIO);
	free(out);
}

/* Parses obj[0..len) from an exact-size heap copy (so valgrind catches any read outside it).
 * Returns the parse result; on success checks every entry lies inside the data area. */
static int parse_copy(const uint8_t *obj, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	if (len)
		memcpy(copy, obj, len);
	struct rfs_pack_entry *pe = NULL;
	uint32_t n = 0;
	int rc = rfs_pack_parse_trailer(copy, len, &pe, &n);
	if (rc == 0) {
		size_t data_end = len - RFS_PACK_FOOTER_SIZE - (size_t)n * RFS_PACK_ENTRY_SIZE;
		for (uint32_t i = 0; i < n; i++)
			CHECK(pe[i].offset <= data_end && pe[i].stored_len <= data_end - pe[i].offset);
		free(pe);
	}
	free(copy);
	return rc;
}

static void pack_trailer_truncated(void)
{
	struct block b[NBLOCKS];
	struct rfs_pack_entry ent[NBLOCKS];
	struct rfs_pack p;
	make_blocks(b);
	if (!CHECK_OK(build_pack(&p, 1, b, ent)))
		goto out;
	size_t len = p.buf.len;
	CHECK_OK(parse_copy(p.buf.data, len));
	/* every prefix (the tail of the object lost) */
	for (size_t l = 0; l < len; l++) {
		if (!CHECK_ERR(parse_copy(p.buf.data, l), EINVAL)) {
			fprintf(stderr, "  prefix of %zu of %zu bytes\n", l, len);
			break;
		}
	}
	/* every suffix (the head lost): the footer is intact, the offsets no longer fit */
	for (size_t cut = 1; cut <= len; cut++) {
		if (!CHECK_ERR(parse_copy(p.buf.data + cut, len - cut), EINVAL)) {
			fprintf(stderr, "  suffix after dropping %zu of %zu bytes\n", cut, len);
			break;
		}
	}
	rfs_pack_free(&p);
out:
	free_blocks(b);
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int k = 0; k < n; k++)
		p[k] = (uint8_t)(v >> (8 * k));
}

static void pack_trailer_bad_fields(void)
{
	struct block b[NBLOCKS];
	struct rfs_pack_entry ent[NBLOCKS];
	struct rfs_pack p;
	make_blocks(b);
	if (!CHECK_OK(build_pack(&p, 1, b, ent)))
		goto out;
	size_t len = p.buf.len;
	uint8_t *obj = malloc(len);
	uint8_t *foot = obj + len - RFS_PACK_FOOTER_SIZE;
	uint8_t *trailer = foot - NBLOCKS * RFS_PACK_ENTRY_SIZE;

	/* bad magic */
	memcpy(obj, p.buf.data, len);
	foot[15] = '2';
	CHECK_ERR(parse_copy(obj, len), EINVAL);
	/* counts too big for the object, including ones whose byte size overflows 32 bits */
	static const uint32_t counts[] = {NBLOCKS + 1, 1000000, 0x7fffffff, 0xffffffff, 87652394};
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		memcpy(obj, p.buf.data, len);
		put_le(foot, counts[i], 4);
		if (!CHECK_ERR(parse_copy(obj, len), EINVAL))
			fprintf(stderr, "  count %u\n", counts[i]);
	}
	/* an entry pointing past the data area */
	size_t data_end = (size_t)(trailer - obj);
	memcpy(obj, p.buf.data, len);
	put_le(trailer + 1 * RFS_PACK_ENTRY_SIZE + 32, (uint64_t)1 << 63, 8);
	CHECK_ERR(parse_copy(obj, len), EINVAL);
	memcpy(obj, p.buf.data, len);
	put_le(trailer + 2 * RFS_PACK_ENTRY_SIZE + 32, data_end + 1, 8);
	put_le(trailer + 2 * RFS_PACK_ENTRY_SIZE + 40, 0, 4);
	CHECK_ERR(parse_copy(obj, len), EINVAL);
	/* offset at the very end with a length that would wrap offset + length */
	memcpy(obj, p.buf.data, len);
	put_le(trailer + 2 * RFS_PACK_ENTRY_SIZE + 32, UINT64_MAX - 10, 8);
	put_le(trailer + 2 * RFS_PACK_ENTRY_SIZE + 40, 0xffffffff, 4);
	CHECK_ERR(parse_copy(obj, len), EINVAL);
	memcpy(obj, p.buf.data, len);
	put_le(trailer + 2 * RFS_PACK_ENTRY_SIZE + 32, data_end, 8);
	put_le(trailer + 2 * RFS_PACK_ENTRY_SIZE + 40, 0xffffffff, 4);
	CHECK_ERR(parse_copy(obj, len), EINVAL);
	/* one byte too long: the payload would run into the trailer */
	memcpy(obj, p.buf.data, len);
	put_le(trailer + 0 * RFS_PACK_ENTRY_SIZE + 32, 0, 8);
	put_le(trailer + 0 * RFS_PACK_ENTRY_SIZE + 40, data_end + 1, 4);
	CHECK_ERR(parse_copy(obj, len), EINVAL);
	/* exactly up to the trailer is fine (and zero bytes right at the end too) */
	memcpy(obj, p.buf.data, len);
	put_le(trailer + 0 * RFS_PACK_ENTRY_SIZE + 40, data_end, 4);
	put_le(trailer + 4 * RFS_PACK_ENTRY_SIZE + 32, data_end, 8);
	CHECK_OK(parse_copy(obj, len));
	/* a smaller count is still well-formed (the extra entries read as data) */
	memcpy(obj, p.buf.data, len);
	put_le(foot, NBLOCKS - 1, 4);
	CHECK_OK(parse_copy(obj, len));
	free(obj);
	rfs_pack_free(&p);
out:
	free_blocks(b);
}

static void pack_trailer_garbage(void)
{
	uint8_t buf[4096];
	for (int iter = 0; iter < 3000; iter++) {
		size_t len = (size_t)(rng() % sizeof(buf));
		fill_random(buf, len);
		if (iter % 2 && len >= RFS_PACK_FOOTER_SIZE) {
			/* random bytes under a valid magic, with a small count half the time */
			memcpy(buf + len - 8, "RFSPACK1", 8);
			if (iter % 4 == 1) {
				uint32_t n = (uint32_t)(rng() % 100);
				for (int k = 0; k < 4; k++)
					buf[len - 16 + k] = (uint8_t)(n >> (8 * k));
			}
		}
		int rc = parse_copy(buf, len);
		if (!CHECK(rc == 0 || rc == -EINVAL)) {
			fprintf(stderr, "  iteration %d, length %zu, rc %d\n", iter, len, rc);
			break;
		}
	}
}

int main(int argc, char **argv)
{
	check_init(argc, argv);
	RUN(pack_init_id_and_key);
	RUN(pack_add_compressed);
	RUN(pack_add_uncompressed);
	RUN(pack_add_samples_big_blocks);
	RUN(pack_trailer_round_trip);
	RUN(pack_empty);
	RUN(pack_decode_every_block);
	RUN(pack_decode_flipped_byte);
	RUN(pack_decode_bad_lengths_and_codec);
	RUN(pack_trailer_truncated);
	RUN(pack_trailer_bad_fields);
	RUN(pack_trailer_garbage);
	return check_done();
}
