/*
 * admin.c - `roamfs fsck` and `roamfs gc`: option parsing and printing around sync/gc.c.
 */
#include "cli/admin.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "fs/log.h"
#include "sync/gc.h"

static const char usage_fsck[] =
    "usage: roamfs fsck STORE [options]\n"
    "\n"
    "Checks a workspace's store without mounting it: the log (every record parses and continues\n"
    "the hash chain), every pack the metadata names (present, trailer agrees, every block decodes\n"
    "and hashes right), every block a file names has a location, and lists orphan packs.\n"
    "Damaged blocks are traced to the files that lose data, by path and inode.\n"
    "\n"
    "  --repair              fix what is safe, in one log record: re-point a damaged block to an\n"
    "                        intact copy in another pack; remove the record of a block whose data\n"
    "                        is gone, so writing the same bytes again stores them anew. Never\n"
    "                        deletes store objects and cannot bring back lost bytes\n"
    "  --quick               check pack trailers only; do not read block data\n"
    "  --work-dir DIR        where the private metadata replica is built (default $TMPDIR or /tmp)\n"
    "  -v                    log what the library does (to stderr)\n"
    "\n"
    "Exit status: 0 clean, 1 problems found (also after --repair: run fsck again to confirm),\n"
    "2 the check could not run (store unreachable, not a workspace).\n";

static const char usage_gc[] =
    "usage: roamfs gc STORE [options]\n"
    "\n"
    "Deletes packs that hold no block any file uses. A pack goes only when it is dead now, was\n"
    "created more than the grace period ago, no log record newer than the grace period names it,\n"
    "and its block records were retired (by a log record gc writes) at least the grace period\n"
    "earlier: one run retires dead packs, a run after the grace period deletes them. See docs/gc.md.\n"
    "\n"
    "  --dry-run             report what would be retired and deleted; change nothing\n"
    "  --grace SECONDS       the grace period (default 3600); 0 deletes at once and is safe only\n"
    "                        while no host has the workspace mounted\n"
    "  --work-dir DIR        where the private metadata replica is built (default $TMPDIR or /tmp)\n"
    "  -v                    log what the library does (to stderr)\n"
    "\n"
    "Exit status: 0 done, 1 some deletes failed, 2 gc could not run.\n";

static void human(uint64_t bytes, char *buf, size_t len)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)bytes;
	int u = 0;
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, len, "%.1f %s", v, unit[u]);
}

static void print_note(void *arg, const struct rfs_note *n)
{
	(void)arg;
	static const char *const label[] = {
	    [RFS_NOTE_INFO] = "info",
	    [RFS_NOTE_PROBLEM] = "problem",
	    [RFS_NOTE_LOST_FILE] = "lost",
	    [RFS_NOTE_REPAIR] = "repaired",
	};
	printf("%s: %s\n", label[n->kind], n->msg);
	fflush(stdout);
}

/* What fsck and gc share: --help, getopt over the command's options plus -v, exactly one
 * STORE operand, the log level, opening the store. */
struct admin_cmd {
	const char *usage;
	const struct option *longopts;
	/* one option of the command; returns 0, or 2 after printing why */
	int (*opt)(void *opts, int c, const char *arg);
	void *opts;
};

/* Returns 0 with *s open and *url the STORE operand, 1 when --help was printed (exit 0), or
 * 2 (the exit status for usage errors and an unreachable store; the cause is printed). */
static int admin_start(const struct admin_cmd *cmd, int argc, char **argv, struct rfs_store **s, const char **url)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(cmd->usage, stdout);
			return 1;
		}
	int c, verbose = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "v", cmd->longopts, NULL)) != -1) {
		if (c == 'v') {
			verbose = 1;
		} else if (c == '?' || cmd->opt(cmd->opts, c, optarg) != 0) {
			if (c == '?')
				fputs(cmd->usage, stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fputs(cmd->usage, stderr);
		return 2;
	}
	rfs_log_level = verbose ? LOG_DEBUG : LOG_ERR;
	*url = argv[optind];
	char err[1024] = "";
	int rc = rfs_store_open(*url, s, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "roamfs: error: %s\n", err[0] ? err : strerror(-rc));
		return 2;
	}
	return 0;
}

/* ---------- fsck ---------- */

static int fsck_opt(void *opts, int c, const char *arg)
{
	struct rfs_fsck_opts *o = opts;
	if (c == 'r')
		o->repair = 1;
	else if (c == 'q')
		o->quick = 1;
	else
		o->work_dir = arg;
	return 0;
}

