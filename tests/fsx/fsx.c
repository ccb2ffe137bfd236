/*
 * fsx.c - randomized file-operation exerciser for roamfs.
 *
 * In the spirit of the classic fsx (Apple / XFS / Linux test suites): keep
 * an in-memory model of the contents of a few files, apply random
 * operations to both the real files and the model, and check every byte
 * that is read back against the model.  Any divergence prints the op
 * number, a log of the last operations, the first differing offset and
 * expected vs. actual bytes, then exits 1.
 *
 * Usage: fsx [-n NUMOPS] [-S SEED] [-l] [-m MAXLEN] [-N NFILES] [options] DIR
 * (fsx -h lists all options).  Defaults: 20000 ops, seed 1, 2 files of up
 * to 8 MiB, so block boundaries of 64 KiB .. 4 MiB blocks are crossed often.
 *
 * Operations (weighted, on a randomly chosen file):
 *   write      pwrite at a random offset/length, often beyond EOF (holes)
 *   read       pread and compare (also beyond EOF: must return 0 bytes)
 *   mapread    mmap(PROT_READ, MAP_SHARED) a range and compare; bytes past
 *              EOF in the last page must be zero
 *   mapwrite   ftruncate to extend if needed, mmap(PROT_READ|PROT_WRITE,
 *              MAP_SHARED), memcpy, msync(MS_SYNC)
 *   truncate   shrink or grow via ftruncate(), truncate(path) or, rarely,
 *              open(O_TRUNC) on a second descriptor
 *   fallocate  mode 0 (may extend); disabled on EOPNOTSUPP/ENOSYS
 *   append     write() through a second descriptor opened O_APPEND
 *   fsync      fsync() or fdatasync()
 *   reopen     close + open, sometimes drop the page cache, spot-check
 *   dropcache  posix_fadvise(POSIX_FADV_DONTNEED) of the whole file
 * After every op fstat() sizes of all files are checked against the model.
 * Every -c ops (default 1000) and at the end every file is reopened, its
 * page cache dropped and every byte compared.  On success the files are
 * removed and "fsx: N ops OK (seed S)" is printed; on failure they are
 * left in DIR together with the model as <file>.fsxgood.
 *
 * -X is a self-test of the checker: it flips one byte of the model after
 * op 100 and forces a read of it, so the run MUST fail with a MISMATCH.
 *
 * Model invariant: model[size .. maxlen) is always zero, so holes created
 * by writing/truncating/fallocating beyond EOF need no special handling.
 *
 * Everything is driven by one xorshift64* stream seeded from -S, so a run
 * is reproducible given the same seed, options and filesystem behaviour.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)

#define DEF_NUMOPS 20000ULL
#define DEF_MAXLEN (8 * MiB)
#define LONG_NUMOPS 1000000ULL
#define LONG_MAXLEN (64 * MiB)
#define DEF_NFILES 2
#define MAX_NFILES 16
#define MAX_MAXOPLEN (8 * MiB)
#define LOGN 20         /* op-log ring size */
#define SELFTEST_OP 100 /* -X flips a model byte after this op */
#define CMP_CHUNK (1 * MiB)
#define DEF_CHECK_EVERY 1000 /* full compare of all files every N ops */

enum op_type {
	OP_WRITE,
	OP_READ,
	OP_MAPREAD,
	OP_MAPWRITE,
	OP_TRUNCATE,
	OP_FALLOCATE,
	OP_APPEND,
	OP_FSYNC,
	OP_REOPEN,
	OP_DROPCACHE,
	OP_NTYPES
};

static const char *const opname[OP_NTYPES] = {
    "write", "read", "mapread", "mapwrite", "truncate", "fallocate", "append", "fsync", "reopen", "dropcache",
};

/* Relative weights (sum 100); disabled ops get weight 0. */
static unsigned weight[OP_NTYPES] = {
    [OP_WRITE] = 30,    [OP_READ] = 24,  [OP_MAPREAD] = 9, [OP_MAPWRITE] = 9, [OP_TRUNCATE] = 8,
    [OP_FALLOCATE] = 5, [OP_APPEND] = 6, [OP_FSYNC] = 5,   [OP_REOPEN] = 2,   [OP_DROPCACHE] = 2,
};

struct tfile {
	char *path;
	int fd;
	uint64_t size;        /* model size */
	unsigned char *model; /* maxlen bytes, zero beyond size */
	uint32_t *pagelast;   /* per page: last op that changed it (0 = none) */
};

struct logent {
	uint64_t opnum;
	int file;
	int type;
	uint64_t off, len; /* affected range (truncate: new size in off) */
	uint64_t size_before, size_after;
	const char *note; /* variant / data style / outcome */
};

/* ---- global state ---------------------------------------------------- */

static uint64_t numops = DEF_NUMOPS;
static uint64_t seed = 1;
static uint64_t maxlen = DEF_MAXLEN;
static uint64_t maxoplen;
static int nfiles = DEF_NFILES;
static bool verbose;
static bool selftest; /* -X */
static uint64_t check_every = DEF_CHECK_EVERY;
static const char *dir;

static struct tfile files[MAX_NFILES];
static unsigned char *wbuf, *rbuf;
static uint64_t pagesz;
static uint64_t opnum; /* current op, 1-based; 0 = setup/final */
static uint64_t opcount[OP_NTYPES];
static uint64_t skipped;

static struct logent oplog[LOGN];
static uint64_t nlogged;
static struct logent *cur; /* entry of the op in progress */

/* self-test state */
static bool st_flipped, st_force;
static int st_file;
static uint64_t st_off;

/* SIGBUS/SIGSEGV while touching a mapping -> report instead of dying */
static sigjmp_buf map_jmp;
static volatile sig_atomic_t map_active;

