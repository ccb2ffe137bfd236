/*
 * util.h - small helpers shared by every module: hashing, hex, time, sizes, whole-file I/O,
 * and a growable byte buffer with a hard cap (for anything fed by the network or the store).
 *
 * Errors: functions returning int give 0 or a negative errno. Ownership is stated per call.
 */
#ifndef RFS_UTIL_H
#define RFS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RFS_HASH_LEN 32

/* A growable buffer. data is owned by the buffer; rfs_buf_free() releases it.
 * cap_limit (0 = none) bounds growth: appends past it fail with -EFBIG. */
struct rfs_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t cap_limit;
};

int rfs_buf_reserve(struct rfs_buf *b, size_t extra);
int rfs_buf_append(struct rfs_buf *b, const void *p, size_t n);
void rfs_buf_free(struct rfs_buf *b);

void rfs_sha256(const void *data, size_t len, uint8_t out[RFS_HASH_LEN]);
/* XXH3-64 of data: the fast check a fetched block is verified with (pack.h). ~20x faster
 * than SHA-256 here; it detects corruption, which is all a check on arrival can do (the
 * expected value comes from the same log a hostile store could forge). */
uint64_t rfs_xsum(const void *data, size_t len);
/* out must hold 2*n+1 bytes. */
void rfs_hex(const uint8_t *in, size_t n, char *out);
/* The value of one hex digit (either case), or -1. */
int rfs_hex_digit(int c);
/* Parses exactly 2*n hex digits. Returns 0 or -EINVAL. */
int rfs_unhex(const char *in, uint8_t *out, size_t n);
/* Fills out with n random bytes from getrandom(). */
void rfs_random(void *out, size_t n);

int64_t rfs_now_ns(void);       /* CLOCK_REALTIME in ns */
int64_t rfs_monotonic_ms(void); /* CLOCK_BOOTTIME in ms: counts suspended time */
size_t rfs_page_size(void);     /* the memory page size (4096 if unknown); no system call */

/* "64M", "4GiB", "1048576" -> bytes. Returns 0 or -EINVAL. */
int rfs_parse_size(const char *s, uint64_t *out);

/* Little-endian integers in byte buffers (on-disk and on-store formats). */
void rfs_put_le32(uint8_t *p, uint32_t v);
void rfs_put_le64(uint8_t *p, uint64_t v);
uint32_t rfs_get_le32(const uint8_t *p);
uint64_t rfs_get_le64(const uint8_t *p);

/* mkdir -p with mode. Returns 0 or -errno. */
int rfs_mkdir_p(const char *path, mode_t mode);
/* rm -rf of a directory's contents and itself. Returns 0 or -errno. */
int rfs_rm_rf(const char *path);

/* Full read/write loops that retry on EINTR and short counts. Return bytes or -errno. */
ssize_t rfs_pread_full(int fd, void *buf, size_t len, off_t off);
ssize_t rfs_pwrite_full(int fd, const void *buf, size_t len, off_t off);

/* Reads a whole (small) file into a NUL-terminated malloc'd buffer the caller frees. */
int rfs_read_file(const char *path, char **out, size_t *len);
/* Writes a file atomically: temp file, fsync, rename, fsync dir. Returns 0 or -errno. */
int rfs_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* Crash injection for tests: when the environment variable ROAMFS_CRASH_AT equals name, the
 * process kills itself with SIGKILL right here (as a power cut or OOM kill would). */
void rfs_crash_point(const char *name);

#endif
