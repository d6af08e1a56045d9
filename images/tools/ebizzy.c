// SPDX-License-Identifier: GPL-2.0
/*
 * ebizzy: our own implementation of the ebizzy 0.3 workload (a web search
 * application server: large in-memory working set, low locality, and an
 * allocate/copy/search/free cycle), with the same flags and the same output.
 *
 * N chunks of S bytes are filled with ordered records (unsigned longs
 * 0, 1, 2, ...). T threads then loop until S seconds are up: pick a random
 * chunk, allocate a thread-private buffer, copy the chunk into it, pick a
 * random key of the copy, search it (binary search, or linear with -z), free
 * the buffer, and count one record. At the end:
 *
 *	%u records/s
 *	real %5.2f s
 *	user %5.2f s
 *	sys  %5.2f s
 *
 * Differences from ebizzy 0.3: each thread has its own, properly seeded
 * random generator (0.3's rand_num() multiplies a zero state, so every thread
 * picks chunk 0 forever); the run time is measured with CLOCK_MONOTONIC to
 * the nanosecond rather than time() to the second; -D (ours) dumps how often
 * each chunk was picked and how many searches found their key.
 *
 * Built static by the rig and installed in the guest image's
 * /opt/autoballoon/bin.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

typedef unsigned long record_t;

#define RECORD_SIZE	sizeof(record_t)

/* Command line options; defaults are ebizzy 0.3's (see read_options()). */
static unsigned int always_mmap;	/* -m */
static unsigned int never_mmap;		/* -M */
static unsigned int chunks;		/* -n */
static unsigned int use_permissions;	/* -p */
static unsigned int use_holes;		/* -P */
static unsigned int random_size;	/* -R */
static size_t chunk_size;		/* -s */
static unsigned int seconds;		/* -S */
static unsigned int threads;		/* -t */
static unsigned int touch_pages;	/* -T */
static unsigned int verbose;		/* -v, -vv, -vvv */
static unsigned int linear;		/* -z */
static unsigned int no_lib_memcpy;	/* -l */
static unsigned int dump_stats;		/* -D, ours */

static const char *cmd;
static size_t page_size;
static record_t **mem;
static void **hole_mem;
static atomic_int stop;

struct worker {
	pthread_t tid;
	unsigned int index;
	uint64_t rng;
	uint64_t records;
	uint64_t searches;
	uint64_t found;
	uint64_t *picked;	/* per chunk */
};

static void usage(void)
{
	fprintf(stderr, "Usage: %s [options]\n"
		"-T\t\t Just 'touch' the allocated pages\n"
		"-l\t\t Don't use library memcpy\n"
		"-m\t\t Always use mmap instead of malloc\n"
		"-M\t\t Never use mmap\n"
		"-n <num>\t Number of memory chunks to allocate\n"
		"-p \t\t Prevent mmap coalescing using permissions\n"
		"-P \t\t Prevent mmap coalescing using holes\n"
		"-R\t\t Randomize size of memory to copy and search\n"
		"-s <size>\t Size of memory chunks, in bytes\n"
		"-S <seconds>\t Number of seconds to run\n"
		"-t <num>\t Number of threads (2 * number cpus by default)\n"
		"-v[v[v]]\t Be verbose (more v's for more verbose)\n"
		"-z\t\t Linear search instead of binary search\n"
		"-D\t\t At exit, print per-chunk pick counts and search "
		"results to stderr\n",
		cmd);
	exit(1);
}

/* A positive integer no larger than max, or usage(). */
static unsigned long long parse_count(const char *arg, unsigned long long max)
{
	unsigned long long v;
	char *end;

	if (*arg < '0' || *arg > '9')
		usage();
	errno = 0;
	v = strtoull(arg, &end, 0);
	if (errno || *end || v == 0 || v > max)
		usage();
	return v;
}