/* ---- PRNG: xorshift64*, seeded through splitmix64 --------------------- */

static uint64_t rng;

static void rng_seed(uint64_t s)
{
	uint64_t z = s + 0x9E3779B97F4A7C15ULL;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	z ^= z >> 31;
	rng = z ? z : 0x2545F4914F6CDD1DULL;
}

static uint64_t rnd(void)
{
	uint64_t x = rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* uniform-ish in [0, n); n > 0 */
static uint64_t rndn(uint64_t n)
{
	return rnd() % n;
}

/* ---- reporting --------------------------------------------------------- */

static const char *fname(int i)
{
	const char *p = strrchr(files[i].path, '/');
	return p ? p + 1 : files[i].path;
}

static bool log_touches(const struct logent *e, int file, uint64_t off)
{
	uint64_t lo, hi;

	if (e->file != file)
		return false;
	switch (e->type) {
	case OP_WRITE:
	case OP_MAPWRITE:
	case OP_APPEND:
	case OP_FALLOCATE:
		lo = e->off;
		hi = e->off + e->len;
		break;
	case OP_TRUNCATE:
		lo = e->size_before < e->size_after ? e->size_before : e->size_after;
		hi = e->size_before < e->size_after ? e->size_after : e->size_before;
		break;
	default:
		return false;
	}
	/* mapwrite may also extend the file first */
	if (e->type == OP_MAPWRITE && e->size_after > e->size_before && off >= e->size_before && off < e->size_after)
		return true;
	return off >= lo && off < hi;
}

static void log_print(FILE *out, const struct logent *e, bool mark)
{
	fprintf(out, "%c%8" PRIu64 " %-7s %-9s", mark ? '*' : ' ', e->opnum, fname(e->file), opname[e->type]);
	switch (e->type) {
	case OP_WRITE:
	case OP_READ:
	case OP_MAPREAD:
	case OP_MAPWRITE:
	case OP_APPEND:
	case OP_FALLOCATE:
		if (e->len)
			fprintf(out, " 0x%08" PRIx64 " .. 0x%08" PRIx64 " (0x%" PRIx64 " bytes)", e->off,
				e->off + e->len - 1, e->len);
		else
			fprintf(out, " 0x%08" PRIx64 " (0 bytes)", e->off);
		break;
	case OP_TRUNCATE:
		fprintf(out, " to 0x%" PRIx64, e->off);
		break;
	default:
		break;
	}
	fprintf(out, "  size 0x%" PRIx64, e->size_before);
	if (e->size_after != e->size_before)
		fprintf(out, " -> 0x%" PRIx64, e->size_after);
	if (e->note)
		fprintf(out, "  [%s]", e->note);
	fputc('\n', out);
}

static void dump_log(int file, bool have_bad, uint64_t bad)
{
	uint64_t n = nlogged < LOGN ? nlogged : LOGN;

	fprintf(stderr, "fsx: last %" PRIu64 " operations (oldest first%s):\n", n,
		have_bad ? "; * = touched the first bad byte" : "");
	for (uint64_t i = nlogged - n; i < nlogged; i++) {
		const struct logent *e = &oplog[i % LOGN];
		log_print(stderr, e, have_bad && log_touches(e, file, bad));
	}
}

/* Save each model as <file>.fsxgood so it can be cmp'd against the file. */
static void save_models(void)
{
	for (int i = 0; i < nfiles; i++) {
		char p[4096];
		snprintf(p, sizeof(p), "%s.fsxgood", files[i].path);
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			continue;
		uint64_t done = 0;
		while (done < files[i].size) {
			ssize_t w = write(fd, files[i].model + done, files[i].size - done);
			if (w <= 0)
				break;
			done += (uint64_t)w;
		}
		close(fd);
		fprintf(stderr, "fsx: model of %s saved as %s\n", fname(i), p);
	}
}

static void die_common(int file, bool have_bad, uint64_t bad) __attribute__((noreturn));
static void die_common(int file, bool have_bad, uint64_t bad)
{
	dump_log(file, have_bad, bad);
	save_models();
	fprintf(stderr, "fsx: FAILED at op %" PRIu64 " of %" PRIu64 " (seed %" PRIu64 "); files left in %s\n", opnum,
		numops, seed, dir);
	exit(1);
}

/* Generic failure: syscall error, size mismatch, short read, ... */
static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "fsx: FAILURE at op %" PRIu64 " (seed %" PRIu64 "): ", opnum, seed);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	die_common(cur ? cur->file : 0, false, 0);
}

/*
 * Data mismatch in [off, off+n) of file fi: buf holds what the filesystem
 * returned.  Reports and exits.
 */
static void mismatch(int fi, uint64_t off, const unsigned char *buf, uint64_t n, const char *what)
    __attribute__((noreturn));