int rfs_cmd_fsck(int argc, char **argv)
{
	static const struct option longopts[] = {{"repair", no_argument, NULL, 'r'},
						 {"quick", no_argument, NULL, 'q'},
						 {"work-dir", required_argument, NULL, 'w'},
						 {NULL, 0, NULL, 0}};
	struct rfs_fsck_opts o = {.cb = print_note};
	const struct admin_cmd cmd = {usage_fsck, longopts, fsck_opt, &o};
	struct rfs_store *s;
	const char *url;
	int start = admin_start(&cmd, argc, argv, &s, &url);
	if (start)
		return start == 1 ? 0 : 2;
	struct rfs_fsck_stats st;
	char err[1024] = "";
	int rc = rfs_fsck(s, &o, &st, err, sizeof(err));
	if (rc < 0) {
		rfs_store_close(s);
		fprintf(stderr, "roamfs: error: fsck of '%s' could not finish: %s\n", url,
			err[0] ? err : strerror(-rc));
		return 2;
	}
	char ob[32];
	human(st.orphan_bytes, ob, sizeof(ob));
	printf("checked %s: %" PRId64 " log records, %" PRIu64 " packs, %" PRIu64 " blocks (%" PRIu64
	       " read and verified), %" PRIu64 " orphan packs (%s)\n",
	       url, st.log_records, st.packs, st.blocks, st.blocks_verified, st.orphans, ob);
	if (!st.problems) {
		printf("clean\n");
	} else {
		printf("%" PRIu64 " problem(s): %" PRIu64 " pack(s) missing, %" PRIu64 " damaged, %" PRIu64
		       " block(s) unreadable, %" PRIu64 " without a location; %" PRIu64 " file(s) lose data\n",
		       st.problems, st.packs_missing, st.packs_damaged, st.blocks_bad, st.blocks_unplaced,
		       st.files_lost);
		if (o.repair)
			printf("repair: %" PRIu64 " block(s) re-pointed to intact copies, %" PRIu64
			       " record(s) of lost blocks removed; run 'roamfs fsck' again to confirm\n",
			       st.repaired, st.repair_removed);
		else if (st.blocks_bad || st.blocks_unplaced)
			printf("'roamfs fsck --repair' re-points blocks that have an intact copy elsewhere; lost bytes"
			       " must come back from a backup (write the files again)\n");
	}
	rfs_store_close(s);
	return st.problems ? 1 : 0;
}

/* ---------- gc ---------- */

static int gc_opt(void *opts, int c, const char *arg)
{
	struct rfs_gc_opts *o = opts;
	if (c == 'n') {
		o->dry_run = 1;
	} else if (c == 'g') {
		char *end;
		errno = 0;
		long long v = strtoll(arg, &end, 10);
		if (errno || end == arg || *end || v < 0 || v > 100LL * 365 * 86400) {
			fprintf(stderr, "roamfs: error: invalid --grace '%s': give seconds, e.g. 3600\n", arg);
			return 2;
		}
		o->grace_s = v;
	} else {
		o->work_dir = arg;
	}
	return 0;
}

int rfs_cmd_gc(int argc, char **argv)
{
	static const struct option longopts[] = {{"dry-run", no_argument, NULL, 'n'},
						 {"grace", required_argument, NULL, 'g'},
						 {"work-dir", required_argument, NULL, 'w'},
						 {NULL, 0, NULL, 0}};
	struct rfs_gc_opts o = {.grace_s = RFS_GC_DEFAULT_GRACE_S, .cb = print_note};
	const struct admin_cmd cmd = {usage_gc, longopts, gc_opt, &o};
	struct rfs_store *s;
	const char *url;
	int start = admin_start(&cmd, argc, argv, &s, &url);
	if (start)
		return start == 1 ? 0 : 2;
	struct rfs_gc_stats st;
	char err[1024] = "";
	int rc = rfs_gc(s, &o, &st, err, sizeof(err));
	rfs_store_close(s);
	if (rc < 0) {
		fprintf(stderr, "roamfs: error: gc of '%s' could not finish: %s\n", url, err[0] ? err : strerror(-rc));
		return 2;
	}
	char all[32], live[32], freed[32];
	human(st.bytes, all, sizeof(all));
	human(st.live_bytes, live, sizeof(live));
	human(st.deleted_bytes, freed, sizeof(freed));
	printf("gc of %s: %" PRIu64 " packs (%s), %" PRIu64 " live (%s)\n", url, st.objects, all, st.live, live);
	if (st.retired_packs)
		printf("%s %" PRIu64 " dead pack(s) (%" PRIu64 " block records)\n",
		       o.dry_run ? "would retire" : "retired", st.retired_packs, st.retired_blocks);
	if (st.kept_young || st.kept_recent)
		printf("kept %" PRIu64 " dead pack(s) within the %" PRId64 " s grace period (%" PRIu64
		       " created recently, %" PRIu64 " named by a recent log record)\n",
		       st.kept_young + st.kept_recent, o.grace_s, st.kept_young, st.kept_recent);
	if (st.healed)
		printf("%s %" PRIu64 " block record(s) that files still needed\n",
		       o.dry_run ? "would restore" : "restored", st.healed);
	if (st.other)
		printf("left alone %" PRIu64 " object(s) under data/ that are not packs\n", st.other);
	printf("%s %" PRIu64 " object(s), %s (%" PRIu64 " bytes)\n", o.dry_run ? "would free" : "freed", st.deleted,
	       freed, st.deleted_bytes);
	if (st.failed) {
		fprintf(stderr, "roamfs: error: %" PRIu64 " pack(s) could not be deleted (see above); run gc again\n",
			st.failed);
		return 1;
	}
	return 0;
}
