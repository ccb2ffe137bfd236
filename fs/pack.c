#include "fs/pack.h"

#include <errno.h>
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char pack_magic[8] = {'R', 'F', 'S', 'P', 'A', 'C', 'K', '1'};

#define PACK_SAMPLE (16 * 1024) /* one of the four samples LZ4 tries before a big block is compressed */

void rfs_pack_init(struct rfs_pack *p, int compress)
{
	memset(p, 0, sizeof(*p));
	uint8_t rnd[8];
	rfs_random(rnd, sizeof(rnd));
	rfs_hex(rnd, sizeof(rnd), p->id);
	snprintf(p->id + 16, sizeof(p->id) - 16, "%016llx", (unsigned long long)(rfs_now_ns() / 1000000));
	p->compress = compress;
}

void rfs_pack_free(struct rfs_pack *p)
{
	rfs_buf_free(&p->buf);
	free(p->entries);
	p->entries = NULL;
	p->count = p->cap = 0;
}

void rfs_pack_key(const char *id, char *buf, size_t len)
{
	snprintf(buf, len, "data/%.2s/%s", id, id);
}

/* Whether a block is worth compressing, judged from samples: LZ4 over 4 MiB of incompressible
 * data (weights, archives, media) was ~10% of the daemon's CPU in a big write. Four 16 KiB
 * samples spread over the block are compressed; unless together they shrink by 1/16, the block
 * is stored raw without trying the rest. */
static int compresses(const void *data, uint32_t len)
{
	if (len <= PACK_SAMPLE * 16)
		return 1; /* small: compressing the whole block costs little more than sampling */
	static _Thread_local char out[LZ4_COMPRESSBOUND(PACK_SAMPLE)];
	int total = 0;
	for (uint32_t i = 0; i < 4; i++) {
		const char *at = (const char *)data + (size_t)(len - PACK_SAMPLE) / 3 * i;
		int c = LZ4_compress_default(at, out, PACK_SAMPLE, (int)sizeof(out));
		total += c > 0 ? c : PACK_SAMPLE;
	}
	return total < 4 * PACK_SAMPLE - 4 * PACK_SAMPLE / 16;
}