static void mismatch(int fi, uint64_t off, const unsigned char *buf, uint64_t n, const char *what)
{
	const unsigned char *m = files[fi].model + off;
	uint64_t first = 0, last = 0, nbad = 0;
	bool got_zero = true, exp_zero = true;

	for (uint64_t i = 0; i < n; i++) {
		if (m[i] != buf[i]) {
			if (!nbad)
				first = i;
			last = i;
			nbad++;
			got_zero &= buf[i] == 0;
			exp_zero &= m[i] == 0;
		}
	}
	fflush(stdout);
	fprintf(stderr,
		"fsx: MISMATCH at op %" PRIu64 " (seed %" PRIu64 "): %s of %s "
		"range 0x%" PRIx64 " .. 0x%" PRIx64 " (0x%" PRIx64 " bytes), file size 0x%" PRIx64 "\n",
		opnum, seed, what, fname(fi), off, off + n - 1, n, files[fi].size);
	fprintf(stderr,
		"fsx: first bad byte at offset 0x%" PRIx64 " (%" PRIu64 "), "
		"last bad at 0x%" PRIx64 ", %" PRIu64 " bad bytes in range%s\n",
		off + first, off + first, off + last, nbad,
		got_zero   ? " (got only zeros: lost data / spurious hole?)"
		: exp_zero ? " (expected zeros: stale data in hole/truncated area?)"
			   : "");
	fprintf(stderr, "fsx:   offset       expected  got\n");
	for (uint64_t i = first; i < n && i < first + 16; i++)
		fprintf(stderr, "fsx:   0x%08" PRIx64 "   0x%02x      0x%02x%s\n", off + i, m[i], buf[i],
			m[i] != buf[i] ? "  <--" : "");
	uint32_t last_op = files[fi].pagelast[(off + first) / pagesz];
	if (last_op)
		fprintf(stderr,
			"fsx: the page of the first bad byte was last changed by "
			"op %" PRIu32 " (rerun with -v to see it)\n",
			last_op);
	else
		fprintf(stderr, "fsx: the page of the first bad byte was never written\n");
	die_common(fi, true, off + first);
}

/* Compare buf (n bytes read at off) against the model. */
static void check_bytes(int fi, uint64_t off, const unsigned char *buf, uint64_t n, const char *what)
{
	if (n && memcmp(files[fi].model + off, buf, n) != 0)
		mismatch(fi, off, buf, n, what);
}

static void check_sizes(void)
{
	for (int i = 0; i < nfiles; i++) {
		struct stat st;
		if (fstat(files[i].fd, &st) < 0)
			fail("fstat %s: %s", fname(i), strerror(errno));
		if ((uint64_t)st.st_size != files[i].size)
			fail("size mismatch on %s: fstat says 0x%" PRIx64 " (%" PRIu64 "), model says 0x%" PRIx64
			     " (%" PRIu64 ")",
			     fname(i), (uint64_t)st.st_size, (uint64_t)st.st_size, files[i].size, files[i].size);
	}
}

