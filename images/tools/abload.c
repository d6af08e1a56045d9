// SPDX-License-Identifier: GPL-2.0
/*
 * abload: guest workloads whose memory free page reporting cannot give back.
 *
 * Free page reporting (FPR) returns only pages the guest has *freed* to its
 * buddy allocator. Two common kinds of guest memory are never free, so FPR
 * cannot touch them, while a balloon (which makes the guest reclaim) can:
 *
 *   abload stream -d PATH -S SECONDS [-b BLOCK_KIB]
 *	Reads PATH (a block device such as /dev/vdb, or a file) sequentially
 *	with plain read(2) through the page cache, from byte 0 to its end,
 *	wrapping to 0, for SECONDS. With more data than guest RAM, the cache
 *	fills the guest and is worthless: every page is evicted before it is
 *	read again. It stays resident (not free) until reclaim, so FPR never
 *	reports it. Score: MB/s (10^6 bytes per second).
 *
 *   abload reread -d PATH -H HOT_MIB -S SECONDS [-b BLOCK_KIB]
 *	Reads the first HOT_MIB MiB of PATH over and over for SECONDS: cache
 *	worth keeping. Taking it away (a balloon squeezing too hard) shows as a
 *	drop in MB/s, because the hot set must then come from the disk again.
 *
 *   abload idle -m MIB [-S SECONDS]
 *	mmap()s MIB MiB of private anonymous memory and writes every 8-byte
 *	word of every page with a xorshift64 sequence (no page is zero, no two
 *	pages are alike, nothing compresses well: neither a zero-page check nor
 *	KSM-like merging can make it cheap), prints how long that took, then
 *	holds it without touching it again for SECONDS, or until SIGTERM or
 *	SIGINT when -S is not given. Allocated, never used again, never freed
 *	while held: FPR cannot report it; only swap (guest or host) can.
 *
 * BLOCK_KIB defaults to 1024. The size of PATH is BLKGETSIZE64 for a block
 * device, st_size for a regular file. Times are CLOCK_MONOTONIC.
 *
 * Output (stdout), exactly one result line per run, printed at its end:
 *
 *   abload stream: bytes=B seconds=T mb_s=R passes=P span=N block_kib=K end=E path=PATH
 *   abload reread: bytes=B seconds=T mb_s=R passes=P span=N block_kib=K end=E path=PATH
 *   abload idle: mib=M touched_mib=W touch_seconds=T held_seconds=H end=E
 *
 * bytes: read in total; seconds: of reading; mb_s: bytes / seconds / 10^6;
 * span: bytes read per pass (the size of PATH for stream, HOT_MIB MiB for
 * reread); passes: whole passes over the span completed, so
 * passes == bytes / span; path is the rest of the line. idle also prints,
 * as soon as every page is written, a progress line (not a result line):
 *
 *   abload idle: holding mib=M touch_seconds=T
 *
 * end says why the run ended: "time" (SECONDS were up), "signal" (idle
 * without -S: SIGTERM or SIGINT, its normal end) or "interrupted" (SIGTERM
 * or SIGINT before SECONDS were up, or while idle was still writing: the
 * numbers cover only what was done). On SIGTERM/SIGINT the current read
 * finishes, the result line is printed and the exit status is 0; any other
 * fatal signal (SIGKILL, SIGHUP) leaves no result line at all.
 *
 * Errors: one line on stderr, "abload: ...". Exit status 2 for bad usage
 * (unknown kind or option, bad or missing number, HOT_MIB beyond the end of
 * PATH, PATH neither a block device nor a regular file, or empty), 1 for a
 * failing system call (open, read, mmap, ...). abload -h prints the usage on
 * stdout and exits 0.
 *
 * Built static by the rig and installed in the guest image's
 * /opt/autoballoon/bin.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIB		(1024ULL * 1024)
#define MAX_BLOCK_KIB	65536U		/* 64 MiB per read(2) */
#define MAX_MIB		(16ULL * 1024 * 1024)	/* 16 TiB */

static const char usage_text[] =
	"Usage: abload stream -d PATH -S SECONDS [-b BLOCK_KIB]\n"
	"       abload reread -d PATH -H HOT_MIB -S SECONDS [-b BLOCK_KIB]\n"
	"       abload idle -m MIB [-S SECONDS]\n"
	"       abload -h\n"
	"stream  read PATH (block device or file) from start to end, wrapping,\n"
	"        through the page cache, for SECONDS; prints MB/s\n"
	"reread  read the first HOT_MIB MiB of PATH over and over for SECONDS;\n"
	"        prints MB/s\n"
	"idle    write MIB MiB of anonymous memory once, then hold it untouched\n"
	"        for SECONDS (default: until SIGTERM or SIGINT)\n"
	"-b      bytes per read(2), in KiB (default 1024)\n"
	"Result line: 'abload KIND: key=value ... end=time|signal|interrupted'\n"
	"Exit status: 0 done (also on SIGTERM/SIGINT), 1 I/O error, 2 bad usage\n";

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