static void read_options(int argc, char *argv[])
{
	long ncpus, psz;
	int c;

	psz = sysconf(_SC_PAGESIZE);
	page_size = psz > 0 ? (size_t)psz : 4096;
	ncpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpus < 1)
		ncpus = 1;

	threads = 2 * ncpus;
	chunks = 10;
	chunk_size = RECORD_SIZE * 64 * 1024;
	seconds = 10;

	cmd = argv[0];
	while ((c = getopt(argc, argv, "DlmMn:pPRs:S:t:Tvz")) != -1) {
		switch (c) {
		case 'D':
			dump_stats = 1;
			break;
		case 'l':
			no_lib_memcpy = 1;
			break;
		case 'm':
			always_mmap = 1;
			break;
		case 'M':
			never_mmap = 1;
			break;
		case 'n':
			chunks = parse_count(optarg, UINT_MAX);
			break;
		case 'p':
			use_permissions = 1;
			break;
		case 'P':
			use_holes = 1;
			break;
		case 'R':
			random_size = 1;
			break;
		case 's':
			chunk_size = parse_count(optarg, SIZE_MAX / 2);
			break;
		case 'S':
			seconds = parse_count(optarg, INT_MAX);
			break;
		case 't':
			threads = parse_count(optarg, 65536);
			break;
		case 'T':
			touch_pages = 1;
			break;
		case 'v':
			verbose++;
			break;
		case 'z':
			linear = 1;
			break;
		default:
			usage();
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", cmd,
			argv[optind]);
		usage();
	}

	if (verbose) {
		printf("ebizzy 0.3 compatible (autoballoon)\n");
		printf("always_mmap %u\n", always_mmap);
		printf("never_mmap %u\n", never_mmap);
		printf("chunks %u\n", chunks);
		printf("prevent coalescing using permissions %u\n",
		       use_permissions);
		printf("prevent coalescing using holes %u\n", use_holes);
		printf("random_size %u\n", random_size);
		printf("chunk_size %zu\n", chunk_size);
		printf("seconds %u\n", seconds);
		printf("threads %u\n", threads);
		printf("verbose %u\n", verbose);
		printf("linear %u\n", linear);
		printf("touch_pages %u\n", touch_pages);
		printf("no_lib_memcpy %u\n", no_lib_memcpy);
		printf("page size %zu\n", page_size);
	}

	if (always_mmap && never_mmap) {
		fprintf(stderr, "Both -m \"always mmap\" and -M "
			"\"never mmap\" option specified\n");
		usage();
	}
	if (chunk_size < RECORD_SIZE) {
		fprintf(stderr, "Chunk size %zu smaller than record size %zu\n",
			chunk_size, RECORD_SIZE);
		usage();
	}
	if (never_mmap && !mallopt(M_MMAP_MAX, 0)) {
		fprintf(stderr, "mallopt(M_MMAP_MAX, 0) failed\n");
		exit(1);
	}
}