static void map_sig(int sig)
{
	if (map_active)
		siglongjmp(map_jmp, sig);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* ---- I/O helpers ------------------------------------------------------- */

static void full_pwrite(int fd, const unsigned char *buf, uint64_t n, uint64_t off, const char *what)
{
	uint64_t done = 0;
	while (done < n) {
		ssize_t w = pwrite(fd, buf + done, n - done, (off_t)(off + done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			fail("%s: pwrite(off 0x%" PRIx64 ", len 0x%" PRIx64 "): %s", what, off + done, n - done,
			     strerror(errno));
		if (w == 0)
			fail("%s: pwrite returned 0 at off 0x%" PRIx64, what, off + done);
		done += (uint64_t)w;
	}
}

/* Read up to n bytes at off; loops over short reads until EOF. */
static uint64_t full_pread(int fd, unsigned char *buf, uint64_t n, uint64_t off, const char *what)
{
	uint64_t done = 0;
	while (done < n) {
		ssize_t r = pread(fd, buf + done, n - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail("%s: pread(off 0x%" PRIx64 ", len 0x%" PRIx64 "): %s", what, off + done, n - done,
			     strerror(errno));
		if (r == 0)
			break;
		done += (uint64_t)r;
	}
	return done;
}

/* pread [off, off+len) of file fi and verify length and contents. */
static void check_read(int fi, uint64_t off, uint64_t len, const char *what)
{
	struct tfile *f = &files[fi];
	uint64_t expect = off >= f->size ? 0 : (len < f->size - off ? len : f->size - off);
	uint64_t got = full_pread(f->fd, rbuf, len, off, what);

	if (got != expect) {
		uint64_t n = got < expect ? got : expect;
		check_bytes(fi, off, rbuf, n, what);
		fail("%s of %s at 0x%" PRIx64 " len 0x%" PRIx64 ": got 0x%" PRIx64 " bytes, expected 0x%" PRIx64
		     " (model size 0x%" PRIx64 ")",
		     what, fname(fi), off, len, got, expect, f->size);
	}
	check_bytes(fi, off, rbuf, got, what);
}

/* Remember opnum as the last op that changed [lo, hi) of f. */
static void mark_range(struct tfile *f, uint64_t lo, uint64_t hi)
{
	if (hi > maxlen)
		hi = maxlen;
	for (uint64_t p = lo / pagesz; p * pagesz < hi; p++)
		f->pagelast[p] = (uint32_t)opnum;
}

static void model_set_size(struct tfile *f, uint64_t newsize)
{
	if (newsize != f->size)
		mark_range(f, newsize < f->size ? newsize : f->size, newsize < f->size ? f->size : newsize);
	if (newsize < f->size)
		memset(f->model + newsize, 0, f->size - newsize);
	f->size = newsize;
}

static int open_file(int fi, int flags)
{
	int fd;
	do {
		fd = open(files[fi].path, flags, 0644);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0)
		fail("open %s: %s", files[fi].path, strerror(errno));
	return fd;
}

static void close_fd(int fd, const char *what)
{
	if (close(fd) < 0)
		fail("%s: close: %s", what, strerror(errno));
}

/* ---- random parameter choice ------------------------------------------ */

static uint64_t round_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

/*
 * Length in [1, limit], skewed towards small sizes.  Reads are skewed a bit
 * larger than writes so that data is more likely to be read back before
 * it is overwritten again.
 */
static uint64_t pick_len(uint64_t limit, bool rd)
{
	uint64_t r = rndn(100), cap, len;

	if (r < 40)
		cap = 4 * KiB;
	else if (r < 70)
		cap = 64 * KiB;
	else if (r < (rd ? 90 : 98))
		cap = 512 * KiB;
	else if (r < (rd ? 97 : 98))
		cap = 2 * MiB;
	else
		cap = maxoplen;
	if (cap > maxoplen)
		cap = maxoplen;
	if (cap > limit)
		cap = limit;
	len = 1 + rndn(cap);
	if (rndn(5) == 0) { /* page-multiple length */
		uint64_t a = round_up(len, pagesz);
		if (a <= cap)
			len = a;
	}
	return len;
}

/*
 * Offset in [0, limit), limit > 0.  Biased towards block boundaries of the
 * sizes roamfs may use (64 KiB .. 4 MiB) and towards the current EOF.
 */
static uint64_t pick_off(const struct tfile *f, uint64_t limit)
{
	static const uint64_t bounds[] = {
	    4 * KiB, 64 * KiB, 128 * KiB, 256 * KiB, 1 * MiB, 4 * MiB,
	};
	uint64_t r = rndn(100), off;
	int64_t o;

	if (r < 25) {
		uint64_t b = bounds[rndn(sizeof(bounds) / sizeof(bounds[0]))];
		uint64_t nb = limit / b;
		if (nb == 0) {
			off = rndn(limit);
		} else {
			o = (int64_t)((1 + rndn(nb)) * b) + (int64_t)rndn(4 * pagesz + 1) - (int64_t)(2 * pagesz);
			off = o < 0 ? 0 : (uint64_t)o;
		}
	} else if (r < 40) {
		o = (int64_t)f->size + (int64_t)rndn(128 * KiB + 1) - (int64_t)(64 * KiB);
		off = o < 0 ? 0 : (uint64_t)o;
	} else {
		off = rndn(limit);
	}
	if (rndn(5) == 0)
		off &= ~(pagesz - 1);
	if (off >= limit)
		off = limit - 1;
	return off;
}

/*
 * Fill buf with varied data.  Mostly random bytes with zero runs mixed in
 * (so holes and data are distinguishable and zero-detection paths get
 * exercised), sometimes an op-stamped pattern, sparse data, or all zeros.
 */
static const char *gen_data(unsigned char *buf, uint64_t n)
{
	uint64_t style = rndn(100), i = 0;

	if (style < 3) {
		memset(buf, 0, n);
		return "zeros";
	}
	if (style < 13) {
		for (i = 0; i < n; i++)
			buf[i] = (unsigned char)((opnum * 131 + i) % 251 + 1);
		return "pattern";
	}
	if (style < 20) {
		memset(buf, 0, n);
		uint64_t step = 1 + rndn(1024);
		for (i = rndn(step); i < n; i += step)
			buf[i] = (unsigned char)(1 + rndn(255));
		return "sparse";
	}
	bool runs = style >= 40;
	while (i < n) {
		uint64_t chunk = 1 + rndn(runs ? 8192 : 65536);
		if (chunk > n - i)
			chunk = n - i;
		if (runs && rndn(5) == 0) {
			memset(buf + i, 0, chunk);
		} else {
			uint64_t j = 0;
			for (; j + 8 <= chunk; j += 8) {
				uint64_t v = rnd();
				memcpy(buf + i + j, &v, 8);
			}
			if (j < chunk) {
				uint64_t v = rnd();
				memcpy(buf + i + j, &v, chunk - j);
			}
		}
		i += chunk;
	}
	return runs ? "random+zero runs" : "random";
}

/* ---- operations ------------------------------------------------------- */

/*
 * Offset for a write-like op: half the time anywhere up to MAXLEN (often
 * beyond EOF, leaving a hole), otherwise within or just past the current
 * data, so files do not all drift to MAXLEN.
 */
static uint64_t pick_write_off(const struct tfile *f)
{
	uint64_t limit = maxlen;

	if (rndn(2) == 0 && f->size + 256 * KiB < maxlen)
		limit = f->size + 256 * KiB;
	return pick_off(f, limit);
}

static void op_write(int fi)
{
	struct tfile *f = &files[fi];
	uint64_t off = pick_write_off(f);
	uint64_t len = pick_len(maxlen - off, false);

	cur->off = off;
	cur->len = len;
	cur->note = gen_data(wbuf, len);
	full_pwrite(f->fd, wbuf, len, off, "write");
	memcpy(f->model + off, wbuf, len);
	mark_range(f, off < f->size ? off : f->size, off + len);
	if (off + len > f->size)
		f->size = off + len;
}

static void op_read(int fi, uint64_t off, uint64_t len)
{
	cur->off = off;
	cur->len = len;
	check_read(fi, off, len, "read");
}

static void op_read_random(int fi)
{
	struct tfile *f = &files[fi];
	uint64_t off;

	if (f->size == 0 || rndn(100) < 10)
		off = rndn(maxlen + 64 * KiB); /* possibly beyond EOF */
	else
		off = pick_off(f, f->size);
	op_read(fi, off, pick_len(maxoplen, true));
}

/*
 * Verify that the bytes of the mapping beyond EOF in the last page read
 * as zero (POSIX: the remainder of a partial page is zero-filled).
 */
static void check_eofpage(int fi, const unsigned char *map, uint64_t map_off, uint64_t maplen, const char *what)
{
	uint64_t size = files[fi].size;

	if (size % pagesz == 0 || size < map_off || size >= map_off + maplen)
		return;
	for (uint64_t i = size - map_off; i < maplen; i++)
		if (map[i] != 0)
			fail("%s of %s: byte at 0x%" PRIx64 " beyond EOF 0x%" PRIx64
			     " in the last mapped page is 0x%02x, not zero",
			     what, fname(fi), map_off + i, size, map[i]);
}

static void op_mapread(int fi, uint64_t off, uint64_t len)
{
	struct tfile *f = &files[fi];

	if (f->size == 0 || off >= f->size) {
		cur->off = off;
		cur->len = 0;
		cur->note = "skipped: beyond EOF";
		skipped++;
		return;
	}
	if (len > f->size - off)
		len = f->size - off;
	cur->off = off;
	cur->len = len;

	uint64_t pg = off & ~(pagesz - 1);
	uint64_t maplen = round_up(off + len - pg, pagesz);
	unsigned char *map = mmap(NULL, maplen, PROT_READ, MAP_SHARED, f->fd, (off_t)pg);
	if (map == MAP_FAILED)
		fail("mapread: mmap(len 0x%" PRIx64 ", off 0x%" PRIx64 ", PROT_READ, MAP_SHARED): %s", maplen, pg,
		     strerror(errno));
	int sig = sigsetjmp(map_jmp, 1);
	if (sig) {
		map_active = 0;
		fail("mapread: signal %d (%s) while reading mapping of %s at 0x%" PRIx64, sig, strsignal(sig),
		     fname(fi), pg);
	}
	map_active = 1;
	memcpy(rbuf, map + (off - pg), len);
	check_eofpage(fi, map, pg, maplen, "mapread");
	map_active = 0;
	if (munmap(map, maplen) < 0)
		fail("mapread: munmap: %s", strerror(errno));
	check_bytes(fi, off, rbuf, len, "mapread");
}

static void op_mapread_random(int fi)
{
	struct tfile *f = &files[fi];
	uint64_t off = f->size ? pick_off(f, f->size) : 0;
	op_mapread(fi, off, pick_len(maxoplen, true));
}

/* Like fsx's domapwrite: extend with ftruncate if needed, write via mmap, msync. */
static void op_mapwrite(int fi)
{
	struct tfile *f = &files[fi];
	uint64_t off = pick_write_off(f);
	uint64_t len = pick_len(maxlen - off, false);

	cur->off = off;
	cur->len = len;
	if (off + len > f->size) {
		if (ftruncate(f->fd, (off_t)(off + len)) < 0)
			fail("mapwrite: ftruncate(0x%" PRIx64 ") to extend: %s", off + len, strerror(errno));
		model_set_size(f, off + len);
		cur->size_after = f->size;
	}
	cur->note = gen_data(wbuf, len);

	uint64_t pg = off & ~(pagesz - 1);
	uint64_t maplen = round_up(off + len - pg, pagesz);
	unsigned char *map = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, (off_t)pg);
	if (map == MAP_FAILED)
		fail("mapwrite: mmap(len 0x%" PRIx64 ", off 0x%" PRIx64 ", PROT_READ|PROT_WRITE, MAP_SHARED): %s",
		     maplen, pg, strerror(errno));
	int sig = sigsetjmp(map_jmp, 1);
	if (sig) {
		map_active = 0;
		fail("mapwrite: signal %d (%s) while writing mapping of %s at 0x%" PRIx64, sig, strsignal(sig),
		     fname(fi), pg);
	}
	map_active = 1;
	memcpy(map + (off - pg), wbuf, len);
	check_eofpage(fi, map, pg, maplen, "mapwrite");
	map_active = 0;
	if (msync(map, maplen, MS_SYNC) < 0)
		fail("mapwrite: msync: %s", strerror(errno));
	if (munmap(map, maplen) < 0)
		fail("mapwrite: munmap: %s", strerror(errno));
	memcpy(f->model + off, wbuf, len);
	mark_range(f, off, off + len);
}

static void op_truncate(int fi)
{
	struct tfile *f = &files[fi];
	uint64_t r = rndn(100), newsize;

	if (r < 3) {
		/* open(O_TRUNC) on a second descriptor; the main fd stays open */
		newsize = 0;
		cur->note = "open(O_TRUNC)";
		int fd = open_file(fi, O_RDWR | O_TRUNC);
		close_fd(fd, "truncate: open(O_TRUNC)");
	} else {
		if (rndn(3) != 0) { /* shrink (or same size) */
			newsize = f->size ? pick_off(f, f->size + 1) : 0;
			if (newsize > f->size)
				newsize = f->size;
		} else { /* grow (or same size) */
			newsize = pick_off(f, maxlen + 1);
			if (newsize < f->size)
				newsize = f->size + rndn(maxlen - f->size + 1);
		}
		if (r < 60) {
			cur->note = "ftruncate";
			if (ftruncate(f->fd, (off_t)newsize) < 0)
				fail("ftruncate(0x%" PRIx64 "): %s", newsize, strerror(errno));
		} else {
			cur->note = "truncate(path)";
			if (truncate(f->path, (off_t)newsize) < 0)
				fail("truncate(%s, 0x%" PRIx64 "): %s", f->path, newsize, strerror(errno));
		}
	}
	cur->off = newsize;
	model_set_size(f, newsize);
}

static void op_fallocate(int fi)
{
	struct tfile *f = &files[fi];
	uint64_t off = pick_write_off(f);
	uint64_t len = pick_len(maxlen - off, false);

	cur->off = off;
	cur->len = len;
	if (fallocate(f->fd, 0, (off_t)off, (off_t)len) < 0) {
		if (errno == EOPNOTSUPP || errno == ENOSYS) {
			cur->note = "not supported: fallocate disabled";
			fprintf(stdout, "fsx: fallocate: %s; disabling fallocate\n", strerror(errno));
			weight[OP_FALLOCATE] = 0;
			return;
		}
		fail("fallocate(mode 0, off 0x%" PRIx64 ", len 0x%" PRIx64 "): %s", off, len, strerror(errno));
	}
	if (off + len > f->size) {
		mark_range(f, f->size, off + len);
		f->size = off + len; /* model beyond old EOF is already zero */
	}
}

static void op_append(int fi)
{
	struct tfile *f = &files[fi];

	cur->off = f->size;
	if (f->size >= maxlen) {
		cur->note = "skipped: file at max length";
		skipped++;
		return;
	}
	uint64_t len = pick_len(maxlen - f->size, false);
	cur->len = len;
	cur->note = gen_data(wbuf, len);

	/* a second descriptor opened O_APPEND while the main one stays open */
	int fd = open_file(fi, O_WRONLY | O_APPEND);
	uint64_t done = 0;
	while (done < len) {
		ssize_t w = write(fd, wbuf + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			fail("append: write(len 0x%" PRIx64 ") with O_APPEND: %s", len - done,
			     w < 0 ? strerror(errno) : "returned 0");
		done += (uint64_t)w;
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		fail("append: fstat: %s", strerror(errno));
	if ((uint64_t)st.st_size != f->size + len)
		fail("append: size after O_APPEND write is 0x%" PRIx64 ", expected 0x%" PRIx64, (uint64_t)st.st_size,
		     f->size + len);
	close_fd(fd, "append");
	memcpy(f->model + f->size, wbuf, len);
	mark_range(f, f->size, f->size + len);
	f->size += len;
}

static void op_fsync(int fi)
{
	struct tfile *f = &files[fi];

	if (rndn(2) == 0) {
		cur->note = "fsync";
		if (fsync(f->fd) < 0)
			fail("fsync: %s", strerror(errno));
	} else {
		cur->note = "fdatasync";
		if (fdatasync(f->fd) < 0)
			fail("fdatasync: %s", strerror(errno));
	}
}

/*
 * Drop the clean page cache of the file (POSIX_FADV_DONTNEED), so that the
 * next reads come from the filesystem (for FUSE: from the daemon) instead
 * of pages the kernel still holds from our own writes.  Advisory only.
 */
static void drop_cache(int fi)
{
	int err = posix_fadvise(files[fi].fd, 0, 0, POSIX_FADV_DONTNEED);
	if (err)
		fail("posix_fadvise(DONTNEED) on %s: %s", fname(fi), strerror(err));
}

/* Close and reopen; then spot-check head, tail and a few random ranges. */
static void op_reopen(int fi)
{
	struct tfile *f = &files[fi];

	close_fd(f->fd, "reopen");
	f->fd = -1;
	f->fd = open_file(fi, O_RDWR);
	if (rndn(2) == 0) {
		cur->note = "+ DONTNEED";
		drop_cache(fi);
	}
	check_sizes();
	if (f->size == 0)
		return;
	uint64_t n = f->size < 64 * KiB ? f->size : 64 * KiB;
	check_read(fi, 0, n, "read after reopen (head)");
	check_read(fi, f->size - n, n, "read after reopen (tail)");
	for (int i = 0; i < 8; i++) {
		uint64_t off = pick_off(f, f->size);
		uint64_t len = 1 + rndn(256 * KiB < maxoplen ? 256 * KiB : maxoplen);
		check_read(fi, off, len, "read after reopen");
	}
}

static void op_dropcache(int fi)
{
	cur->note = "posix_fadvise(DONTNEED)";
	drop_cache(fi);
}

static int choose_op(void)
{
	unsigned total = 0;
	for (int t = 0; t < OP_NTYPES; t++)
		total += weight[t];
	unsigned r = (unsigned)rndn(total);
	for (int t = 0; t < OP_NTYPES; t++) {
		if (r < weight[t])
			return t;
		r -= weight[t];
	}
	return OP_WRITE;
}

/* -X: corrupt one model byte, then force a read that covers it. */
static void selftest_flip(void)
{
	int start = (int)rndn((uint64_t)nfiles);
	for (int k = 0; k < nfiles; k++) {
		int fi = (start + k) % nfiles;
		if (files[fi].size == 0)
			continue;
		st_file = fi;
		st_off = rndn(files[fi].size);
		files[fi].model[st_off] ^= 0x5a;
		st_flipped = st_force = true;
		printf("fsx: self-test: flipped model byte of %s at 0x%" PRIx64 " after op %" PRIu64
		       " (this run must fail)\n",
		       fname(fi), st_off, opnum);
		return;
	}
}

static void run_op(void)
{
	int type, fi;

	if (st_force) {
		type = (weight[OP_MAPREAD] && rndn(2)) ? OP_MAPREAD : OP_READ;
		fi = st_file;
	} else {
		type = choose_op();
		fi = (int)rndn((uint64_t)nfiles);
	}

	cur = &oplog[nlogged % LOGN];
	memset(cur, 0, sizeof(*cur));
	cur->opnum = opnum;
	cur->file = fi;
	cur->type = type;
	cur->size_before = cur->size_after = files[fi].size;
	nlogged++;
	opcount[type]++;

	switch (type) {
	case OP_WRITE:
		op_write(fi);
		break;
	case OP_READ:
		if (st_force) {
			uint64_t back = rndn(st_off < 4096 ? st_off + 1 : 4096);
			cur->note = "self-test";
			op_read(fi, st_off - back, back + 1 + rndn(4096));
		} else {
			op_read_random(fi);
		}
		break;
	case OP_MAPREAD:
		if (st_force) {
			uint64_t back = rndn(st_off < 4096 ? st_off + 1 : 4096);
			cur->note = "self-test";
			op_mapread(fi, st_off - back, back + 1 + rndn(4096));
		} else {
			op_mapread_random(fi);
		}
		break;
	case OP_MAPWRITE:
		op_mapwrite(fi);
		break;
	case OP_TRUNCATE:
		op_truncate(fi);
		break;
	case OP_FALLOCATE:
		op_fallocate(fi);
		break;
	case OP_APPEND:
		op_append(fi);
		break;
	case OP_FSYNC:
		op_fsync(fi);
		break;
	case OP_REOPEN:
		op_reopen(fi);
		break;
	case OP_DROPCACHE:
		op_dropcache(fi);
		break;
	}
	st_force = false;
	cur->size_after = files[fi].size;
	if (verbose)
		log_print(stdout, cur, false);
	check_sizes();
}

/* Compare every byte of file fi (through its current descriptor). */
static void full_compare(int fi, const char *what)
{
	struct tfile *f = &files[fi];

	for (uint64_t off = 0; off < f->size; off += CMP_CHUNK) {
		uint64_t n = f->size - off < CMP_CHUNK ? f->size - off : CMP_CHUNK;
		uint64_t got = full_pread(f->fd, rbuf, n, off, what);
		check_bytes(fi, off, rbuf, got, what);
		if (got != n)
			fail("%s of %s: short read at 0x%" PRIx64 " (got 0x%" PRIx64 " of 0x%" PRIx64 " bytes)", what,
			     fname(fi), off, got, n);
	}
	/* and nothing beyond EOF */
	if (full_pread(f->fd, rbuf, 1, f->size, what) != 0)
		fail("%s of %s: data readable beyond EOF 0x%" PRIx64, what, fname(fi), f->size);
}

/*
 * Every -c ops: close and reopen each file, drop its page cache and
 * compare every byte, so data that only lives in the kernel's cache (and
 * not in the filesystem) is caught before it gets overwritten again.
 */
static void periodic_check(void)
{
	for (int fi = 0; fi < nfiles; fi++) {
		struct tfile *f = &files[fi];

		cur = &oplog[nlogged % LOGN];
		memset(cur, 0, sizeof(*cur));
		cur->opnum = opnum;
		cur->file = fi;
		cur->type = OP_REOPEN;
		cur->size_before = cur->size_after = f->size;
		cur->note = "periodic: reopen, DONTNEED, full compare";
		nlogged++;

		close_fd(f->fd, "periodic reopen");
		f->fd = open_file(fi, O_RDWR);
		drop_cache(fi);
		check_sizes();
		full_compare(fi, "periodic full compare");
	}
}

/* Close, reopen read-only and compare every byte of every file. */
static void final_check(void)
{
	for (int fi = 0; fi < nfiles; fi++) {
		struct tfile *f = &files[fi];

		cur = &oplog[nlogged % LOGN];
		memset(cur, 0, sizeof(*cur));
		cur->opnum = opnum;
		cur->file = fi;
		cur->type = OP_REOPEN;
		cur->size_before = cur->size_after = f->size;
		cur->note = "final close, reopen O_RDONLY, full compare";
		nlogged++;

		close_fd(f->fd, "final close");
		f->fd = open_file(fi, O_RDONLY);
		drop_cache(fi);
		check_sizes();
		full_compare(fi, "final full compare");
	}
}

/* ---- setup ------------------------------------------------------------- */

static void usage(void) __attribute__((noreturn));
static void usage(void)
{
	fprintf(stderr,
		"usage: fsx [-n NUMOPS] [-S SEED] [-l] [-m MAXLEN] [-N NFILES] [-o MAXOPLEN]\n"
		"           [-c CHECKEVERY] [-R] [-W] [-F] [-v] [-X] DIR\n"
		"  -n NUMOPS   number of operations (default %llu; %llu with -l)\n"
		"  -S SEED     PRNG seed (default 1; 0 = pick from time and pid)\n"
		"  -l          long mode for manual runs: %llu ops, MAXLEN %llu MiB,\n"
		"              unless -n / -m are given\n"
		"  -m MAXLEN   maximum file length, suffixes k/m/g (default %llu MiB)\n"
		"  -N NFILES   number of files exercised (default %d, max %d)\n"
		"  -o MAXOPLEN maximum length of one read/write (default min(MAXLEN, %llu MiB))\n"
		"  -c N        every N ops reopen each file, drop its page cache and compare\n"
		"              every byte (default %d; 0 = only at the end)\n"
		"  -R / -W     disable mmap reads / mmap writes\n"
		"  -F          disable fallocate (also disabled automatically on EOPNOTSUPP)\n"
		"  -v          print every operation\n"
		"  -X          self-test: flip one model byte after op %d (or halfway) and force\n"
		"              a read of it; the run MUST fail with a MISMATCH report\n"
		"Files DIR/fsx.0 .. are created (DIR too if missing) and removed on success.\n",
		(unsigned long long)DEF_NUMOPS, (unsigned long long)LONG_NUMOPS, (unsigned long long)LONG_NUMOPS,
		(unsigned long long)(LONG_MAXLEN / MiB), (unsigned long long)(DEF_MAXLEN / MiB), DEF_NFILES, MAX_NFILES,
		(unsigned long long)(MAX_MAXOPLEN / MiB), DEF_CHECK_EVERY, SELFTEST_OP);
	exit(2);
}

static uint64_t parse_num(const char *s, bool suffixes)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		usage();
	if (suffixes && *end) {
		switch (*end) {
		case 'k':
		case 'K':
			v <<= 10;
			break;
		case 'm':
		case 'M':
			v <<= 20;
			break;
		case 'g':
		case 'G':
			v <<= 30;
			break;
		default:
			usage();
		}
		end++;
	}
	if (*end)
		usage();
	return v;
}

/* mkdir -p; returns true if the final component was created by us. */
static bool make_dir(const char *path)
{
	char tmp[4096];
	bool created = false;

	if (strlen(path) >= sizeof(tmp)) {
		fprintf(stderr, "fsx: path too long\n");
		exit(2);
	}
	strcpy(tmp, path);
	for (char *p = tmp + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(tmp, 0777) == 0)
				created = true;
			else if (errno == EEXIST)
				created = false;
			else {
				fprintf(stderr, "fsx: mkdir %s: %s\n", tmp, strerror(errno));
				exit(2);
			}
			*p = c;
			if (!c)
				break;
		}
	}
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "fsx: %s is not a directory\n", path);
		exit(2);
	}
	return created;
}