/* One line on stderr, then exit with status (2: usage, 1: I/O). */
__attribute__((noreturn, format(printf, 2, 3)))
static void die(int status, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("abload: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

/* A positive decimal integer no larger than max, or die(2). */
static unsigned long long parse_count(const char *kind, int opt,
				      const char *arg, unsigned long long max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (*arg < '0' || *arg > '9' || errno || *end || v == 0 || v > max)
		die(2, "%s: -%c wants a whole number from 1 to %llu, not '%s'",
		    kind, opt, max, arg);
	return v;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* SIGTERM and SIGINT set stop_signal; no SA_RESTART, so they end a sleep. */
static void catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL))
		die(1, "sigaction: %s", strerror(errno));
}

struct options {
	const char *path;	/* -d */
	unsigned long long hot_mib;	/* -H */
	unsigned long long mib;	/* -m */
	unsigned long long seconds;	/* -S, 0: not given */
	unsigned long long block_kib;	/* -b */
};

static void read_options(const char *kind, const char *optstring, int argc,
			 char *argv[], struct options *o)
{
	int c;

	memset(o, 0, sizeof(*o));
	o->block_kib = 1024;
	opterr = 0;
	optind = 1;	/* argv[0] is the kind */
	while ((c = getopt(argc, argv, optstring)) != -1) {
		switch (c) {
		case 'd':
			o->path = optarg;
			break;
		case 'H':
			o->hot_mib = parse_count(kind, c, optarg, MAX_MIB);
			break;
		case 'm':
			o->mib = parse_count(kind, c, optarg, MAX_MIB);
			break;
		case 'S':
			o->seconds = parse_count(kind, c, optarg, INT_MAX);
			break;
		case 'b':
			o->block_kib = parse_count(kind, c, optarg,
						   MAX_BLOCK_KIB);
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		default:
			if (optopt != ':' && strchr(optstring, optopt))
				die(2, "%s: -%c needs a value (abload -h for usage)",
				    kind, optopt);
			die(2, "%s: unknown option -%c (abload -h for usage)",
			    kind, optopt);
		}
	}
	if (optind < argc)
		die(2, "%s: unexpected argument '%s' (abload -h for usage)",
		    kind, argv[optind]);
}

/* Open PATH for reading and return its size in bytes. */
static int open_data(const char *path, uint64_t *size)
{
	struct stat st;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd < 0)
		die(1, "cannot open %s: %s", path, strerror(errno));
	if (fstat(fd, &st))
		die(1, "cannot stat %s: %s", path, strerror(errno));
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size))
			die(1, "BLKGETSIZE64 on %s: %s", path,
			    strerror(errno));
	} else if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
	} else {
		die(2, "%s is neither a block device nor a regular file",
		    path);
	}
	if (*size == 0)
		die(2, "%s is empty", path);
	return fd;
}

