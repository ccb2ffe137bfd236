/*
 * pack.h - packs: immutable store objects holding many content-addressed blocks.
 *
 * Layout of a pack object:
 *     block payloads back to back (each LZ4-compressed when that saves space, else raw; a
 *     block over 256 KiB is tried only when samples of it compress, see rfs_pack_add)
 *     trailer: count entries of { hash[32], u64 offset, u32 stored_len, u32 raw_len, u8 codec }
 *     footer:  u32 count, u32 reserved (0), "RFSPACK1"      (all integers little-endian)
 * The trailer lets `fsck` check a pack and lets metadata be rebuilt from the store alone.
 *
 * Calling sequence (writer): rfs_pack_init(&p, compress); rfs_pack_add() per block (returns
 * where the block landed); rfs_pack_finish() appends the trailer and gives the bytes to upload
 * in p.buf; rfs_pack_free(). A pack is one thread's object.
 *
 * Reader: rfs_pack_decode_block() turns one stored payload back into the block's bytes and
 * verifies them: a mismatch is -EIO (never wrong bytes). rfs_pack_parse_trailer() decodes a
 * whole pack's index (for fsck), bounded by the object's length.
 *
 * Verification: a block is named by its SHA-256; blocks sealed since workspace format 2 also
 * have the XXH3-64 of their content in their metadata row (`blocks.xsum`, kept in memory in
 * the entry here, not in the trailer). Reads verify against the xsum when the row has one
 * (SHA-256 was ~30% of the daemon's CPU on a cold stream), else against the SHA-256; fsck
 * always checks the SHA-256. Both expected values come from the log, so a cryptographic
 * check on arrival would not stop a hostile store (it could rewrite the log too); what the
 * check is for is corruption and misdirected reads, which 64 bits catch.
 */
#ifndef RFS_PACK_H
#define RFS_PACK_H

#include <stdint.h>

#include "fs/util.h"

enum rfs_codec { RFS_CODEC_RAW = 0, RFS_CODEC_LZ4 = 1 };

struct rfs_pack_entry {
	uint8_t hash[RFS_HASH_LEN];
	uint64_t offset;
	uint32_t stored_len;
	uint32_t raw_len;
	uint8_t codec;
	uint64_t xsum; /* rfs_xsum() of the raw content: set by rfs_pack_add; not in the trailer (0 when parsed) */
};

struct rfs_pack {
	char id[33];        /* 16 hex random, then 16 hex ms since the epoch (creation time) */
	int compress;       /* try LZ4 */
	struct rfs_buf buf; /* payloads, then trailer after finish */
	struct rfs_pack_entry *entries;
	uint32_t count, cap;
};

#define RFS_PACK_ENTRY_SIZE 49
#define RFS_PACK_FOOTER_SIZE 16

void rfs_pack_init(struct rfs_pack *p, int compress);
/* Appends a block whose hash the caller computed. *e (optional) receives its entry. */
int rfs_pack_add(struct rfs_pack *p, const uint8_t hash[RFS_HASH_LEN], const void *data, uint32_t len,
		 struct rfs_pack_entry *e);
int rfs_pack_finish(struct rfs_pack *p);
void rfs_pack_free(struct rfs_pack *p);
/* Store key for a pack id: "data/<first two hex>/<id>". buf >= 48 bytes. */
void rfs_pack_key(const char *id, char *buf, size_t len);

/* The creation time embedded in a pack id (ms since the epoch), or -1 if the id has none.
 * gc uses it so that a pack uploaded but not yet named by a log record (a flush in
 * progress on some host) is never deleted: only packs older than the grace period go. */
int64_t rfs_pack_id_time_ms(const char *id);

/* Decodes a stored payload into out (raw_len bytes, caller-allocated) and verifies it
 * (rfs_pack_verify_block). */
int rfs_pack_decode_block(const void *stored, uint32_t stored_len, uint8_t codec, uint32_t raw_len,
			  const uint8_t hash[RFS_HASH_LEN], const uint64_t *xsum, void *out);
/* Whether len bytes are the block's content: 0 or -EIO. xsum: the block's recorded XXH3-64,
 * or NULL to check the SHA-256 name (a row without one, or a deep check). A RAW payload is
 * the block's content, so a reader verifies the fetched bytes in place. */
int rfs_pack_verify_block(const void *raw, uint32_t len, const uint8_t hash[RFS_HASH_LEN], const uint64_t *xsum);

/* Parses the trailer of a whole pack object. *entries is malloc'd; caller frees. */
int rfs_pack_parse_trailer(const uint8_t *obj, size_t len, struct rfs_pack_entry **entries, uint32_t *count);
/* The same from the last len bytes of an object of obj_size bytes (fsck reads only the tail
 * of a big pack: the footer's count says how much, RFS_PACK_FOOTER_SIZE + count * 49 bytes).
 * -EAGAIN: the trailer is longer than the tail given (read more); -EINVAL: not a pack trailer. */
int rfs_pack_parse_tail(const uint8_t *tail, size_t len, uint64_t obj_size, struct rfs_pack_entry **entries,
			uint32_t *count);

#endif