int main(int argc, char **argv)
{
	bool longmode = false, have_n = false, have_m = false;
	uint64_t oplen_opt = 0;
	int c;

	while ((c = getopt(argc, argv, "n:S:lm:N:o:c:RWFvXh")) != -1) {
		switch (c) {
		case 'n':
			numops = parse_num(optarg, false);
			have_n = true;
			break;
		case 'S':
			seed = parse_num(optarg, false);
			break;
		case 'l':
			longmode = true;
			break;
		case 'm':
			maxlen = parse_num(optarg, true);
			have_m = true;
			break;
		case 'N': {
			uint64_t n = parse_num(optarg, false);
			if (n < 1 || n > MAX_NFILES)
				usage();
			nfiles = (int)n;
			break;
		}
		case 'o':
			oplen_opt = parse_num(optarg, true);
			break;
		case 'c':
			check_every = parse_num(optarg, false);
			break;
		case 'R':
			weight[OP_MAPREAD] = 0;
			break;
		case 'W':
			weight[OP_MAPWRITE] = 0;
			break;
		case 'F':
			weight[OP_FALLOCATE] = 0;
			break;
		case 'v':
			verbose = true;
			break;
		case 'X':
			selftest = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1)
		usage();
	dir = argv[optind];
	if (longmode) {
		if (!have_n)
			numops = LONG_NUMOPS;
		if (!have_m)
			maxlen = LONG_MAXLEN;
	}
	long ps = sysconf(_SC_PAGESIZE);
	pagesz = ps > 0 ? (uint64_t)ps : 4096;
	if (maxlen < pagesz) {
		fprintf(stderr, "fsx: MAXLEN must be at least one page (%" PRIu64 ")\n", pagesz);
		exit(2);
	}
	maxoplen = oplen_opt ? oplen_opt : (maxlen < MAX_MAXOPLEN ? maxlen : MAX_MAXOPLEN);
	if (maxoplen > maxlen)
		maxoplen = maxlen;
	if (seed == 0)
		seed = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
	rng_seed(seed);

	bool created = make_dir(dir);

	/* Model (zero beyond EOF), write buffer, read buffer. */
	wbuf = malloc(maxoplen);
	rbuf = malloc(maxoplen > CMP_CHUNK ? maxoplen : CMP_CHUNK);
	if (!wbuf || !rbuf) {
		fprintf(stderr, "fsx: out of memory\n");
		exit(2);
	}
	for (int i = 0; i < nfiles; i++) {
		size_t plen = strlen(dir) + 16;
		files[i].path = malloc(plen);
		files[i].model = calloc(1, maxlen);
		files[i].pagelast = calloc(maxlen / pagesz + 1, sizeof(uint32_t));
		if (!files[i].path || !files[i].model || !files[i].pagelast) {
			fprintf(stderr, "fsx: out of memory\n");
			exit(2);
		}
		snprintf(files[i].path, plen, "%s/fsx.%d", dir, i);
		files[i].fd = -1;
	}
	for (int i = 0; i < nfiles; i++) {
		char p[4096];
		files[i].fd = open_file(i, O_RDWR | O_CREAT | O_TRUNC);
		/* drop a model saved by an earlier failed run */
		snprintf(p, sizeof(p), "%s.fsxgood", files[i].path);
		unlink(p);
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = map_sig;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);

	printf("fsx: seed %" PRIu64 ", %" PRIu64 " ops, %d files of up to %" PRIu64 " bytes (max op 0x%" PRIx64
	       ") in %s%s\n",
	       seed, numops, nfiles, maxlen, maxoplen, dir, selftest ? " [self-test: must fail]" : "");
	fflush(stdout);

	uint64_t flip_at = numops >= 2 * SELFTEST_OP ? SELFTEST_OP : numops / 2;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (opnum = 1; opnum <= numops; opnum++) {
		run_op();
		if (check_every && opnum % check_every == 0 && opnum < numops)
			periodic_check();
		if (selftest && !st_flipped && opnum >= flip_at && opnum < numops)
			selftest_flip();
		if (longmode && opnum % 100000 == 0) {
			printf("fsx: %" PRIu64 " ops done\n", opnum);
			fflush(stdout);
		}
	}
	opnum = numops;
	final_check();
	clock_gettime(CLOCK_MONOTONIC, &t1);

	if (selftest) {
		fprintf(stderr,
			"fsx: self-test %s: the corrupted model byte was NOT "
			"detected\n",
			st_flipped ? "FAILED" : "did not run (too few ops)");
		return 1;
	}

	for (int i = 0; i < nfiles; i++) {
		close(files[i].fd);
		if (unlink(files[i].path) < 0)
			fprintf(stderr, "fsx: warning: unlink %s: %s\n", files[i].path, strerror(errno));
	}
	if (created)
		rmdir(dir); /* best effort */

	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("fsx: op counts:");
	for (int t = 0; t < OP_NTYPES; t++)
		printf(" %s=%" PRIu64, opname[t], opcount[t]);
	printf(" (skipped %" PRIu64 ")%s; %.2f s\n", skipped, weight[OP_FALLOCATE] ? "" : " [fallocate disabled]",
	       secs);
	printf("fsx: %" PRIu64 " ops OK (seed %" PRIu64 ")\n", numops, seed);
	for (int i = 0; i < nfiles; i++)
		free(files[i].model), free(files[i].pagelast), free(files[i].path);
	free(wbuf);
	free(rbuf);
	return 0;
}