/* stream (hot_mib == 0: the whole of PATH) and reread. */
static int run_read(const char *kind, int argc, char *argv[])
{
	int reread = !strcmp(kind, "reread");
	uint64_t size, span, off = 0, bytes = 0, passes = 0;
	double start, end, deadline, secs;
	struct options o;
	size_t block;
	char *buf;
	ssize_t n;
	int fd;

	read_options(kind, reread ? "d:H:S:b:h" : "d:S:b:h", argc, argv, &o);
	if (!o.path)
		die(2, "%s: -d PATH is required (abload -h for usage)", kind);
	if (reread && !o.hot_mib)
		die(2, "%s: -H HOT_MIB is required (abload -h for usage)",
		    kind);
	if (!o.seconds)
		die(2, "%s: -S SECONDS is required (abload -h for usage)",
		    kind);

	block = o.block_kib * 1024;
	if (posix_memalign((void **)&buf, 4096, block))
		die(1, "cannot allocate a %llu KiB buffer", o.block_kib);
	catch_signals();
	fd = open_data(o.path, &size);
	span = size;
	if (reread) {
		span = o.hot_mib * MIB;
		if (span > size)
			die(2, "%s: -H %llu MiB is more than %s holds (%llu bytes)",
			    kind, o.hot_mib, o.path,
			    (unsigned long long)size);
	}

	start = now();
	deadline = start + o.seconds;
	end = start;
	while (!stop_signal && end < deadline) {
		size_t want = span - off < block ? span - off : block;

		n = read(fd, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die(1, "read %s at byte %llu: %s", o.path,
			    (unsigned long long)off, strerror(errno));
		if (n == 0)
			die(1, "read %s: unexpected end at byte %llu of %llu",
			    o.path, (unsigned long long)off,
			    (unsigned long long)size);
		off += n;
		bytes += n;
		if (off == span) {
			passes++;
			off = 0;
			if (lseek(fd, 0, SEEK_SET) < 0)
				die(1, "lseek %s: %s", o.path,
				    strerror(errno));
		}
		end = now();
	}
	close(fd);
	free(buf);

	secs = end - start;
	printf("abload %s: bytes=%llu seconds=%.3f mb_s=%.2f passes=%llu "
	       "span=%llu block_kib=%llu end=%s path=%s\n", kind,
	       (unsigned long long)bytes, secs,
	       secs > 0 ? bytes / secs / 1e6 : 0.0,
	       (unsigned long long)passes, (unsigned long long)span,
	       o.block_kib, stop_signal ? "interrupted" : "time", o.path);
	return 0;
}

/*
 * Wait, with SIGTERM and SIGINT blocked, until one of them arrives or until
 * `deadline` (0: none). Returns the signal, or 0 when the time is up.
 */
static int hold(double deadline)
{
	struct timespec ts;
	sigset_t set;
	double left;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		die(1, "sigprocmask: %s", strerror(errno));
	/* One that came before the block was caught by on_signal() */
	if (stop_signal)
		return stop_signal;
	for (;;) {
		if (!deadline) {
			sig = sigwaitinfo(&set, NULL);
		} else {
			left = deadline - now();
			if (left <= 0)
				return 0;
			ts.tv_sec = (time_t)left;
			ts.tv_nsec = (long)((left - ts.tv_sec) * 1e9);
			sig = sigtimedwait(&set, NULL, &ts);
			if (sig < 0 && errno == EAGAIN)
				return 0;
		}
		if (sig > 0)
			return sig;
		if (errno != EINTR)
			die(1, "waiting for a signal: %s", strerror(errno));
	}
}

static int run_idle(int argc, char *argv[])
{
	uint64_t x = 0x9e3779b97f4a7c15ULL, *word, *stop_at;
	double start, touched, held_until, touch_s, held_s = 0;
	size_t len, page_size, page, pages, done = 0;
	const char *end = "interrupted";
	struct options o;
	char *mem;
	long psz;

	read_options("idle", "m:S:h", argc, argv, &o);
	if (!o.mib)
		die(2, "idle: -m MIB is required (abload -h for usage)");
	if (o.mib * MIB > SIZE_MAX / 2)
		die(2, "idle: -m %llu MiB is too large", o.mib);
	psz = sysconf(_SC_PAGESIZE);
	page_size = psz > 0 ? (size_t)psz : 4096;
	len = o.mib * MIB;
	pages = len / page_size;

	catch_signals();
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die(1, "idle: mmap %llu MiB: %s", o.mib, strerror(errno));

	/* Every word of every page: xorshift64, a new value each time */
	x ^= (uint64_t)getpid() << 32;
	start = now();
	for (page = 0; page < pages && !stop_signal; page++) {
		word = (uint64_t *)(mem + page * page_size);
		stop_at = word + page_size / sizeof(*word);
		for (; word < stop_at; word++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			*word = x;
		}
		done++;
	}
	touched = now();
	touch_s = touched - start;

	if (done == pages) {
		printf("abload idle: holding mib=%llu touch_seconds=%.3f\n",
		       o.mib, touch_s);
		fflush(stdout);
		held_until = o.seconds ? touched + o.seconds : 0;
		if (!hold(held_until))
			end = "time";
		else
			end = o.seconds ? "interrupted" : "signal";
		held_s = now() - touched;
	}
	munmap(mem, len);

	printf("abload idle: mib=%llu touched_mib=%llu touch_seconds=%.3f "
	       "held_seconds=%.3f end=%s\n", o.mib,
	       (unsigned long long)(done * page_size / MIB), touch_s, held_s,
	       end);
	return 0;
}

int main(int argc, char *argv[])
{
	const char *kind = argc > 1 ? argv[1] : NULL;

	if (!kind)
		die(2, "no kind given: stream, reread or idle (abload -h for usage)");
	if (!strcmp(kind, "-h") || !strcmp(kind, "--help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (!strcmp(kind, "stream") || !strcmp(kind, "reread"))
		return run_read(kind, argc - 1, argv + 1);
	if (!strcmp(kind, "idle"))
		return run_idle(argc - 1, argv + 1);
	die(2, "unknown kind '%s': stream, reread or idle (abload -h for usage)",
	    kind);
}