int rfs_pack_add(struct rfs_pack *p, const uint8_t hash[RFS_HASH_LEN], const void *data, uint32_t len,
		 struct rfs_pack_entry *e)
{
	if (p->count == p->cap) {
		uint32_t nc = p->cap ? p->cap * 2 : 16;
		struct rfs_pack_entry *ne = realloc(p->entries, nc * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		p->entries = ne;
		p->cap = nc;
	}
	struct rfs_pack_entry *ent = &p->entries[p->count];
	memcpy(ent->hash, hash, RFS_HASH_LEN);
	ent->offset = p->buf.len;
	ent->raw_len = len;
	ent->codec = RFS_CODEC_RAW;
	ent->stored_len = len;
	ent->xsum = rfs_xsum(data, len);
	int rc;
	if (p->compress && len > 64 && compresses(data, len)) {
		int bound = LZ4_compressBound((int)len);
		rc = rfs_buf_reserve(&p->buf, (size_t)bound);
		if (rc < 0)
			return rc;
		int c = LZ4_compress_default(data, (char *)p->buf.data + p->buf.len, (int)len, bound);
		if (c > 0 && (uint32_t)c < len - len / 16) {
			ent->codec = RFS_CODEC_LZ4;
			ent->stored_len = (uint32_t)c;
			p->buf.len += (size_t)c;
			goto done;
		}
	}
	rc = rfs_buf_append(&p->buf, data, len);
	if (rc < 0)
		return rc;
done:
	if (e)
		*e = *ent;
	p->count++;
	return 0;
}

int rfs_pack_finish(struct rfs_pack *p)
{
	int rc = rfs_buf_reserve(&p->buf, (size_t)p->count * RFS_PACK_ENTRY_SIZE + RFS_PACK_FOOTER_SIZE);
	if (rc < 0)
		return rc;
	for (uint32_t i = 0; i < p->count; i++) {
		uint8_t *o = p->buf.data + p->buf.len;
		memcpy(o, p->entries[i].hash, RFS_HASH_LEN);
		rfs_put_le64(o + 32, p->entries[i].offset);
		rfs_put_le32(o + 40, p->entries[i].stored_len);
		rfs_put_le32(o + 44, p->entries[i].raw_len);
		o[48] = p->entries[i].codec;
		p->buf.len += RFS_PACK_ENTRY_SIZE;
	}
	uint8_t *f = p->buf.data + p->buf.len;
	rfs_put_le32(f, p->count);
	rfs_put_le32(f + 4, 0);
	memcpy(f + 8, pack_magic, 8);
	p->buf.len += RFS_PACK_FOOTER_SIZE;
	return 0;
}

int rfs_pack_decode_block(const void *stored, uint32_t stored_len, uint8_t codec, uint32_t raw_len,
			  const uint8_t hash[RFS_HASH_LEN], const uint64_t *xsum, void *out)
{
	if (codec == RFS_CODEC_RAW) {
		if (stored_len != raw_len)
			return -EIO;
		memcpy(out, stored, raw_len);
	} else if (codec == RFS_CODEC_LZ4) {
		int n = LZ4_decompress_safe(stored, out, (int)stored_len, (int)raw_len);
		if (n < 0 || (uint32_t)n != raw_len)
			return -EIO;
	} else {
		return -EIO;
	}
	return rfs_pack_verify_block(out, raw_len, hash, xsum);
}

int rfs_pack_verify_block(const void *raw, uint32_t len, const uint8_t hash[RFS_HASH_LEN], const uint64_t *xsum)
{
	if (xsum)
		return rfs_xsum(raw, len) == *xsum ? 0 : -EIO;
	uint8_t got[RFS_HASH_LEN];
	rfs_sha256(raw, len, got);
	return memcmp(got, hash, RFS_HASH_LEN) ? -EIO : 0;
}

int rfs_pack_parse_trailer(const uint8_t *obj, size_t len, struct rfs_pack_entry **entries, uint32_t *count)
{
	return rfs_pack_parse_tail(obj, len, len, entries, count);
}

int rfs_pack_parse_tail(const uint8_t *tail, size_t len, uint64_t obj_size, struct rfs_pack_entry **entries,
			uint32_t *count)
{
	if (len < RFS_PACK_FOOTER_SIZE || len > obj_size)
		return -EINVAL;
	const uint8_t *f = tail + len - RFS_PACK_FOOTER_SIZE;
	if (memcmp(f + 8, pack_magic, 8))
		return -EINVAL;
	uint32_t n = rfs_get_le32(f);
	uint64_t tsize = (uint64_t)n * RFS_PACK_ENTRY_SIZE;
	if (tsize > len - RFS_PACK_FOOTER_SIZE)
		return tsize <= obj_size - RFS_PACK_FOOTER_SIZE ? -EAGAIN : -EINVAL;
	uint64_t data_end = obj_size - RFS_PACK_FOOTER_SIZE - tsize; /* in the object */
	struct rfs_pack_entry *e = calloc(n ? n : 1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	const uint8_t *t = tail + len - RFS_PACK_FOOTER_SIZE - (size_t)tsize;
	for (uint32_t i = 0; i < n; i++, t += RFS_PACK_ENTRY_SIZE) {
		memcpy(e[i].hash, t, RFS_HASH_LEN);
		e[i].offset = rfs_get_le64(t + 32);
		e[i].stored_len = rfs_get_le32(t + 40);
		e[i].raw_len = rfs_get_le32(t + 44);
		e[i].codec = t[48];
		if (e[i].offset > data_end || e[i].stored_len > data_end - e[i].offset) {
			free(e);
			return -EINVAL;
		}
	}
	*entries = e;
	*count = n;
	return 0;
}

int64_t rfs_pack_id_time_ms(const char *id)
{
	if (strlen(id) != 32)
		return -1;
	uint8_t t[8];
	if (rfs_unhex(id + 16, t, 8) < 0)
		return -1;
	int64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | t[i];
	return v;
}