static void *alloc_mem(size_t size)
{
	void *p;

	if (always_mmap) {
		p = mmap(NULL, size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			p = NULL;
	} else {
		p = malloc(size);
	}
	if (!p) {
		fprintf(stderr, "Couldn't allocate %zu bytes, try smaller "
			"chunks or size options\n"
			"Using -n %u chunks and -s %zu size\n",
			size, chunks, chunk_size);
		exit(1);
	}
	return p;
}

static void free_mem(void *p, size_t size)
{
	if (always_mmap)
		munmap(p, size);
	else
		free(p);
}

/*
 * The page-aligned part of a chunk, which -p makes read-only on every other
 * chunk (so that neighbouring mappings differ in permissions and the kernel
 * cannot merge them). Empty when the chunk holds no whole page.
 */
static size_t protect_range(void *chunk, char **start)
{
	uintptr_t lo = ((uintptr_t)chunk + page_size - 1) & ~(page_size - 1);
	uintptr_t hi = ((uintptr_t)chunk + chunk_size) & ~(page_size - 1);

	*start = (char *)lo;
	return hi > lo ? hi - lo : 0;
}

static void set_protection(unsigned int i, int prot)
{
	char *start;
	size_t len = protect_range(mem[i], &start);

	if (len && mprotect(start, len, prot) && verbose)
		printf("mprotect chunk %u: %s\n", i, strerror(errno));
}

static void allocate(void)
{
	unsigned int i;

	mem = calloc(chunks, sizeof(*mem));
	if (use_holes)
		hole_mem = calloc(chunks, sizeof(*hole_mem));
	if (!mem || (use_holes && !hole_mem)) {
		fprintf(stderr, "Couldn't allocate the chunk table\n");
		exit(1);
	}

	for (i = 0; i < chunks; i++) {
		mem[i] = alloc_mem(chunk_size);
		/* A page between chunks, freed below, leaves a hole */
		if (use_holes)
			hole_mem[i] = alloc_mem(page_size);
	}
	if (use_holes) {
		for (i = 0; i < chunks; i++)
			free_mem(hole_mem[i], page_size);
		free(hole_mem);
		hole_mem = NULL;
	}
	if (verbose)
		printf("Allocated memory\n");
}

static void write_pattern(void)
{
	size_t nrec = chunk_size / RECORD_SIZE;
	unsigned int i;
	size_t j;

	for (i = 0; i < chunks; i++) {
		for (j = 0; j < nrec; j++)
			mem[i][j] = j;
		if (use_permissions && i % 2 == 0)
			set_protection(i, PROT_READ);
	}
	if (verbose)
		printf("Wrote memory\n");
}

static void release(void)
{
	unsigned int i;

	for (i = 0; i < chunks; i++) {
		/* free() may write into the chunk: make it writable again */
		if (use_permissions && i % 2 == 0)
			set_protection(i, PROT_READ | PROT_WRITE);
		free_mem(mem[i], chunk_size);
	}
	free(mem);
	mem = NULL;
}

/*
 * -l: a plain byte loop instead of the library's memcpy, to factor out
 * differences between memcpy implementations. Keep gcc from turning the loop
 * back into a memcpy call.
 */
__attribute__((optimize("no-tree-loop-distribute-patterns")))
static void my_memcpy(void *dest, const void *src, size_t len)
{
	char *d = dest;
	const char *s = src;
	size_t i;

	for (i = 0; i < len; i++)
		d[i] = s[i];
}

static void touch_mem(char *p, size_t size)
{
	size_t i;

	for (i = 0; i < size; i += page_size)
		p[i] = (char)0xff;
}

static const record_t *linear_search(record_t key, const record_t *base,
				     size_t nrec)
{
	const record_t *end = base + nrec;

	for (; base < end; base++)
		if (*base == key)
			return base;
	return NULL;
}

static int compare(const void *a, const void *b)
{
	record_t x = *(const record_t *)a, y = *(const record_t *)b;

	return (x > y) - (x < y);
}

/* splitmix64: small, fast, and good enough to spread the picks */
static uint64_t next_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, max): multiply-shift for 32-bit ranges, no division */
static size_t rand_num(size_t max, uint64_t *state)
{
	uint64_t r = next_rand(state);

	if (max <= UINT32_MAX)
		return (size_t)(((r >> 32) * max) >> 32);
	return (size_t)(r % max);
}

static void search_mem(struct worker *w)
{
	size_t nrec = chunk_size / RECORD_SIZE;
	size_t copy_size = chunk_size;
	const record_t *found;
	record_t *copy, key;
	unsigned int chunk;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		chunk = rand_num(chunks, &w->rng);
		w->picked[chunk]++;
		/* A random, non-zero number of whole records */
		if (random_size)
			copy_size = (rand_num(nrec, &w->rng) + 1) * RECORD_SIZE;
		copy = alloc_mem(copy_size);

		if (touch_pages) {
			touch_mem((char *)copy, copy_size);
		} else {
			if (no_lib_memcpy)
				my_memcpy(copy, mem[chunk], copy_size);
			else
				memcpy(copy, mem[chunk], copy_size);

			key = rand_num(copy_size / RECORD_SIZE, &w->rng);
			if (verbose > 2)
				printf("Search key %lu, copy size %zu\n", key,
				       copy_size);
			if (linear)
				found = linear_search(key, copy,
						      copy_size / RECORD_SIZE);
			else
				found = bsearch(&key, copy,
						copy_size / RECORD_SIZE,
						RECORD_SIZE, compare);
			w->searches++;
			if (!found || *found != key) {
				fprintf(stderr, "Couldn't find key %lu in "
					"chunk %u\n", key, chunk);
				exit(1);
			}
			w->found++;
		}

		free_mem(copy, copy_size);
		w->records++;
	}
}

static pthread_barrier_t start_line;

static void *thread_run(void *arg)
{
	struct worker *w = arg;

	w->picked = calloc(chunks, sizeof(*w->picked));
	if (!w->picked) {
		fprintf(stderr, "Couldn't allocate thread counters\n");
		exit(1);
	}
	if (verbose > 1)
		printf("Thread %u started\n", w->index);

	pthread_barrier_wait(&start_line);
	search_mem(w);

	if (verbose > 1)
		printf("Thread %u finished, processed %llu records\n",
		       w->index, (unsigned long long)w->records);
	return NULL;
}

static double ts_diff(const struct timespec *end, const struct timespec *start)
{
	return (end->tv_sec - start->tv_sec) +
	       (end->tv_nsec - start->tv_nsec) / 1e9;
}

static double tv_diff(const struct timeval *end, const struct timeval *start)
{
	return (end->tv_sec - start->tv_sec) +
	       (end->tv_usec - start->tv_usec) / 1e6;
}

static void dump(const struct worker *w)
{
	uint64_t searches = 0, found = 0, n;
	unsigned int i, t;

	for (i = 0; i < chunks; i++) {
		for (n = 0, t = 0; t < threads; t++)
			n += w[t].picked[i];
		fprintf(stderr, "chunk %u %llu\n", i, (unsigned long long)n);
	}
	for (t = 0; t < threads; t++) {
		searches += w[t].searches;
		found += w[t].found;
	}
	fprintf(stderr, "searches %llu found %llu\n",
		(unsigned long long)searches, (unsigned long long)found);
}

static void start_threads(void)
{
	struct timespec start, deadline, end, seed;
	struct rusage start_ru, end_ru;
	uint64_t records = 0;
	struct worker *w;
	unsigned int i;
	double elapsed;
	int err;

	w = calloc(threads, sizeof(*w));
	if (!w) {
		fprintf(stderr, "Couldn't allocate %u threads\n", threads);
		exit(1);
	}
	err = pthread_barrier_init(&start_line, NULL, threads + 1);
	if (err) {
		fprintf(stderr, "pthread_barrier_init: %s\n", strerror(err));
		exit(1);
	}

	if (verbose)
		printf("Threads starting\n");
	fflush(stdout);

	clock_gettime(CLOCK_REALTIME, &seed);
	for (i = 0; i < threads; i++) {
		w[i].index = i;
		w[i].rng = ((uint64_t)seed.tv_sec * 1000000000ULL +
			    seed.tv_nsec) ^
			   ((uint64_t)(i + 1) * 0xd1b54a32d192ed03ULL) ^
			   ((uint64_t)getpid() << 32);
		err = pthread_create(&w[i].tid, NULL, thread_run, &w[i]);
		if (err) {
			fprintf(stderr, "Error creating thread %u: %s\n", i,
				strerror(err));
			exit(1);
		}
	}

	pthread_barrier_wait(&start_line);
	getrusage(RUSAGE_SELF, &start_ru);
	clock_gettime(CLOCK_MONOTONIC, &start);

	deadline = start;
	deadline.tv_sec += seconds;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline,
			       NULL) == EINTR)
		;
	atomic_store_explicit(&stop, 1, memory_order_relaxed);

	for (i = 0; i < threads; i++) {
		err = pthread_join(w[i].tid, NULL);
		if (err) {
			fprintf(stderr, "Error joining thread %u: %s\n", i,
				strerror(err));
			exit(1);
		}
		records += w[i].records;
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	getrusage(RUSAGE_SELF, &end_ru);
	pthread_barrier_destroy(&start_line);

	elapsed = ts_diff(&end, &start);
	if (verbose)
		printf("Threads finished\n");

	printf("%llu records/s\n",
	       (unsigned long long)((double)records / elapsed));
	printf("real %5.2f s\n", elapsed);
	printf("user %5.2f s\n", tv_diff(&end_ru.ru_utime, &start_ru.ru_utime));
	printf("sys  %5.2f s\n", tv_diff(&end_ru.ru_stime, &start_ru.ru_stime));
	fflush(stdout);

	if (dump_stats)
		dump(w);
	for (i = 0; i < threads; i++)
		free(w[i].picked);
	free(w);
}

int main(int argc, char *argv[])
{
	read_options(argc, argv);
	allocate();
	write_pattern();
	start_threads();
	release();
	return 0;
}
